/* reduce.c: see reduce.h.
 *
 * A bucket moves through: 0 waiting for its blocks, 1 download enqueued
 * (an event), 2 reduce-scatter posted, 3 all-gather posted (without ZeRO),
 * 4 the sums' upload enqueued. cc_reducer_finish polls every bucket in turn
 * (event status, MPI_Test), so a bucket downloaded early is on the wire
 * while later ones are still computed. Non-blocking collectives must be
 * posted in the same order on every rank, whatever the timing: the
 * reduce-scatters in issue order, then the all-gathers in issue order, each
 * waiting for its predecessor to be posted. Uploads are non-blocking too and
 * ordered before the optimiser by the in-order queue. The host buffers stay
 * untouched until the next step's downloads, which the queue orders after
 * those uploads. */
#include "train/reduce.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { B_WAIT = 0, B_READ = 1, B_SCATTER = 2, B_GATHER = 3, B_DONE = 4 };

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

typedef struct {
  size_t start, n;
  int vision, layer; /* layer < 0: not a block */
} piece;

static void on_block(void *user, int vision, int layer);

clipcl_status cc_reducer_create(cc_model *m, cc_dist *d, int zero, cc_reducer **out) {
  *out = NULL;
  const cc_layout *L = &m->L;
  cc_reducer *r = calloc(1, sizeof *r);
  if (!r) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  r->m = m;
  r->d = d;
  r->R = cc_dist_size(d);
  r->rank = cc_dist_rank(d);
  r->zero = zero;
  double mb = 25;
  const char *e = getenv("CLIPCL_BUCKET_MB");
  if (e && atof(e) > 0) mb = atof(e);
  size_t cap = (size_t)(mb * 1048576.0 / 4);
  if (cap < 16) cap = 16;
  int nv = L->vis.layers, nt = L->txt.layers, np = 0;
  piece *p = calloc((size_t)(nv + nt + 3), sizeof *p);
  r->vis_of = calloc((size_t)nv + 1, sizeof *r->vis_of);
  r->txt_of = calloc((size_t)nt + 1, sizeof *r->txt_of);
  r->b = calloc((size_t)(nv + nt + 3), sizeof *r->b);
  r->order = calloc((size_t)(nv + nt + 3), sizeof *r->order);
  r->pos_of = calloc((size_t)(nv + nt + 3), sizeof *r->pos_of);
  if (!p || !r->vis_of || !r->txt_of || !r->b || !r->order || !r->pos_of) {
    free(p);
    cc_reducer_free(r);
    return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  }
  /* blocks in the order the backward pass finishes them */
  for (int l = nv - 1; l >= 0; l--)
    p[np++] = (piece){L->vis.blk[l].ln1_w, L->vis.blk[l].proj_b + round16((size_t)L->vis.C) - L->vis.blk[l].ln1_w, 1, l};
  for (int l = nt - 1; l >= 0; l--)
    p[np++] = (piece){L->txt.blk[l].ln1_w, L->txt.blk[l].proj_b + round16((size_t)L->txt.C) - L->txt.blk[l].ln1_w, 0, l};
  /* the rest, complete only at the end */
  size_t v0 = L->vis.blk[0].ln1_w, v1 = p[0].start + p[0].n, t0 = L->txt.blk[0].ln1_w, t1 = p[nv].start + p[nv].n;
  size_t lo[3] = {0, v1, t1}, hi[3] = {v0, t0, L->total};
  if (v1 > t0) { /* text blocks before vision blocks: order the gaps */
    lo[0] = 0, hi[0] = t0, lo[1] = t1, hi[1] = v0, lo[2] = v1, hi[2] = L->total;
  }
  for (int i = 0; i < 3; i++)
    if (hi[i] > lo[i]) p[np++] = (piece){lo[i], hi[i] - lo[i], 0, -1};
  /* merge neighbouring blocks of one tower up to the bucket size */
  for (int i = 0; i < np; i++) {
    cc_bucket *c = r->nb ? &r->b[r->nb - 1] : NULL;
    if (c && p[i].layer >= 0 && c->blocks > 0 && p[i - 1].vision == p[i].vision && p[i].start + p[i].n == c->start &&
        c->n + p[i].n <= cap) {
      c->start = p[i].start;
      c->n += p[i].n;
      c->blocks++;
    } else {
      c = &r->b[r->nb++];
      c->start = p[i].start;
      c->n = p[i].n;
      c->blocks = p[i].layer >= 0;
    }
    if (p[i].layer >= 0) (p[i].vision ? r->vis_of : r->txt_of)[p[i].layer] = r->nb - 1;
  }
  free(p);
  for (int i = 0; i < r->nb; i++) {
    cc_bucket *c = &r->b[i];
    c->chunk = round16((c->n + (size_t)r->R - 1) / (size_t)r->R);
    c->mom_off = r->mom_total;
    r->mom_total += c->chunk;
    c->buf = calloc(c->chunk * (size_t)r->R, sizeof *c->buf);
    c->part = calloc(c->chunk, sizeof *c->part);
    if (!c->buf || !c->part) {
      cc_reducer_free(r);
      return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory for the gradient buckets");
    }
  }
  m->on_block_grads = on_block;
  m->on_block_user = r;
  *out = r;
  return CLIPCL_OK;
}

void cc_reducer_free(cc_reducer *r) {
  if (!r) return;
  if (r->m && r->m->on_block_user == r) {
    r->m->on_block_grads = NULL;
    r->m->on_block_user = NULL;
  }
  for (int i = 0; i < r->nb; i++) {
    if (r->b[i].ev) clReleaseEvent(r->b[i].ev);
    /* a request left by a failed step belongs to a job that is going down */
    free(r->b[i].buf);
    free(r->b[i].part);
  }
  free(r->b);
  free(r->vis_of);
  free(r->txt_of);
  free(r->order);
  free(r->pos_of);
  free(r);
}

void cc_reducer_part(const cc_reducer *r, int i, size_t *start, size_t *len) {
  const cc_bucket *c = &r->b[i];
  size_t lo = (size_t)r->rank * c->chunk;
  *start = c->start + lo;
  *len = lo < c->n ? (c->n - lo < c->chunk ? c->n - lo : c->chunk) : 0;
}

static clipcl_status issue(cc_reducer *r, int i) {
  cc_bucket *c = &r->b[i];
  cc_rt *rt = r->m->rt;
  cl_int e = clEnqueueReadBuffer(cc_queue(rt), r->m->grads.buf, CL_FALSE, (r->m->grads.off + c->start) * 4,
                                 c->n * 4, c->buf, 0, NULL, &c->ev);
  if (e != CL_SUCCESS) return cc_cl_fail(e, "clEnqueueReadBuffer", "downloading a gradient bucket");
  c->state = B_READ;
  r->pos_of[i] = r->norder;
  r->order[r->norder++] = i;
  return CLIPCL_OK;
}

/* The hook cannot fail the backward pass; an enqueue error shows up in
 * finish, where the bucket is still waiting. */
static void on_block(void *user, int vision, int layer) {
  cc_reducer *r = user;
  if (!r->armed) return;
  int i = (vision ? r->vis_of : r->txt_of)[layer];
  cc_bucket *c = &r->b[i];
  if (c->state == B_WAIT && --c->pending == 0) {
    if (issue(r, i) != CLIPCL_OK) cc_clear_error();
  }
}

void cc_reducer_arm(cc_reducer *r) {
  r->armed = 1;
  r->norder = 0;
  r->next_rs = r->next_ag = 0;
  for (int i = 0; i < r->nb; i++) {
    r->b[i].state = B_WAIT;
    r->b[i].pending = r->b[i].blocks;
  }
}

static void nap(void) {
  struct timespec t = {0, 50000};
  nanosleep(&t, NULL);
}

/* One look at bucket i; *moved when its state changed. */
static clipcl_status advance(cc_reducer *r, int i, int *moved) {
  cc_bucket *c = &r->b[i];
  cc_rt *rt = r->m->rt;
  size_t R = (size_t)r->R;
  if (c->state == B_READ) {
    if (r->next_rs != r->pos_of[i]) return CLIPCL_OK; /* an earlier bucket posts first */
    cl_int st;
    cl_int e = clGetEventInfo(c->ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL);
    if (e != CL_SUCCESS) return cc_cl_fail(e, "clGetEventInfo", "waiting for a gradient download");
    if (st < 0) return cc_cl_fail(st, "clEnqueueReadBuffer", "downloading a gradient bucket");
    if (st != CL_COMPLETE) return CLIPCL_OK;
    clReleaseEvent(c->ev);
    c->ev = NULL;
    memset(c->buf + c->n, 0, (c->chunk * R - c->n) * sizeof *c->buf);
    CC_TRY(cc_dist_ireduce_scatter(r->d, c->buf, c->part, c->chunk, &c->req));
    c->state = B_SCATTER;
    r->next_rs++;
    *moved = 1;
  } else if (c->state == B_SCATTER || c->state == B_GATHER) {
    /* all-gathers start once every reduce-scatter is posted, in issue order */
    if (c->state == B_SCATTER && !r->zero && (r->next_rs < r->nb || r->next_ag != r->pos_of[i])) {
      if (c->req) {
        int t = cc_dist_test(&c->req);
        if (t < 0) return (clipcl_status)t;
      }
      return CLIPCL_OK;
    }
    int t = cc_dist_test(&c->req);
    if (t < 0) return (clipcl_status)t;
    if (!t) return CLIPCL_OK;
    *moved = 1;
    if (c->state == B_SCATTER && !r->zero) {
      CC_TRY(cc_dist_iallgather(r->d, c->part, c->buf, c->chunk, &c->req));
      c->state = B_GATHER;
      r->next_ag++;
      return CLIPCL_OK;
    }
    size_t start = c->start, len = c->n;
    const float *src = c->buf;
    if (r->zero) {
      cc_reducer_part(r, i, &start, &len);
      src = c->part;
    }
    if (len) {
      cl_int e = clEnqueueWriteBuffer(cc_queue(rt), r->m->grads.buf, CL_FALSE, (r->m->grads.off + start) * 4,
                                      len * 4, src, 0, NULL, NULL);
      if (e != CL_SUCCESS) return cc_cl_fail(e, "clEnqueueWriteBuffer", "uploading summed gradients");
    }
    c->state = B_DONE;
  }
  return CLIPCL_OK;
}

clipcl_status cc_reducer_finish(cc_reducer *r) {
  r->armed = 0;
  for (int i = 0; i < r->nb; i++)
    if (r->b[i].state == B_WAIT) CC_TRY(issue(r, i));
  clFlush(cc_queue(r->m->rt));
  for (;;) {
    int left = 0, moved = 0;
    for (int k = 0; k < r->norder; k++) {
      int i = r->order[k];
      if (r->b[i].state == B_DONE) continue;
      CC_TRY(advance(r, i, &moved));
      left += r->b[i].state != B_DONE;
    }
    if (!left) return CLIPCL_OK;
    if (!moved) nap();
  }
}

clipcl_status cc_reducer_gather_params(cc_reducer *r) {
  cc_rt *rt = r->m->rt;
  CC_TRY(cc_finish(rt)); /* the step's uploads still read the host buffers reused here */
  for (int i = 0; i < r->nb; i++) {
    cc_bucket *c = &r->b[i];
    size_t start, len;
    cc_reducer_part(r, i, &start, &len);
    memset(c->part, 0, c->chunk * sizeof *c->part);
    CC_TRY(cc_read(rt, cc_at(r->m->params, start), c->part, len));
    CC_TRY(cc_dist_allgather(r->d, c->part, c->buf, c->chunk));
    CC_TRY(cc_write(rt, cc_at(r->m->params, c->start), c->buf, c->n));
  }
  return CLIPCL_OK;
}

clipcl_status cc_reducer_gather(cc_reducer *r, cc_view src, int packed, float *full, int root) {
  cc_rt *rt = r->m->rt;
  CC_TRY(cc_finish(rt)); /* the step's uploads still read the host buffers reused here */
  for (int i = 0; i < r->nb; i++) {
    cc_bucket *c = &r->b[i];
    size_t start, len;
    cc_reducer_part(r, i, &start, &len);
    memset(c->part, 0, c->chunk * sizeof *c->part);
    CC_TRY(cc_read(rt, cc_at(src, packed ? c->mom_off : start), c->part, len));
    CC_TRY(cc_dist_gather(r->d, c->part, c->buf, c->chunk, root));
    if (r->rank == root) memcpy(full + c->start, c->buf, c->n * sizeof *full);
  }
  return CLIPCL_OK;
}

clipcl_status cc_reducer_scatter_host(cc_reducer *r, const float *full, cc_view dst) {
  CC_TRY(cc_finish(r->m->rt));
  for (int i = 0; i < r->nb; i++) {
    size_t start, len;
    cc_reducer_part(r, i, &start, &len);
    CC_TRY(cc_write(r->m->rt, cc_at(dst, r->b[i].mom_off), full + start, len));
  }
  return CLIPCL_OK;
}

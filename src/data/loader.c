/* loader.c: clipcl_loader: batches of preprocessed images, token ids and
 * labels, made on host threads while the caller's thread drives the device.
 * Not here: the sources (source_*.c), decoding and crops (src/image/), the
 * tokenizer (src/text/).
 *
 * Pipeline. One producer thread walks the epoch order and writes items into
 * a ring of slots: for CSV/folder data sets an item is a row number from a
 * seeded permutation; for tar shards the producer reads the shards (seeded
 * shard order, then a seeded shuffle buffer) and an item holds the sample's
 * bytes. Worker threads claim items in ring order and decode, crop and
 * tokenise each into its slot. The caller's clipcl_loader_next() consumes
 * slots strictly in order, skipping bad samples, so a batch is the next B
 * good samples of the epoch order. The ring (prefetch_batches * B slots) is
 * the bounded queue: the producer waits for the consumer to free slots.
 *
 * Determinism. Item g of the sequence is fixed by (seed, epoch) and the data
 * alone; its crop is drawn from cc_data_seed(seed, AUG, epoch, index in the
 * epoch), and whether it is bad depends only on its content. So the batches
 * are byte-identical for any thread count and timing. A position (epoch,
 * index of the next item) can be saved and restored: the producer restarts
 * at that epoch and skips the items before the index (for tar shards it
 * re-reads them without decoding, which keeps the shuffle buffer exact).
 *
 * Every epoch ends with an END item; consuming it makes next() return n = 0
 * (after dropping a partial batch when training, or after returning the
 * partial batch when evaluating).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data.h"
#include "image/image.h"
#include "util/error.h"

/* seed purposes, so the order, shard order, shuffle and crops of one epoch
 * draw from unrelated streams */
enum { P_ORDER = 1, P_SHARDS = 2, P_SHUFFLE = 3, P_AUG = 4 };
enum { SLOT_FREE, SLOT_RAW, SLOT_BUSY, SLOT_DONE };
enum { ITEM_SAMPLE, ITEM_END };
#define MAX_WORKERS 64

typedef struct {
  int state, kind;
  int64_t epoch, k;    /* where in the epoch order */
  int64_t row;         /* CSV/folder row; -1 for tar */
  int shard;           /* tar: index into ds->shards */
  cc_tar_sample raw;   /* tar: the sample's bytes */
  /* result */
  int good;
  clipcl_status status;
  int32_t label;
  float *image;        /* (3, S, S) */
  int32_t *ids;        /* (ctx) */
  char source[512];
  char reason[1024];
} slot;

struct clipcl_loader {
  clipcl_dataset *ds;
  clipcl_loader_options o;
  int map;             /* CSV/folder (random access) rather than tar */
  int tokenise;
  size_t plane;        /* 3*S*S */
  int nslots;
  slot *slots;
  float *image_mem;
  int32_t *ids_mem;
  int nworkers;

  pthread_mutex_t mu;
  pthread_cond_t c_prod, c_work, c_cons;
  pthread_t producer, workers[MAX_WORKERS];
  int running, started_workers, stop;
  int64_t g_prod, g_claim, g_cons;
  int64_t start_epoch, start_index;   /* where the producer begins */
  clipcl_status prod_fail;            /* producer gave up (out of memory) */
  char prod_msg[1024];
  int prod_done;

  /* consumer state (the caller's thread only) */
  int64_t epoch, index, seen, bad;
  int64_t epoch_batches, epoch_good;
  int epoch_whole;                    /* this epoch was consumed from index 0 */
  clipcl_status fail;                 /* sticky failure of next() */
  char fail_msg[2048];
  char last_bad[1600];

  /* producer's permutation cache (map) */
  uint32_t *perm;
  int64_t perm_epoch;
};

void clipcl_loader_options_init(clipcl_loader_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->context_length = 77;
  o->training = 1;
  o->augment = 1;
  o->max_bad_fraction = 0.01;
  o->min_seen_for_bad = 100;
  o->prefetch_batches = 2;
  o->shuffle_buffer = 1000;
}

/* ---- producer --------------------------------------------------------------- */

/* Waits for a free slot and fills it; the slot takes ownership of *raw.
 * Returns 0, or 1 when asked to stop (raw freed). */
static int push_item(clipcl_loader *l, int kind, int64_t epoch, int64_t k, int64_t row, int shard,
                     cc_tar_sample *raw) {
  pthread_mutex_lock(&l->mu);
  while (!l->stop && l->g_prod - l->g_cons >= l->nslots) pthread_cond_wait(&l->c_prod, &l->mu);
  if (l->stop) {
    pthread_mutex_unlock(&l->mu);
    if (raw) cc_tar_sample_clear(raw);
    return 1;
  }
  slot *s = &l->slots[l->g_prod % l->nslots];
  pthread_mutex_unlock(&l->mu);
  /* the slot is ours until it is published below */
  s->kind = kind;
  s->epoch = epoch;
  s->k = k;
  s->row = row;
  s->shard = shard;
  if (raw) {
    s->raw = *raw;
    memset(raw, 0, sizeof *raw);
  } else {
    memset(&s->raw, 0, sizeof s->raw);
  }
  pthread_mutex_lock(&l->mu);
  s->state = SLOT_RAW;
  l->g_prod++;
  pthread_cond_signal(&l->c_work);
  pthread_mutex_unlock(&l->mu);
  return 0;
}

static int stopping(clipcl_loader *l) {
  pthread_mutex_lock(&l->mu);
  int s = l->stop;
  pthread_mutex_unlock(&l->mu);
  return s;
}

static void producer_fail(clipcl_loader *l, const char *msg) {
  pthread_mutex_lock(&l->mu);
  l->prod_fail = CLIPCL_ERR_NOMEM;
  snprintf(l->prod_msg, sizeof l->prod_msg, "%s", msg);
  pthread_cond_broadcast(&l->c_cons);
  pthread_mutex_unlock(&l->mu);
}

/* Seeded Fisher-Yates permutation of 0..n-1. */
static void shuffle_u32(uint32_t *v, uint64_t n, uint64_t rng) {
  for (uint64_t i = 0; i < n; i++) v[i] = (uint32_t)i;
  for (uint64_t i = n; i > 1; i--) {
    uint64_t j = cc_rng_below(&rng, i);
    uint32_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

/* This loader's positions of a shared epoch order: blocks dealt round-robin. */
static int mine(const clipcl_loader *l, int64_t k) {
  if (l->o.shard_count <= 1) return 1;
  return (k / l->o.shard_block) % l->o.shard_count == l->o.shard_index;
}

static void produce_map(clipcl_loader *l) {
  int64_t n = (int64_t)l->ds->nrows;
  int64_t epoch = l->start_epoch, k = l->start_index;
  for (;;) {
    if (k < n && !mine(l, k)) {
      /* skip to the start of this loader's next block */
      int64_t b = l->o.shard_block, R = l->o.shard_count;
      int64_t blk = k / b, next = blk + (l->o.shard_index - blk % R + R) % R;
      k = next * b > k ? next * b : k + 1;
      continue;
    }
    if (k < n) {
      int64_t row = k;
      if (l->o.training) {
        if (l->perm_epoch != epoch) {
          shuffle_u32(l->perm, (uint64_t)n, cc_data_seed(l->o.seed, P_ORDER, (uint64_t)epoch, 0));
          l->perm_epoch = epoch;
        }
        row = l->perm[k];
      }
      if (push_item(l, ITEM_SAMPLE, epoch, k, row, -1, NULL)) return;
      k++;
    } else {
      if (push_item(l, ITEM_END, epoch, k, -1, -1, NULL)) return;
      epoch++;
      k = 0;
    }
  }
}

/* Item numbering of one tar epoch, with the items before the restart index
 * dropped unseen. */
typedef struct {
  clipcl_loader *l;
  int64_t epoch, k, skip;
} stream_out;

static int stream_emit(stream_out *so, cc_tar_sample *s, int shard) {
  if (so->k < so->skip) {
    cc_tar_sample_clear(s);
    so->k++;
    return stopping(so->l);
  }
  int r = push_item(so->l, ITEM_SAMPLE, so->epoch, so->k, -1, shard, s);
  so->k++;
  return r;
}

typedef struct {
  cc_tar_sample s;
  int shard;
} buffered;

static void produce_tar(clipcl_loader *l) {
  const clipcl_dataset *ds = l->ds;
  int nsh = ds->nshards;
  int *order = malloc((size_t)nsh * sizeof *order);
  int bufcap = l->o.training && l->o.shuffle_buffer > 1 ? l->o.shuffle_buffer : 0;
  buffered *buf = bufcap ? calloc((size_t)bufcap, sizeof *buf) : NULL;
  if (!order || (bufcap && !buf)) {
    free(order);
    free(buf);
    producer_fail(l, "loader: out of memory for the shard order or the shuffle buffer");
    return;
  }
  stream_out so = {l, l->start_epoch, 0, l->start_index};
  int stop = 0;
  while (!stop) {
    for (int i = 0; i < nsh; i++) order[i] = i;
    if (l->o.training) {
      uint64_t rng = cc_data_seed(l->o.seed, P_SHARDS, (uint64_t)so.epoch, 0);
      for (int i = nsh; i > 1; i--) {
        int j = (int)cc_rng_below(&rng, (uint64_t)i);
        int t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
      }
    }
    uint64_t srng = cc_data_seed(l->o.seed, P_SHUFFLE, (uint64_t)so.epoch, 0);
    if (l->o.shard_count > 1) /* each slice shuffles its own stream */
      srng = cc_data_seed(l->o.seed, P_SHUFFLE, (uint64_t)so.epoch, (uint64_t)l->o.shard_index + 1);
    int nbuf = 0;
    so.k = 0;
    for (int si = 0; si < nsh && !stop; si++) {
      if (l->o.shard_count > 1 && si % l->o.shard_count != l->o.shard_index) continue;
      cc_tar_reader *r;
      if (cc_tar_reader_open(ds->shards[order[si]], &r) != CLIPCL_OK) {
        producer_fail(l, clipcl_last_error());
        stop = 1;
        break;
      }
      for (;;) {
        buffered item = {{0}, order[si]};
        int got = cc_tar_next(r, &item.s);
        if (got < 0) {
          producer_fail(l, "loader: out of memory while reading a shard");
          stop = 1;
          break;
        }
        if (got == 0) break;
        if (!bufcap) {
          stop = stream_emit(&so, &item.s, item.shard);
        } else if (nbuf < bufcap) {
          buf[nbuf++] = item;
          stop = stopping(l);
        } else {
          /* emit a random resident and put the newcomer in its place */
          int j = (int)cc_rng_below(&srng, (uint64_t)bufcap);
          buffered out = buf[j];
          buf[j] = item;
          stop = stream_emit(&so, &out.s, out.shard);
        }
        if (stop) break;
      }
      cc_tar_reader_free(r);
    }
    while (!stop && nbuf > 0) {
      int j = (int)cc_rng_below(&srng, (uint64_t)nbuf);
      buffered out = buf[j];
      buf[j] = buf[--nbuf];
      stop = stream_emit(&so, &out.s, out.shard);
    }
    for (int i = 0; i < nbuf; i++) cc_tar_sample_clear(&buf[i].s);
    nbuf = 0;
    if (stop) break;
    if (push_item(l, ITEM_END, so.epoch, so.k, -1, -1, NULL)) break;
    so.epoch++;
    so.skip = 0;
  }
  free(order);
  free(buf);
}

static void *producer_main(void *arg) {
  clipcl_loader *l = arg;
  if (l->map)
    produce_map(l);
  else
    produce_tar(l);
  pthread_mutex_lock(&l->mu);
  l->prod_done = 1;
  pthread_cond_broadcast(&l->c_cons);
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

/* ---- workers ----------------------------------------------------------------- */

static void set_reason(slot *s, clipcl_status st, const char *fmt, ...) CC_PRINTF(3, 4);
static void set_reason(slot *s, clipcl_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->reason, sizeof s->reason, fmt, ap);
  va_end(ap);
  s->status = st;
  s->good = 0;
}

/* Caption checks: usable text, then tokens. 0 ok, else the slot is bad. */
static int check_caption(clipcl_loader *l, slot *s, const char *cap, size_t n) {
  if (!cap || n == 0 || cc_blank(cap, n)) {
    set_reason(s, CLIPCL_ERR_FORMAT, "empty caption");
    return 1;
  }
  if (memchr(cap, 0, n)) {
    set_reason(s, CLIPCL_ERR_FORMAT, "caption holds a NUL byte");
    return 1;
  }
  if (!cc_utf8_valid(cap, n)) {
    set_reason(s, CLIPCL_ERR_FORMAT, "caption is not valid UTF-8");
    return 1;
  }
  if (l->tokenise) {
    int ntok = 0;
    clipcl_status st = clipcl_tokenize(l->o.tokenizer, cap, l->o.context_length, s->ids, &ntok);
    if (st != CLIPCL_OK) {
      set_reason(s, st, "caption cannot be tokenised: %s", clipcl_last_error());
      return 1;
    }
    if (ntok <= 2) {
      set_reason(s, CLIPCL_ERR_FORMAT, "caption has no tokens after text cleaning");
      return 1;
    }
  }
  return 0;
}

static void process(clipcl_loader *l, slot *s) {
  const clipcl_dataset *ds = l->ds;
  s->good = 0;
  s->status = CLIPCL_OK;
  s->reason[0] = 0;
  s->source[0] = 0;
  s->label = -1;
  if (s->kind == ITEM_END) return;
  clipcl_image img = {0, 0, NULL};
  clipcl_status st;
  if (l->map) {
    const cc_row *r = &ds->rows[s->row];
    cc_row_source(ds, (size_t)s->row, s->source, sizeof s->source);
    s->label = r->label;
    if (r->flaw) {
      char buf[256];
      set_reason(s, CLIPCL_ERR_FORMAT, "%s", cc_row_flaw_text(ds, r, buf, sizeof buf));
      return;
    }
    if (ds->has_captions && check_caption(l, s, ds->arena + r->caption, r->caption_len)) return;
    char *path = cc_row_path(ds, r);
    if (!path) {
      set_reason(s, CLIPCL_ERR_NOMEM, "out of memory for the image path");
      return;
    }
    st = clipcl_image_load(path, &img);
    free(path);
  } else {
    const cc_tar_sample *t = &s->raw;
    const char *shard = ds->shards[s->shard];
    if (t->key && t->key[0])
      snprintf(s->source, sizeof s->source, "%s: key %s", shard, t->key);
    else
      snprintf(s->source, sizeof s->source, "%s", shard);
    if (t->bad) {
      set_reason(s, t->bad_status ? t->bad_status : CLIPCL_ERR_FORMAT, "%s", t->bad);
      return;
    }
    if (check_caption(l, s, t->caption, t->caption_len)) return;
    char name[600];
    snprintf(name, sizeof name, "%s: %s.%s", shard, t->key, t->image_ext);
    st = clipcl_image_decode(t->image, t->image_len, name, &img);
  }
  if (st != CLIPCL_OK) {
    set_reason(s, st, "%s", clipcl_last_error());
    return;
  }
  if (l->o.augment) {
    uint64_t rng = cc_data_seed(l->o.seed, P_AUG, (uint64_t)s->epoch, (uint64_t)s->k);
    st = clipcl_image_random_resized_crop(&img, l->o.image_size, &rng, s->image);
  } else {
    st = clipcl_image_preprocess(&img, l->o.image_size, s->image);
  }
  clipcl_image_free(&img);
  if (st != CLIPCL_OK) {
    set_reason(s, st, "%s", clipcl_last_error());
    return;
  }
  s->good = 1;
}

static void *worker_main(void *arg) {
  clipcl_loader *l = arg;
  pthread_mutex_lock(&l->mu);
  for (;;) {
    while (!l->stop && l->g_claim >= l->g_prod) pthread_cond_wait(&l->c_work, &l->mu);
    if (l->stop) break;
    slot *s = &l->slots[l->g_claim % l->nslots];
    l->g_claim++;
    s->state = SLOT_BUSY;
    pthread_mutex_unlock(&l->mu);
    process(l, s);
    /* the bytes are no longer needed once decoded */
    free(s->raw.image);
    s->raw.image = NULL;
    pthread_mutex_lock(&l->mu);
    s->state = SLOT_DONE;
    pthread_cond_broadcast(&l->c_cons);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

/* ---- start / stop ------------------------------------------------------------ */

static void stop_threads(clipcl_loader *l) {
  if (!l->running) return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_broadcast(&l->c_prod);
  pthread_cond_broadcast(&l->c_work);
  pthread_cond_broadcast(&l->c_cons);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->producer, NULL);
  for (int i = 0; i < l->started_workers; i++) pthread_join(l->workers[i], NULL);
  for (int i = 0; i < l->nslots; i++) {
    cc_tar_sample_clear(&l->slots[i].raw);
    l->slots[i].state = SLOT_FREE;
  }
  l->running = 0;
  l->started_workers = 0;
}

static clipcl_status start_threads(clipcl_loader *l) {
  l->stop = 0;
  l->prod_done = 0;
  l->prod_fail = CLIPCL_OK;
  l->g_prod = l->g_claim = l->g_cons = 0;
  l->start_epoch = l->epoch;
  l->start_index = l->index;
  for (int i = 0; i < l->nslots; i++) l->slots[i].state = SLOT_FREE;
  if (pthread_create(&l->producer, NULL, producer_main, l) != 0)
    return cc_fail(CLIPCL_ERR_NOMEM, "loader: cannot start the reader thread");
  l->running = 1;
  for (int i = 0; i < l->nworkers; i++) {
    if (pthread_create(&l->workers[l->started_workers], NULL, worker_main, l) != 0) break;
    l->started_workers++;
  }
  if (l->started_workers == 0) {
    stop_threads(l);
    return cc_fail(CLIPCL_ERR_NOMEM, "loader: cannot start any worker thread");
  }
  return CLIPCL_OK;
}

/* ---- public ------------------------------------------------------------------ */

clipcl_status clipcl_loader_create(clipcl_dataset *ds, const clipcl_loader_options *opt, clipcl_loader **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "loader: no output handle");
  *out = NULL;
  if (!ds || !opt) return cc_fail(CLIPCL_ERR_ARG, "loader: no data set or no options");
  clipcl_loader_options o = *opt;
  if (o.batch_size < 1 || o.batch_size > (1 << 20))
    return cc_fail(CLIPCL_ERR_ARG, "loader: batch size %d is outside 1..%d", o.batch_size, 1 << 20);
  if (o.image_size < 1 || o.image_size > CC_IMAGE_MAX_SIZE)
    return cc_fail(CLIPCL_ERR_ARG, "loader: image size %d is outside 1..%d", o.image_size, CC_IMAGE_MAX_SIZE);
  if (o.context_length < 2 || o.context_length > 65536)
    return cc_fail(CLIPCL_ERR_ARG, "loader: context length %d is outside 2..65536", o.context_length);
  if (!(o.max_bad_fraction >= 0 && o.max_bad_fraction <= 1))
    return cc_fail(CLIPCL_ERR_ARG, "loader: max bad fraction %g is outside 0..1", o.max_bad_fraction);
  if (o.min_seen_for_bad < 1) o.min_seen_for_bad = 1;
  if (o.prefetch_batches < 1) o.prefetch_batches = 1;
  if (o.prefetch_batches > 64) o.prefetch_batches = 64;
  if (o.shard_count > 1) {
    if (o.shard_index < 0 || o.shard_index >= o.shard_count)
      return cc_fail(CLIPCL_ERR_ARG, "loader: slice %d of %d does not exist", o.shard_index, o.shard_count);
    if (o.shard_block <= 0) o.shard_block = o.batch_size;
    if (ds->kind == CLIPCL_DATA_TAR && ds->nshards < o.shard_count)
      return cc_fail(CLIPCL_ERR_ARG, "%s: %d shard(s) cannot be split %d ways (each slice needs one)", ds->spec,
                     ds->nshards, o.shard_count);
  } else {
    o.shard_count = 1;
    o.shard_index = 0;
  }
  if (o.shuffle_buffer < 0 || o.shuffle_buffer > (1 << 24))
    return cc_fail(CLIPCL_ERR_ARG, "loader: shuffle buffer %d is outside 0..%d", o.shuffle_buffer, 1 << 24);
  int map = ds->kind != CLIPCL_DATA_TAR;
  if (map && ds->nrows == 0) return cc_fail(CLIPCL_ERR_ARG, "%s: the data set has no samples", ds->spec);
  if (map && ds->nrows > UINT32_MAX)
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: more than %u rows", ds->spec, (unsigned)UINT32_MAX);
  if (o.training && ds->size >= 0 && ds->size < o.batch_size)
    return cc_fail(CLIPCL_ERR_ARG, "%s: %lld samples are fewer than one batch of %d (training drops partial batches)",
                   ds->spec, (long long)ds->size, o.batch_size);

  int workers = o.workers;
  if (workers <= 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    workers = cpus > 0 ? (int)(cpus < MAX_WORKERS ? cpus : MAX_WORKERS) : 1;
  }
  if (workers > MAX_WORKERS) workers = MAX_WORKERS;

  clipcl_loader *l = calloc(1, sizeof *l);
  if (!l) return cc_fail(CLIPCL_ERR_NOMEM, "loader: out of memory");
  l->ds = ds;
  l->o = o;
  l->map = map;
  l->tokenise = ds->has_captions && o.tokenizer != NULL;
  l->nworkers = workers;
  l->plane = (size_t)3 * (size_t)o.image_size * (size_t)o.image_size;
  long long ns = (long long)o.prefetch_batches * o.batch_size;
  if (ns < 2LL * workers) ns = 2LL * workers;
  l->nslots = (int)(ns < (1 << 24) ? ns : (1 << 24));
  l->perm_epoch = -1;
  l->epoch_whole = 1;
  clipcl_status s = CLIPCL_OK;
  size_t ns_z = (size_t)l->nslots;
  if (l->plane > SIZE_MAX / sizeof(float) / ns_z) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "loader: %d slots of %zu floats overflow the address space", l->nslots, l->plane);
    goto fail;
  }
  l->slots = calloc(ns_z, sizeof *l->slots);
  l->image_mem = malloc(ns_z * l->plane * sizeof(float));
  l->ids_mem = malloc(ns_z * (size_t)o.context_length * sizeof(int32_t));
  if (map && o.training) l->perm = malloc(ds->nrows * sizeof *l->perm);
  if (!l->slots || !l->image_mem || !l->ids_mem || (map && o.training && !l->perm)) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "loader: out of memory for %d prefetch slots of %d x %d images", l->nslots,
                o.image_size, o.image_size);
    goto fail;
  }
  for (int i = 0; i < l->nslots; i++) {
    l->slots[i].image = l->image_mem + (size_t)i * l->plane;
    l->slots[i].ids = l->ids_mem + (size_t)i * (size_t)o.context_length;
  }
  if (pthread_mutex_init(&l->mu, NULL) != 0) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "loader: cannot create a mutex");
    goto fail;
  }
  if (pthread_cond_init(&l->c_prod, NULL) != 0 || pthread_cond_init(&l->c_work, NULL) != 0 ||
      pthread_cond_init(&l->c_cons, NULL) != 0) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "loader: cannot create condition variables");
    goto fail; /* leaks at most a condition variable on a failing system */
  }
  *out = l;
  return CLIPCL_OK;
fail:
  free(l->slots);
  free(l->image_mem);
  free(l->ids_mem);
  free(l->perm);
  free(l);
  return s;
}

void clipcl_loader_free(clipcl_loader *l) {
  if (!l) return;
  stop_threads(l);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->c_prod);
  pthread_cond_destroy(&l->c_work);
  pthread_cond_destroy(&l->c_cons);
  free(l->slots);
  free(l->image_mem);
  free(l->ids_mem);
  free(l->perm);
  free(l);
}

static clipcl_status fail_sticky(clipcl_loader *l, clipcl_status st, const char *fmt, ...) CC_PRINTF(3, 4);
static clipcl_status fail_sticky(clipcl_loader *l, clipcl_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(l->fail_msg, sizeof l->fail_msg, fmt, ap);
  va_end(ap);
  l->fail = st;
  return cc_fail(st, "%s", l->fail_msg);
}

/* Fails when the bad samples are over the allowed fraction of those seen,
 * once enough were seen (or the whole data set, when it is smaller). */
static clipcl_status check_bad(clipcl_loader *l, int whole_epoch_seen) {
  if (l->bad == 0) return CLIPCL_OK;
  int64_t min_seen = l->o.min_seen_for_bad;
  if (l->ds->size > 0 && l->ds->size < min_seen) min_seen = l->ds->size;
  if (l->seen < min_seen && !whole_epoch_seen) return CLIPCL_OK;
  if ((double)l->bad <= l->o.max_bad_fraction * (double)l->seen) return CLIPCL_OK;
  return fail_sticky(l, CLIPCL_ERR_FORMAT,
                     "too many bad samples: %lld of %lld seen (%.2f%%) exceed the allowed fraction %g; last: %s",
                     (long long)l->bad, (long long)l->seen, 100.0 * (double)l->bad / (double)l->seen,
                     l->o.max_bad_fraction, l->last_bad);
}

/* Member names, paths and library messages can hold control characters;
 * the report promises one printable line. */
static void one_line(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

static void release_slot(clipcl_loader *l, slot *s) {
  cc_tar_sample_clear(&s->raw);
  pthread_mutex_lock(&l->mu);
  s->state = SLOT_FREE;
  l->g_cons++;
  pthread_cond_signal(&l->c_prod);
  pthread_mutex_unlock(&l->mu);
}

clipcl_status clipcl_loader_next(clipcl_loader *l, clipcl_batch *b) {
  if (!l || !b || !b->images) return cc_fail(CLIPCL_ERR_ARG, "loader: next() needs a loader and an image buffer");
  b->n = 0;
  b->epoch = l->epoch;
  if (l->fail != CLIPCL_OK) return cc_fail(l->fail, "%s", l->fail_msg);
  if (!l->running) CC_TRY(start_threads(l));
  const int B = l->o.batch_size, ctx = l->o.context_length;
  int n = 0;
  for (;;) {
    pthread_mutex_lock(&l->mu);
    slot *s = &l->slots[l->g_cons % l->nslots];
    while (!(l->g_cons < l->g_prod && s->state == SLOT_DONE) && l->prod_fail == CLIPCL_OK)
      pthread_cond_wait(&l->c_cons, &l->mu);
    if (!(l->g_cons < l->g_prod && s->state == SLOT_DONE)) {
      pthread_mutex_unlock(&l->mu);
      b->n = 0;
      return fail_sticky(l, l->prod_fail, "%s", l->prod_msg);
    }
    pthread_mutex_unlock(&l->mu);

    if (s->kind == ITEM_END) {
      if (n > 0 && !l->o.training) break; /* partial batch now, the end next time */
      int whole = l->epoch_whole;
      int64_t batches = l->epoch_batches, good = l->epoch_good;
      int64_t ended = s->epoch;
      release_slot(l, s);
      l->epoch = ended + 1;
      l->index = 0;
      l->epoch_batches = l->epoch_good = 0;
      l->epoch_whole = 1;
      b->n = 0;
      b->epoch = ended;
      if (whole) CC_TRY(check_bad(l, 1));
      if (whole && l->o.training && batches == 0)
        return fail_sticky(l, CLIPCL_ERR_FORMAT,
                           "%s: epoch %lld gave no full batch of %d: %lld usable sample(s) in the whole epoch",
                           l->ds->spec, (long long)ended, B, (long long)good);
      return CLIPCL_OK;
    }

    l->seen++;
    l->index = s->k + 1;
    if (!s->good) {
      l->bad++;
      one_line(s->source);
      one_line(s->reason);
      snprintf(l->last_bad, sizeof l->last_bad, "%s: %s", s->source, s->reason);
      if (l->o.on_bad) {
        clipcl_bad_sample bs = {s->source, s->reason, s->status, s->epoch, s->k};
        l->o.on_bad(l->o.user, &bs);
      }
      release_slot(l, s);
      CC_TRY(check_bad(l, 0));
      continue;
    }
    memcpy(b->images + (size_t)n * l->plane, s->image, l->plane * sizeof(float));
    if (b->ids && l->tokenise) memcpy(b->ids + (size_t)n * ctx, s->ids, (size_t)ctx * sizeof(int32_t));
    if (b->labels) b->labels[n] = s->label;
    if (b->rows) b->rows[n] = s->row;
    b->epoch = s->epoch;
    n++;
    l->epoch_good++;
    release_slot(l, s);
    CC_TRY(check_bad(l, 0));
    if (n == B) break;
  }
  if (n == B) l->epoch_batches++;
  b->n = n;
  return CLIPCL_OK;
}

clipcl_status clipcl_loader_get_pos(const clipcl_loader *l, clipcl_loader_pos *pos) {
  if (!l || !pos) return cc_fail(CLIPCL_ERR_ARG, "loader: get_pos needs a loader and a position");
  pos->epoch = l->epoch;
  pos->index = l->index;
  pos->samples_seen = l->seen;
  pos->bad_samples = l->bad;
  return CLIPCL_OK;
}

clipcl_status clipcl_loader_seek(clipcl_loader *l, const clipcl_loader_pos *pos) {
  if (!l || !pos) return cc_fail(CLIPCL_ERR_ARG, "loader: seek needs a loader and a position");
  if (pos->epoch < 0 || pos->index < 0 || pos->samples_seen < 0 || pos->bad_samples < 0 ||
      pos->bad_samples > pos->samples_seen)
    return cc_fail(CLIPCL_ERR_ARG, "loader: bad position (epoch %lld, index %lld, seen %lld, bad %lld)",
                   (long long)pos->epoch, (long long)pos->index, (long long)pos->samples_seen,
                   (long long)pos->bad_samples);
  if (l->map && (uint64_t)pos->index > l->ds->nrows)
    return cc_fail(CLIPCL_ERR_ARG, "loader: position index %lld is past the %zu samples of an epoch",
                   (long long)pos->index, l->ds->nrows);
  stop_threads(l);
  l->epoch = pos->epoch;
  l->index = pos->index;
  l->seen = pos->samples_seen;
  l->bad = pos->bad_samples;
  l->epoch_batches = l->epoch_good = 0;
  l->epoch_whole = pos->index == 0;
  l->fail = CLIPCL_OK;
  l->fail_msg[0] = 0;
  l->last_bad[0] = 0;
  return CLIPCL_OK;
}

void clipcl_loader_counters(const clipcl_loader *l, int64_t *samples_seen, int64_t *bad_samples) {
  if (samples_seen) *samples_seen = l ? l->seen : 0;
  if (bad_samples) *bad_samples = l ? l->bad : 0;
}

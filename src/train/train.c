/* train.c: clipcl_train(), the whole training run behind `clipcl train`:
 * options, devices per rank, the model, the threaded loaders (each rank
 * reading its slice), resume, the step loop with its once-per-step agreement
 * between ranks, validation and zero-shot evaluation, metrics.jsonl,
 * checkpoints and report.html. The optimiser step and the collectives inside
 * it are trainer.c; the report is report.c.
 *
 * Ranks. Every rank runs this loop on its own device. Before each step the
 * ranks agree (one small all-reduce) on three things: whether one of them
 * failed (all then stop with that rank's message), whether one of them hit
 * the end of the epoch (all then end it, as a one-process run whose batch is
 * the global one would), and whether the run was asked to stop. Files, the
 * metrics and events other than bad samples are rank 0's; validation and
 * zero-shot evaluation run on rank 0 while the others wait at the next
 * agreement.
 *
 * Data order. A CSV/TSV epoch order is the one-process order; its positions
 * are dealt to the ranks in blocks of the per-rank batch (rank r takes block
 * k*R + r), so global batch k is batch k of a one-process run at batch R x B
 * as long as no sample is bad (a bad sample is replaced by the next one of
 * the same rank's blocks). Tar shards are dealt to ranks after the seeded
 * shard shuffle (shard i of the order to rank i mod R), as open_clip splits
 * them by node: not the one-process order. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dist/dist.h"
#include "io/atomic.h"
#include "model/model.h"
#include "train/report.h"
#include "train/trainer.h"
#include "util/error.h"

/* Steps of this run not counted in rates and ETAs: the first compiles the
 * kernels, the second still fills caches. */
#define WARMUP_STEPS 2

void clipcl_train_options_init(clipcl_train_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->max_bad_fraction = 0.01;
  o->accum_freq = 1;
  o->warmup = 10000;
  o->lr = 5e-4;
  o->wd = 0.2;
  o->beta1 = 0.9;
  o->beta2 = 0.98;
  o->eps = 1e-6;
  o->keep = 3;
  o->log_every = 10;
  o->report = 1;
  o->zeroshot_frequency = 1;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct {
  const clipcl_train_options *o;
  cc_dist *d;
  int rank, R, failed_rank, aborting;
  FILE *badlog;
  cc_report rep;
  FILE *mf;
} run;

static int emit(run *r, clipcl_train_event *ev) {
  ev->rank = r->rank;
  ev->world_size = r->R;
  if (!r->o->on_event || (r->rank != 0 && ev->kind != CLIPCL_TRAIN_EV_BAD_SAMPLE)) return 0;
  return r->o->on_event(r->o->user, ev);
}

static void note(run *r, const char *fmt, ...) CC_PRINTF(2, 3);
static void note(run *r, const char *fmt, ...) {
  char text[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  clipcl_train_event ev = {.kind = CLIPCL_TRAIN_EV_NOTE, .text = text};
  emit(r, &ev);
}

static void on_bad(void *user, const clipcl_bad_sample *b) {
  run *r = user;
  char text[2048];
  snprintf(text, sizeof text, "skipped %s: %s", b->source, b->reason);
  clipcl_train_event ev = {.kind = CLIPCL_TRAIN_EV_BAD_SAMPLE, .text = text};
  emit(r, &ev);
  if (r->badlog) {
    fprintf(r->badlog, "%s\t%s\n", b->source, b->reason);
    fflush(r->badlog);
  }
}

static void on_bad_zs(void *user, const clipcl_bad_sample *b) {
  run *r = user;
  char text[2048];
  snprintf(text, sizeof text, "zero-shot: skipped %s: %s", b->source, b->reason);
  clipcl_train_event ev = {.kind = CLIPCL_TRAIN_EV_BAD_SAMPLE, .text = text};
  emit(r, &ev);
}

static clipcl_status check_options(const clipcl_train_options *o) {
  const char *miss = !o->model_config && !o->init ? "model_config" : !o->train_data ? "train_data"
                     : o->batch_size < 1 ? "batch_size" : !o->out_dir ? "out_dir"
                     : (o->epochs <= 0 && o->steps <= 0) ? "epochs or steps" : NULL;
  if (miss) return cc_fail(CLIPCL_ERR_ARG, "training needs %s", miss);
  if (o->epochs > 0 && o->steps > 0) return cc_fail(CLIPCL_ERR_ARG, "give epochs or steps, not both");
  if (o->accum_freq < 1 || o->warmup < 0 || o->keep < 0 || o->log_every < 0)
    return cc_fail(CLIPCL_ERR_ARG, "accum_freq >= 1, warmup >= 0, keep >= 0 and log_every >= 0 are required");
  if (o->zero != 0 && o->zero != 1) return cc_fail(CLIPCL_ERR_ARG, "zero is 0 or 1 (ZeRO stage 1), not %d", o->zero);
  if (!o->zeroshot_data && (o->zeroshot_classnames || o->zeroshot_templates))
    return cc_fail(CLIPCL_ERR_ARG, "zero-shot class names or templates need zero-shot data");
  if (!(o->lr >= 0 && o->wd >= 0 && o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1 && o->eps > 0 &&
        o->grad_clip_norm >= 0 && o->max_bad_fraction >= 0 && o->max_bad_fraction <= 1))
    return cc_fail(CLIPCL_ERR_ARG, "an optimiser setting is out of range (lr, wd, betas, eps, clip norm)");
  return CLIPCL_OK;
}

static clipcl_status open_data(const clipcl_train_options *o, const char *spec, clipcl_dataset **ds) {
  clipcl_dataset_options dop;
  clipcl_dataset_options_init(&dop);
  dop.img_key = o->csv_img_key;
  dop.caption_key = o->csv_caption_key;
  dop.separator = o->csv_separator;
  CC_TRY(clipcl_dataset_open(spec, &dop, ds));
  if (!clipcl_dataset_has_captions(*ds)) {
    clipcl_dataset_free(*ds);
    *ds = NULL;
    return cc_fail(CLIPCL_ERR_ARG, "%s: training data needs captions (an image-folder tree has none)", spec);
  }
  return CLIPCL_OK;
}

/* This rank's device: item (local rank mod count) of a comma list, else
 * CLIPCL_DEVICE, else the (local rank)-th GPU of the host, else device 0.
 * On a CPU device each rank gets its share of the cores (PoCL reads
 * POCL_MAX_PTHREAD_COUNT when the platform is first opened). */
static clipcl_status open_device(run *r, clipcl_device **dev) {
  cc_dist *d = r->d;
  int lr = cc_dist_local_rank(d);
  char spec[256] = "";
  const char *list = r->o->device;
  if (!list || !*list) list = getenv("CLIPCL_DEVICE");
  int share = cc_dist_cpu_share(d);
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (share < online && !getenv("POCL_MAX_PTHREAD_COUNT")) {
    char v[16];
    snprintf(v, sizeof v, "%d", share);
    setenv("POCL_MAX_PTHREAD_COUNT", v, 0);
  }
  if (list && *list) {
    int count = 1;
    for (const char *p = list; *p; p++) count += *p == ',';
    int want = lr % count, k = 0;
    const char *p = list;
    while (k < want) k += *p++ == ',';
    size_t n = strcspn(p, ",");
    if (n >= sizeof spec) return cc_fail(CLIPCL_ERR_ARG, "device name too long in '%s'", list);
    memcpy(spec, p, n);
    spec[n] = 0;
  } else {
    int n = 0, gpus = 0;
    if (clipcl_device_count(&n) == CLIPCL_OK)
      for (int i = 0; i < n; i++) {
        clipcl_device_info info;
        if (clipcl_device_query(i, &info) == CLIPCL_OK && info.is_gpu) gpus++;
      }
    if (gpus > 0) {
      int want = lr % gpus, k = 0;
      for (int i = 0; i < n; i++) {
        clipcl_device_info info;
        if (clipcl_device_query(i, &info) == CLIPCL_OK && info.is_gpu && k++ == want) {
          snprintf(spec, sizeof spec, "%d", i);
          break;
        }
      }
    }
  }
  return clipcl_device_open(spec[0] ? spec : NULL, dev);
}

/* --siglip from weights that have no logit_bias: the same model with one,
 * at open_clip's initial -10. */
static clipcl_status add_logit_bias(clipcl_model **mp) {
  clipcl_model *m = *mp, *m2 = NULL;
  clipcl_config c = m->L.cfg;
  c.logit_bias = 1;
  c.init_logit_bias = -10.0f;
  float *a = malloc(m->L.total * sizeof *a), *b = NULL;
  clipcl_status s = a ? cc_model_get_params(m, a) : cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  if (!s) s = clipcl_model_create(m->rt, &c, &m2);
  if (!s && !(b = malloc(m2->L.total * sizeof *b))) s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  if (!s) {
    cc_layout_init_params(&m2->L, 0, b); /* for the bias; every other tensor is copied */
    for (int i = 0; i < m->L.n; i++) {
      const cc_tensor_info *ti = &m->L.t[i], *to = cc_layout_find(&m2->L, ti->name);
      if (to) memcpy(b + to->off, a + ti->off, ti->numel * sizeof *b);
    }
    s = cc_model_set_params(m2, b);
  }
  if (!s) {
    snprintf(m2->tokenizer, sizeof m2->tokenizer, "%s", m->tokenizer);
    clipcl_model_free(m);
    *mp = m2;
  } else {
    clipcl_model_free(m2);
  }
  free(a);
  free(b);
  return s;
}

/* ---- loader positions in checkpoints ------------------------------------------
 * {"epoch", "index", "samples_seen", "bad_samples"}: where a run resumes on
 * any number of ranks (index: the furthest position any rank consumed in the
 * shared epoch order; counters summed), then "world_size", "rank_batch",
 * "tar" and "ranks": [[epoch, index, seen, bad], ...] to resume each rank
 * exactly on the same layout. */
typedef struct {
  int64_t epoch, index, seen, bad;
} pos4;

static clipcl_status gather_positions(run *r, clipcl_loader *ld, pos4 *all) {
  clipcl_loader_pos p;
  CC_TRY(clipcl_loader_get_pos(ld, &p));
  int64_t *v = malloc((size_t)r->R * 4 * sizeof *v);
  if (!v) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  for (int i = 0; i < 4 * r->R; i++) v[i] = INT64_MIN;
  v[4 * r->rank + 0] = p.epoch;
  v[4 * r->rank + 1] = p.index;
  v[4 * r->rank + 2] = p.samples_seen;
  v[4 * r->rank + 3] = p.bad_samples;
  clipcl_status s = cc_dist_max_i64(r->d, v, 4 * r->R);
  if (!s)
    for (int k = 0; k < r->R; k++) all[k] = (pos4){v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]};
  free(v);
  return s;
}

static char *state_json(run *r, const pos4 *all, long rank_batch, int tar) {
  cc_buf b = {0};
  pos4 g = all[0];
  g.seen = g.bad = 0;
  for (int k = 0; k < r->R; k++) {
    if (all[k].epoch > g.epoch || (all[k].epoch == g.epoch && all[k].index > g.index)) {
      g.epoch = all[k].epoch;
      g.index = all[k].index;
    }
    g.seen += all[k].seen;
    g.bad += all[k].bad;
  }
  cc_buf_printf(&b, "{\"epoch\": %lld, \"index\": %lld, \"samples_seen\": %lld, \"bad_samples\": %lld, "
                    "\"world_size\": %d, \"rank_batch\": %ld, \"tar\": %d, \"ranks\": [",
                (long long)g.epoch, (long long)g.index, (long long)g.seen, (long long)g.bad, r->R, rank_batch, tar);
  for (int k = 0; k < r->R; k++)
    cc_buf_printf(&b, "%s[%lld, %lld, %lld, %lld]", k ? ", " : "", (long long)all[k].epoch,
                  (long long)all[k].index, (long long)all[k].seen, (long long)all[k].bad);
  cc_buf_str(&b, "]}");
  if (b.oom) {
    cc_buf_free(&b);
    return NULL;
  }
  return b.p;
}

/* Where this rank's loader resumes. *exact = 0 when the saved layout differs. */
static clipcl_status resume_position(run *r, const char *state, long rank_batch, int tar, clipcl_loader_pos *pos,
                                     int *exact, int *found) {
  long long e = 0, ix = 0, seen = 0, bad = 0;
  *exact = 0;
  *found = 0;
  *pos = (clipcl_loader_pos){0, 0, 0, 0};
  if (!state || sscanf(state, "{\"epoch\": %lld, \"index\": %lld, \"samples_seen\": %lld, \"bad_samples\": %lld", &e,
                       &ix, &seen, &bad) != 4)
    return CLIPCL_OK;
  *found = 1;
  int ws = 1, st_tar = tar;
  long rb = rank_batch;
  const char *w = strstr(state, "\"world_size\": ");
  if (w) sscanf(w, "\"world_size\": %d, \"rank_batch\": %ld, \"tar\": %d", &ws, &rb, &st_tar);
  if (ws == r->R && rb == rank_batch && st_tar == tar) {
    if (!w) { /* written by a one-process run without the per-rank list */
      *pos = (clipcl_loader_pos){e, ix, seen, bad};
      *exact = 1;
      return CLIPCL_OK;
    }
    const char *p = strstr(state, "\"ranks\": [");
    if (p) {
      p += strlen("\"ranks\": [");
      for (int k = 0; k <= r->rank && p; k++) {
        long long a, b, c, dd;
        const char *q = strchr(p, '[');
        if (!q || sscanf(q, "[%lld, %lld, %lld, %lld]", &a, &b, &c, &dd) != 4) break;
        if (k == r->rank) {
          *pos = (clipcl_loader_pos){a, b, c, dd};
          *exact = 1;
          return CLIPCL_OK;
        }
        p = strchr(q, ']');
        if (p) p++;
      }
    }
  }
  /* another layout: manifests continue at the furthest position, tar shards
   * (split differently now) restart the epoch; rank 0 carries the counters */
  *pos = (clipcl_loader_pos){e, tar ? 0 : ix, r->rank == 0 ? seen : 0, r->rank == 0 ? bad : 0};
  return CLIPCL_OK;
}

/* ---- agreement between ranks --------------------------------------------------- */

enum { SYNC_FAIL = 0, SYNC_EPOCH_END = 1, SYNC_STOP = 2, SYNC_N = 3 };

/* One all-reduce: who failed (the lowest failing rank), whether an epoch
 * ended somewhere, whether to stop. On failure every rank gets the failing
 * rank's status and message. */
static clipcl_status agree(run *r, clipcl_status mine, int epoch_end, int stop, int *any_end, int *any_stop) {
  int64_t v[SYNC_N] = {mine ? r->R - r->rank : 0, epoch_end, stop};
  char msg[1024];
  if (mine) snprintf(msg, sizeof msg, "%s", clipcl_last_error());
  clipcl_status s = cc_dist_max_i64(r->d, v, SYNC_N);
  if (s) return s;
  *any_end = (int)v[SYNC_EPOCH_END];
  *any_stop = (int)v[SYNC_STOP];
  if (!v[SYNC_FAIL]) return CLIPCL_OK;
  int who = r->R - (int)v[SYNC_FAIL];
  r->failed_rank = who;
  struct {
    int64_t status;
    char msg[1024];
  } pk;
  if (r->rank == who) {
    pk.status = mine;
    snprintf(pk.msg, sizeof pk.msg, "%s", msg);
  }
  if ((s = cc_dist_bcast(r->d, &pk, sizeof pk, who))) return s;
  pk.msg[sizeof pk.msg - 1] = 0;
  if (r->R == 1) return cc_fail((clipcl_status)pk.status, "%s", pk.msg);
  return cc_fail((clipcl_status)pk.status, "rank %d: %s", who, pk.msg);
}

/* ---- the run --------------------------------------------------------------------- */

static void log_step(FILE *mf, long step, long total, int64_t epoch, double loss, double lr, double scale,
                     double bias, int siglip, double sps, int64_t bad, double gnorm) {
  fprintf(mf,
          "{\"type\": \"train\", \"step\": %ld, \"total_steps\": %ld, \"epoch\": %lld, \"loss\": %.6f, "
          "\"lr\": %.6g, \"logit_scale\": %.5f, ",
          step, total, (long long)epoch, loss, lr, scale);
  if (siglip) fprintf(mf, "\"logit_bias\": %.5f, ", bias);
  if (sps >= 0) fprintf(mf, "\"samples_per_s\": %.2f, ", sps);
  else fprintf(mf, "\"samples_per_s\": null, ");
  fprintf(mf, "\"bad_samples\": %lld", (long long)bad);
  if (gnorm >= 0) fprintf(mf, ", \"grad_norm\": %.5g", gnorm);
  fprintf(mf, "}\n");
  fflush(mf);
}

/* Mean contrastive loss over one epoch of the validation loader (rank 0). */
static clipcl_status validate(cc_trainer *t, clipcl_loader *vld, float *pix, int32_t *ids, double *mean,
                              int64_t *count) {
  double sum = 0;
  *count = 0;
  *mean = 0;
  for (;;) {
    clipcl_batch b = {pix, ids, NULL, NULL, 0, 0};
    clipcl_status s = clipcl_loader_next(vld, &b);
    if (s) return cc_fail_ctx(s, "validation data");
    if (b.n == 0) break;
    if (b.n < 2) continue; /* a contrastive loss needs at least two pairs */
    float loss;
    if ((s = cc_trainer_eval_loss(t, pix, ids, b.n, &loss))) return cc_fail_ctx(s, "validation");
    sum += (double)loss * b.n;
    *count += b.n;
  }
  if (*count) *mean = sum / (double)*count;
  return CLIPCL_OK;
}

clipcl_status clipcl_train(const clipcl_train_options *o, clipcl_train_result *out) {
  if (!o) return cc_fail(CLIPCL_ERR_ARG, "clipcl_train: no options");
  if (out) {
    memset(out, 0, sizeof *out);
    out->failed_rank = -1;
  }
  CC_TRY(check_options(o));
  run r = {.o = o, .failed_rank = -1};
  CC_TRY(cc_dist_get(&r.d));
  r.rank = cc_dist_rank(r.d);
  r.R = cc_dist_size(r.d);
  cc_report_init(&r.rep);

  clipcl_status s = CLIPCL_OK;
  clipcl_config cfg;
  clipcl_dataset *ds = NULL, *vds = NULL;
  clipcl_loader *ld = NULL, *vld = NULL;
  clipcl_tokenizer *tok = NULL;
  clipcl_device *dev = NULL;
  clipcl_model *m = NULL;
  cc_trainer *t = NULL;
  float *pix = NULL, *vpix = NULL, *host = NULL;
  int32_t *ids = NULL, *vids = NULL;
  char *state = NULL;
  char path[4200], ckdir[4096];
  const int R = r.R, rank = r.rank;
  int tar = 0;
  int64_t dsize = -1;
  long steps_per_epoch = -1, total = o->steps;
  const long N = (long)o->batch_size * o->accum_freq, G = N * R;
  snprintf(ckdir, sizeof ckdir, "%s/checkpoints", o->out_dir);

  /* every rank makes the folder (it is its own on another host); rank 0's
   * must exist, others only keep their bad-sample log there */
  mkdir(o->out_dir, 0755);
  struct stat st;
  if (rank == 0 && (stat(o->out_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
    s = cc_fail(CLIPCL_ERR_IO, "%s: cannot create the output directory", o->out_dir);
    goto sync_fail;
  }
  if (o->model_config) s = clipcl_config_get(o->model_config, &cfg);
  if (!s) s = open_data(o, o->train_data, &ds);
  if (!s && o->val_data && rank == 0) s = open_data(o, o->val_data, &vds);
  if (!s) s = clipcl_tokenizer_create(&tok);
  tar = ds && clipcl_dataset_kind(ds) == CLIPCL_DATA_TAR;
  if (!s && tar && clipcl_dataset_num_shards(ds) < R)
    s = cc_fail(CLIPCL_ERR_ARG, "%s: %d shard(s) cannot be split over %d ranks (each needs at least one)",
                o->train_data, clipcl_dataset_num_shards(ds), R);
  dsize = ds ? clipcl_dataset_size(ds) : -1;
  steps_per_epoch = dsize > 0 ? (long)(dsize / G) : -1;
  if (!s && o->epochs > 0) {
    if (steps_per_epoch <= 0)
      s = steps_per_epoch == 0
              ? cc_fail(CLIPCL_ERR_ARG, "%s has fewer samples (%lld) than one step needs (%ld)", o->train_data,
                        (long long)dsize, G)
              : cc_fail(CLIPCL_ERR_ARG, "%s: size unknown (no sizes.json): give steps instead of epochs",
                        o->train_data);
    total = steps_per_epoch * o->epochs;
  }
  if (!s) {
    if (o->dev) dev = o->dev;
    else s = open_device(&r, &dev);
  }
  if (!s && o->init) {
    s = clipcl_model_load(dev, o->init, o->model_config ? &cfg : NULL, &m);
    if (!s && !strcmp(clipcl_model_config_source(m), "inferred"))
      note(&r, "%s has no clipcl config: inferred from tensor shapes (heads = width/64, exact GELU); pass "
               "--model-config (e.g. ViT-B-32-quickgelu for OpenAI weights) if that is wrong", o->init);
    if (!s && o->siglip && !m->L.has_logit_bias) s = add_logit_bias(&m);
    if (!s) cfg = m->L.cfg;
  } else if (!s) {
    if (o->siglip) {
      /* open_clip --siglip: logit scale starts at log 10, the bias at -10 */
      cfg.init_logit_scale = logf(10.0f);
      cfg.logit_bias = 1;
      cfg.init_logit_bias = -10.0f;
    }
    s = clipcl_model_create(dev, &cfg, &m);
    if (!s) s = clipcl_model_init(m, o->seed);
  }
  /* every rank starts from rank 0's parameters */
  if (!s && R > 1) {
    if (!(host = malloc(m->L.total * sizeof *host))) s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
    if (!s && rank == 0) s = cc_model_get_params(m, host);
  }
sync_fail:;
  int any_end, any_stop;
  clipcl_status ss = agree(&r, s, 0, 0, &any_end, &any_stop);
  if (ss) {
    s = ss;
    goto done;
  }
  if (R > 1) {
    if ((s = cc_dist_bcast(r.d, host, m->L.total * sizeof *host, 0))) goto done;
    if ((s = cc_model_set_params(m, host))) goto done;
    free(host);
    host = NULL;
  }
  snprintf(m->tokenizer, sizeof m->tokenizer, "%s", clipcl_tokenizer_identity(tok));
  if (o->warmup >= total && o->warmup > 0)
    note(&r, "note: warmup %ld >= %ld steps: the whole run warms up", o->warmup, total);

  cc_train_hparams hp = {(float)o->lr, (float)o->beta1, (float)o->beta2, (float)o->eps, (float)o->wd, o->warmup,
                         total, (float)o->grad_clip_norm, o->batch_size, o->accum_freq, o->lock_image};
  cc_train_setup su = {o->siglip, o->grad_checkpointing, o->zero, r.d};
  s = cc_trainer_create_setup(m, &hp, &su, &t);

  if (!s) {
    snprintf(path, sizeof path, "%s/bad_samples.tsv", o->out_dir);
    r.badlog = fopen(path, "a");
  }
  clipcl_loader_options lo;
  clipcl_loader_options_init(&lo);
  lo.batch_size = (int)N;
  lo.image_size = cfg.vision.image_size;
  lo.context_length = cfg.text.context_length;
  lo.tokenizer = tok;
  lo.workers = o->workers > 0 ? o->workers : cc_dist_cpu_share(r.d);
  lo.seed = o->seed;
  lo.max_bad_fraction = o->max_bad_fraction;
  lo.on_bad = on_bad;
  lo.user = &r;
  lo.shard_index = rank;
  lo.shard_count = R;
  lo.shard_block = (int)N;
  if (!s) s = clipcl_loader_create(ds, &lo, &ld);
  if (!s && vds) {
    clipcl_loader_options vo = lo;
    vo.shard_count = 1;
    vo.shard_index = 0;
    vo.training = 0;
    vo.augment = 0;
    s = clipcl_loader_create(vds, &vo, &vld);
  }
  size_t px = (size_t)3 * cfg.vision.image_size * cfg.vision.image_size, T = (size_t)cfg.text.context_length;
  if (!s) {
    pix = malloc((size_t)N * px * sizeof *pix);
    ids = malloc((size_t)N * T * sizeof *ids);
    if (vds) {
      vpix = malloc((size_t)N * px * sizeof *vpix);
      vids = malloc((size_t)N * T * sizeof *vids);
    }
    if (!pix || !ids || (vds && (!vpix || !vids))) s = cc_fail(CLIPCL_ERR_NOMEM, "out of memory for a batch of %ld", N);
  }
  if ((ss = agree(&r, s, 0, 0, &any_end, &any_stop))) {
    s = ss;
    goto done;
  }

  /* resume */
  if (o->resume) {
    long rstep = 0;
    if (!strcmp(o->resume, "latest")) {
      s = cc_checkpoint_latest_all(t, ckdir, &rstep, path, sizeof path);
    } else {
      snprintf(path, sizeof path, "%s", o->resume);
    }
    if (!s) s = cc_checkpoint_load(t, path, &state);
    clipcl_loader_pos pos;
    int exact = 0, found = 0;
    if (!s) s = resume_position(&r, state, N, tar, &pos, &exact, &found);
    if (!s && found) s = clipcl_loader_seek(ld, &pos);
    if ((ss = agree(&r, s, 0, 0, &any_end, &any_stop))) {
      s = ss;
      goto done;
    }
    if (!found) note(&r, "%s: no loader position saved; data restarts from the beginning", path);
    else if (!exact)
      note(&r, tar ? "the checkpoint was written with another rank layout: tar shards restart epoch %lld"
                   : "the checkpoint was written with another rank layout: the data continues at sample %lld of "
                     "epoch %lld",
           tar ? (long long)pos.epoch : (long long)pos.index, (long long)pos.epoch);
    note(&r, "resumed from %s at step %ld (epoch %lld, sample %lld)", path, t->step, (long long)pos.epoch,
         (long long)pos.index);
    if (rank == 0) s = cc_report_load_metrics(&r.rep, o->out_dir, t->step);
  }
  if (!s && rank == 0) {
    snprintf(path, sizeof path, "%s/metrics.jsonl", o->out_dir);
    r.mf = fopen(path, o->resume ? "a" : "w");
    if (!r.mf) s = cc_fail(CLIPCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  }
  if ((ss = agree(&r, s, 0, 0, &any_end, &any_stop))) {
    s = ss;
    goto done;
  }
  char layout[64] = "";
  if (R > 1) snprintf(layout, sizeof layout, "%d ranks x ", R);
  note(&r, "training %s (%llu parameters) on %s: %ld steps of %ld samples (%sbatch %d x accum %d)%s", cfg.name,
       (unsigned long long)clipcl_config_num_params(&cfg), o->train_data, total, G, layout, o->batch_size,
       o->accum_freq, steps_per_epoch > 0 ? "" : ", data size unknown");
  if (steps_per_epoch > 0) note(&r, "%ld steps per epoch, %lld samples", steps_per_epoch, (long long)dsize);
  note(&r, "activation memory %.1f MiB per rank%s%s", (double)cc_model_activation_bytes(m) / 1048576.0,
       o->grad_checkpointing ? " (activation checkpointing)" : "", o->zero && R > 1 ? "; AdamW state sharded (ZeRO-1)" : "");

  /* where each rank runs (the first few) */
  for (int k = 0; k < R && k < 8; k++) {
    char line[320] = "";
    if (k == rank) {
      clipcl_device_info di;
      if (clipcl_device_get_info(dev, &di) == CLIPCL_OK)
        snprintf(line, sizeof line, "rank %d: %s, %d compute unit%s", rank, di.name, di.compute_units,
                 di.compute_units == 1 ? "" : "s");
    }
    if (R > 1 && (s = cc_dist_bcast(r.d, line, sizeof line, k))) goto done;
    line[sizeof line - 1] = 0;
    if (R > 1) note(&r, "%s%s", line, k == 7 && R > 8 ? " (and more ranks)" : "");
  }
  /* crash-test hook: CLIPCL_TEST_KILL_RANK=<rank>:<step> kills that rank
   * when it has taken that step */
  long kill_step = -1;
  {
    const char *kr = getenv("CLIPCL_TEST_KILL_RANK");
    int krank;
    long kstep;
    if (kr && sscanf(kr, "%d:%ld", &krank, &kstep) == 2 && krank == rank) kill_step = kstep;
  }
  double t_start = now(), t_last = t_start, t_warm = -1;
  long step_at_start = t->step, warm_step = -1, steps_since = 0;
  int64_t epoch = 0;
  long save_every = o->save_every > 0 ? o->save_every : (steps_per_epoch > 0 ? steps_per_epoch : 1000);
  int stop = 0, interrupted = 0;
  (void)any_stop;
  float loss = 0;
  while (t->step < total) {
    clipcl_batch b = {pix, ids, NULL, NULL, 0, 0};
    s = clipcl_loader_next(ld, &b);
    if ((ss = agree(&r, s, !s && b.n == 0, 0, &any_end, &any_stop))) {
      s = ss;
      goto done;
    }
    if (any_end) {
      /* an epoch ends for all when it ends for one: the others drop the
       * batch they got (the one-process run would not have it either) */
      if (b.n > 0) {
        clipcl_loader_pos p;
        clipcl_loader_get_pos(ld, &p);
        p.epoch = b.epoch + 1;
        p.index = 0;
        if ((s = clipcl_loader_seek(ld, &p))) goto done;
      }
      continue;
    }
    epoch = b.epoch;
    float gnorm = -1;
    s = cc_trainer_step(t, pix, ids, &loss, &gnorm);
    if (s == CLIPCL_ERR_NUMERIC) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", clipcl_last_error());
      cc_fail(s, "%s; stopping, the last good checkpoint in %s is kept", msg, ckdir);
    }
    if (s) {
      /* a NaN loss is every rank's (the loss is summed first): they agree;
       * any other failure inside the step's exchanges leaves the others
       * waiting there, so the job is aborted at exit */
      if (s == CLIPCL_ERR_NUMERIC || R == 1) {
        ss = agree(&r, s, 0, 0, &any_end, &any_stop);
        s = ss ? ss : s;
      } else {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", clipcl_last_error());
        cc_dist_mark_broken(r.d);
        r.failed_rank = rank;
        r.aborting = 1;
        s = cc_fail(s, "rank %d: %s (the job is aborted)", rank, msg);
      }
      goto done;
    }
    steps_since++;
    long step = t->step;
    if (step == kill_step) raise(SIGKILL);
    int last = step == total;
    int epoch_end = steps_per_epoch > 0 && step % steps_per_epoch == 0;
    if (step - step_at_start == WARMUP_STEPS) {
      t_warm = now();
      warm_step = step;
    }
    int logged = o->log_every > 0 && (step % o->log_every == 0 || last || step == 1);
    if (rank == 0) cc_report_add_loss(&r.rep, step, loss);
    int64_t seen_bad[2] = {0, 0};
    float scale = 0, bias = 0;
    if (logged) {
      clipcl_loader_counters(ld, &seen_bad[0], &seen_bad[1]);
      double sb[2] = {(double)seen_bad[0], (double)seen_bad[1]};
      if ((s = cc_dist_sum_d(r.d, sb, 2))) goto done;
      seen_bad[0] = (int64_t)sb[0];
      seen_bad[1] = (int64_t)sb[1];
      if ((s = cc_read(m->rt, cc_P(m, m->L.logit_scale), &scale, 1))) goto done;
      if (m->L.has_logit_bias && (s = cc_read(m->rt, cc_P(m, m->L.logit_bias), &bias, 1))) goto done;
    }
    clipcl_train_event ev = {.kind = CLIPCL_TRAIN_EV_STEP, .step = step, .total_steps = total, .logged = logged,
                             .loss = loss, .lr = cc_lr_at(&hp, step - 1), .logit_scale = exp(scale),
                             .logit_bias = bias, .grad_norm = gnorm, .samples_per_s = -1, .eta_s = -1,
                             .samples_seen = seen_bad[0], .bad_samples = seen_bad[1]};
    ev.epoch = steps_per_epoch > 0 ? (double)step / (double)steps_per_epoch : (double)epoch;
    if (logged) {
      double tn = now();
      /* rates leave the warm-up steps out: the interval starts after them */
      if (t_warm >= 0 && step > warm_step) {
        double from = t_last > t_warm ? t_last : t_warm;
        long n_steps = t_last > t_warm ? steps_since : step - warm_step;
        ev.samples_per_s = (double)n_steps * (double)G / (tn - from);
        ev.eta_s = (double)(total - step) * (tn - t_warm) / (double)(step - warm_step);
      }
      if (rank == 0)
        log_step(r.mf, step, total, epoch, loss, ev.lr, ev.logit_scale, bias, o->siglip, ev.samples_per_s,
                 seen_bad[1], gnorm);
      t_last = tn;
      steps_since = 0;
    }
    if (emit(&r, &ev)) stop = 1;
    if (epoch_end || last) {
      double ep_done = steps_per_epoch > 0 ? (double)step / steps_per_epoch : (double)epoch + 1;
      if (vld && rank == 0) {
        double mean;
        int64_t count;
        s = validate(t, vld, vpix, vids, &mean, &count);
        if (!s && count) {
          cc_report_add_val(&r.rep, step, ep_done, mean);
          fprintf(r.mf, "{\"type\": \"val\", \"step\": %ld, \"epoch\": %.4g, \"val_loss\": %.6f, \"n\": %lld}\n", step,
                  ep_done, mean, (long long)count);
          fflush(r.mf);
          clipcl_train_event ve = {.kind = CLIPCL_TRAIN_EV_VAL, .step = step, .total_steps = total,
                                   .epoch = ep_done, .val_loss = mean, .val_n = count};
          emit(&r, &ve);
        }
      }
      /* every zeroshot_frequency epochs (counted in whole epochs), and at the end */
      long ep_int = steps_per_epoch > 0 ? step / steps_per_epoch : 0;
      long freq = o->zeroshot_frequency >= 1 ? (long)o->zeroshot_frequency : 1;
      if (!s && o->zeroshot_data && rank == 0 &&
          (last || (o->zeroshot_frequency > 0 && epoch_end && ep_int % freq == 0))) {
        s = cc_report_zeroshot(&r.rep, m, tok, o->zeroshot_data, o->zeroshot_classnames, o->zeroshot_templates,
                               lo.workers, step, ep_done, on_bad_zs, &r);
        if (!s) {
          const clipcl_zeroshot_result *z = &r.rep.last;
          double chance = 1.0 / z->classes;
          fprintf(r.mf,
                  "{\"type\": \"zeroshot\", \"step\": %ld, \"epoch\": %.4g, \"top1\": %.6f, \"top5\": %.6f, "
                  "\"mean_per_class_recall\": %.6f, \"n\": %zu, \"classes\": %d, \"chance\": %.6f}\n",
                  step, ep_done, z->metrics.top1, z->metrics.top5, z->metrics.mean_per_class_recall, z->n,
                  z->classes, chance);
          fflush(r.mf);
          clipcl_train_event ze = {.kind = CLIPCL_TRAIN_EV_ZEROSHOT, .step = step, .total_steps = total,
                                   .epoch = ep_done, .top1 = z->metrics.top1, .top5 = z->metrics.top5,
                                   .chance = chance, .zs_n = (int64_t)z->n, .text = o->zeroshot_data};
          emit(&r, &ze);
        }
      }
    }
    if ((ss = agree(&r, s, 0, stop, &any_end, &any_stop))) {
      s = ss;
      goto done;
    }
    if (step % save_every == 0 || last || any_stop) {
      pos4 *all = malloc((size_t)R * sizeof *all);
      if (!all) s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
      if (!s) s = gather_positions(&r, ld, all);
      char *js = s ? NULL : state_json(&r, all, N, tar);
      free(all);
      if (!s && !js) s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
      if (!s) s = cc_checkpoint_save(t, ckdir, js);
      free(js);
      if (!s && rank == 0) {
        cc_checkpoint_prune(ckdir, o->keep);
        snprintf(path, sizeof path, "%s/step_%ld.safetensors", ckdir, t->step);
        clipcl_train_event ce = {.kind = CLIPCL_TRAIN_EV_CHECKPOINT, .step = t->step, .total_steps = total,
                                 .text = path};
        emit(&r, &ce);
      }
      if (s) goto done;
    }
    if (any_stop) {
      interrupted = 1;
      break;
    }
  }
  int64_t counters[2] = {0, 0};
  clipcl_loader_counters(ld, &counters[0], &counters[1]);
  double sb[2] = {(double)counters[0], (double)counters[1]};
  if ((s = cc_dist_sum_d(r.d, sb, 2))) goto done;
  if (out) {
    out->steps_done = t->step - step_at_start;
    out->final_step = t->step;
    out->interrupted = interrupted;
    out->seconds = now() - t_start;
    out->samples_seen = (int64_t)sb[0];
    out->bad_samples = (int64_t)sb[1];
    out->last_loss = loss;
    out->world_size = R;
  }
  if (interrupted) goto done;
  snprintf(path, sizeof path, "%s/model.safetensors", o->out_dir);
  if (rank == 0) s = clipcl_model_save(m, path, 0);
  if (!s && rank == 0 && o->report) {
    r.rep.config_json = clipcl_config_to_json(&cfg);
    s = cc_report_write(&r.rep, o->out_dir, cfg.name);
  }
  if ((ss = agree(&r, s, 0, 0, &any_end, &any_stop))) {
    s = ss;
    goto done;
  }
  clipcl_train_event de = {.kind = CLIPCL_TRAIN_EV_DONE, .step = t->step, .total_steps = total,
                           .loss = loss, .samples_seen = (int64_t)sb[0], .bad_samples = (int64_t)sb[1],
                           .text = path};
  emit(&r, &de);
done:
  if (out && s) {
    out->failed_rank = r.failed_rank >= 0 ? r.failed_rank : rank;
    out->aborting = r.aborting;
  }
  free(state);
  free(host);
  cc_report_free(&r.rep);
  if (r.mf) fclose(r.mf);
  if (r.badlog) fclose(r.badlog);
  free(pix);
  free(ids);
  free(vpix);
  free(vids);
  clipcl_loader_free(ld);
  clipcl_loader_free(vld);
  cc_trainer_free(t);
  clipcl_model_free(m);
  if (dev && o->profile) clipcl_device_profile_report(dev, o->profile);
  if (dev != o->dev) clipcl_device_free(dev);
  clipcl_tokenizer_free(tok);
  clipcl_dataset_free(ds);
  clipcl_dataset_free(vds);
  return s;
}

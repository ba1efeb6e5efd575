/* trainer.c: see trainer.h. */
#include "train/trainer.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic.h"
#include "io/safetensors.h"
#include "model/memory.h"
#include "model/weights.h"
#include "ops/ops.h"

clipcl_status cc_trainer_create(cc_model *m, const cc_train_hparams *hp, cc_trainer **out) {
  *out = NULL;
  if (hp->micro < 1 || hp->accum < 1 || hp->total_steps < 1 || hp->warmup < 0)
    return cc_fail(CLIPCL_ERR_ARG, "training needs batch >= 1, accum >= 1, steps >= 1 and warmup >= 0");
  cc_trainer *t = calloc(1, sizeof *t);
  if (!t) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  t->m = m;
  t->hp = *hp;
  size_t n = m->L.total, N = (size_t)hp->micro * hp->accum, E = (size_t)m->L.cfg.embed_dim;
  unsigned char *mask = NULL;
  /* a batch that does not fit is refused before anything is allocated */
  clipcl_status s = cc_check_training_fits(m->rt, &m->L, hp->micro, hp->accum);
  if (!s) s = cc_model_enable_grads(m);
  if (!s) s = cc_model_workspace(m, 1, hp->micro, 1);
  if (!s) s = cc_model_workspace(m, 0, hp->micro, 1);
  if (!s) s = cc_model_head_workspace(m, (int)N);
  if (!s) s = cc_arena_init(&t->oar, m->rt, "optimiser", 2 * n + 4 * N * E + 32);
  if (!s) s = cc_arena_alloc(&t->oar, n, &t->mom);
  if (!s) s = cc_arena_alloc(&t->oar, n, &t->vel);
  if (!s) s = cc_arena_alloc(&t->oar, 1, &t->gnorm);
  if (!s) s = cc_arena_alloc(&t->oar, 1, &t->gscale);
  if (!s && hp->accum > 1) {
    s = cc_arena_alloc(&t->oar, N * E, &t->img_all);
    if (!s) s = cc_arena_alloc(&t->oar, N * E, &t->txt_all);
    if (!s) s = cc_arena_alloc(&t->oar, N * E, &t->dimg_all);
    if (!s) s = cc_arena_alloc(&t->oar, N * E, &t->dtxt_all);
  }
  if (!s) s = cc_fill(m->rt, t->mom, n, 0.0f);
  if (!s) s = cc_fill(m->rt, t->vel, n, 0.0f);
  if (!s && !(mask = cc_layout_decay_mask(&m->L, hp->lock_image)))
    s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  if (!s) s = cc_buffer(m->rt, n, &t->mask, "weight-decay mask");
  if (!s) {
    cl_int e = clEnqueueWriteBuffer(cc_queue(m->rt), t->mask, CL_TRUE, 0, n, mask, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = cc_cl_fail(e, "clEnqueueWriteBuffer", "uploading the weight-decay mask");
  }
  free(mask);
  if (s) {
    cc_trainer_free(t);
    return s;
  }
  *out = t;
  return CLIPCL_OK;
}

void cc_trainer_free(cc_trainer *t) {
  if (!t) return;
  cc_release(t->mask);
  cc_arena_free(&t->oar);
  free(t);
}

double cc_lr_at(const cc_train_hparams *hp, long step) {
  if (step < hp->warmup) return hp->lr * (double)(step + 1) / (double)hp->warmup;
  double e = (double)(step - hp->warmup), es = (double)(hp->total_steps - hp->warmup);
  if (es <= 0) return hp->lr;
  return 0.5 * (1.0 + cos(3.14159265358979323846 * e / es)) * hp->lr;
}

static clipcl_status upload(cc_trainer *t, const float *pixels, const int32_t *ids, int j) {
  cc_model *m = t->m;
  size_t b = (size_t)t->hp.micro, S = (size_t)m->L.cfg.vision.image_size, T = (size_t)m->L.cfg.text.context_length;
  CC_TRY(cc_write(m->rt, m->vis.pixels, pixels + (size_t)j * b * 3 * S * S, b * 3 * S * S));
  return cc_write(m->rt, m->txt.ids, ids + (size_t)j * b * T, b * T);
}

/* Forward, loss and backward of N = accum*micro pairs into the gradients. */
static clipcl_status accumulate(cc_trainer *t, const float *pixels, const int32_t *ids) {
  cc_model *m = t->m;
  int b = t->hp.micro, K = t->hp.accum, E = m->L.cfg.embed_dim, lock = t->hp.lock_image;
  size_t bE = (size_t)b * E;
  CC_TRY(cc_model_zero_grads(m));
  if (K == 1) {
    CC_TRY(upload(t, pixels, ids, 0));
    CC_TRY(cc_vision_forward(m, b));
    CC_TRY(cc_text_forward(m, b));
    CC_TRY(cc_head_forward_backward(m, m->vis.feat, m->txt.feat, b, 1, m->vis.dfeat, m->txt.dfeat));
    if (!lock) CC_TRY(cc_vision_backward(m, b));
    return cc_text_backward(m, b);
  }
  for (int j = 0; j < K; j++) {
    CC_TRY(upload(t, pixels, ids, j));
    CC_TRY(cc_vision_forward(m, b));
    CC_TRY(cc_text_forward(m, b));
    CC_TRY(cc_copy(m->rt, cc_at(t->img_all, (size_t)j * bE), m->vis.feat, bE));
    CC_TRY(cc_copy(m->rt, cc_at(t->txt_all, (size_t)j * bE), m->txt.feat, bE));
  }
  CC_TRY(cc_head_forward_backward(m, t->img_all, t->txt_all, b * K, 1, t->dimg_all, t->dtxt_all));
  for (int j = 0; j < K; j++) {
    CC_TRY(upload(t, pixels, ids, j));
    if (!lock) {
      CC_TRY(cc_vision_forward(m, b));
      CC_TRY(cc_copy(m->rt, m->vis.dfeat, cc_at(t->dimg_all, (size_t)j * bE), bE));
      CC_TRY(cc_vision_backward(m, b));
    }
    CC_TRY(cc_text_forward(m, b));
    CC_TRY(cc_copy(m->rt, m->txt.dfeat, cc_at(t->dtxt_all, (size_t)j * bE), bE));
    CC_TRY(cc_text_backward(m, b));
  }
  return CLIPCL_OK;
}

clipcl_status cc_trainer_step(cc_trainer *t, const float *pixels, const int32_t *ids, float *loss, float *gnorm) {
  cc_model *m = t->m;
  CC_TRY(accumulate(t, pixels, ids));
  cc_view scale = cc_none();
  if (t->hp.grad_clip > 0) {
    CC_TRY(cc_global_norm(m->rt, t->gnorm, m->grads, m->L.total));
    CC_TRY(cc_clip_factor(m->rt, t->gscale, t->gnorm, t->hp.grad_clip));
    scale = t->gscale;
  }
  CC_TRY(cc_read(m->rt, m->head.loss, loss, 1)); /* the step's one synchronisation */
  *gnorm = -1.0f;
  if (t->hp.grad_clip > 0) CC_TRY(cc_read(m->rt, t->gnorm, gnorm, 1));
  if (!isfinite(*loss))
    return cc_fail(CLIPCL_ERR_NUMERIC, "loss is %s at step %ld", isnan(*loss) ? "NaN" : "infinite", t->step + 1);
  cc_adamw_hparams h = {(float)cc_lr_at(&t->hp, t->step), t->hp.beta1, t->hp.beta2, t->hp.eps, t->hp.weight_decay,
                        (int)(t->step + 1)};
  CC_TRY(cc_adamw(m->rt, m->params, m->grads, t->mom, t->vel, t->mask, 0, scale, m->L.total, &h));
  CC_TRY(cc_clamp(m->rt, cc_P(m, m->L.logit_scale), 1, 0.0f, logf(100.0f)));
  t->step++;
  return CLIPCL_OK;
}

clipcl_status cc_trainer_eval_loss(cc_trainer *t, const float *pixels, const int32_t *ids, int n, float *loss) {
  cc_model *m = t->m;
  int b = t->hp.micro, N = b * t->hp.accum;
  if (n < 1 || n > N) return cc_fail(CLIPCL_ERR_ARG, "validation batch %d outside 1..%d", n, N);
  int E = m->L.cfg.embed_dim, S = m->L.cfg.vision.image_size, T = m->L.cfg.text.context_length;
  cc_view img = t->hp.accum > 1 ? t->img_all : m->vis.feat, txt = t->hp.accum > 1 ? t->txt_all : m->txt.feat;
  for (int j = 0; j * b < n; j++) {
    int bj = n - j * b < b ? n - j * b : b;
    CC_TRY(cc_write(m->rt, m->vis.pixels, pixels + (size_t)j * b * 3 * S * S, (size_t)bj * 3 * S * S));
    CC_TRY(cc_write(m->rt, m->txt.ids, ids + (size_t)j * b * T, (size_t)bj * T));
    CC_TRY(cc_vision_forward(m, bj));
    CC_TRY(cc_text_forward(m, bj));
    if (t->hp.accum > 1) {
      CC_TRY(cc_copy(m->rt, cc_at(img, (size_t)j * b * E), m->vis.feat, (size_t)bj * E));
      CC_TRY(cc_copy(m->rt, cc_at(txt, (size_t)j * b * E), m->txt.feat, (size_t)bj * E));
    } else if (n > b) {
      return cc_fail(CLIPCL_ERR_ARG, "validation batch larger than the micro-batch");
    }
  }
  CC_TRY(cc_head_forward_backward(m, img, txt, n, 0, cc_none(), cc_none()));
  return cc_read(m->rt, m->head.loss, loss, 1);
}

/* ---- checkpoints ------------------------------------------------------------ */

static void ckpt_paths(const char *dir, long step, char *model, char *optim, size_t cap) {
  snprintf(model, cap, "%s/step_%ld.safetensors", dir, step);
  snprintf(optim, cap, "%s/step_%ld.optim.safetensors", dir, step);
}

clipcl_status cc_checkpoint_save(cc_trainer *t, const char *dir, const char *state_json) {
  cc_model *m = t->m;
  size_t n = m->L.total;
  mkdir(dir, 0755);
  char model[4096], optim[4096], step[32];
  ckpt_paths(dir, t->step, model, optim, sizeof model);
  snprintf(step, sizeof step, "%ld", t->step);
  float *host = malloc(3 * n * sizeof *host);
  if (!host) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory writing a checkpoint");
  clipcl_status s = cc_read(m->rt, t->mom, host, n);
  if (!s) s = cc_read(m->rt, t->vel, host + n, n);
  if (!s) s = cc_model_get_params(m, host + 2 * n);
  if (!s) {
    cc_st_out outs[2] = {{.name = "exp_avg", .dtype = CC_ST_F32, .ndim = 1, .shape = {(int64_t)n}, .data = host},
                         {.name = "exp_avg_sq", .dtype = CC_ST_F32, .ndim = 1, .shape = {(int64_t)n}, .data = host + n}};
    cc_st_kv meta[3] = {{"format", "clipcl-optimizer"}, {"clipcl.step", step},
                        {"clipcl.state", state_json ? state_json : "{}"}};
    s = cc_st_write(optim, outs, 2, meta, 3, NULL, NULL);
  }
  if (!s) {
    /* crash-test hook: CLIPCL_TEST_KILL_CHECKPOINT=<step> dies half-way
     * through writing that step's model file */
    const char *kill = getenv("CLIPCL_TEST_KILL_CHECKPOINT");
    if (kill && atol(kill) == t->step) cc_atomic_inject_kill((int64_t)(n * 2));
    const char *kv[2] = {"clipcl.step", step};
    s = cc_weights_write_meta(model, &m->L, host + 2 * n, 0, m->tokenizer, kv, 1);
  }
  free(host);
  return s;
}

/* Step of a complete checkpoint pair, or -1. */
static long complete_step(const char *dir, long step) {
  char model[4096], optim[4096];
  ckpt_paths(dir, step, model, optim, sizeof model);
  long found = -1;
  cc_st_file *a = NULL, *b = NULL;
  if (cc_st_open(model, &a) == CLIPCL_OK && cc_st_open(optim, &b) == CLIPCL_OK) {
    const char *sa = cc_st_meta(a, "clipcl.step"), *sb = cc_st_meta(b, "clipcl.step");
    if (sa && sb && !strcmp(sa, sb) && atol(sa) == step) found = step;
  }
  if (a) cc_st_close(a);
  if (b) cc_st_close(b);
  cc_clear_error();
  return found;
}

/* Steps of every step_N.safetensors model file in dir, descending. */
static int list_steps(const char *dir, long **out) {
  *out = NULL;
  DIR *d = opendir(dir);
  if (!d) return 0;
  long *v = NULL;
  int n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    long s;
    char tail[64];
    if (sscanf(e->d_name, "step_%ld%63s", &s, tail) == 2 && !strcmp(tail, ".safetensors") && s >= 0) {
      if (n == cap) {
        cap = cap ? 2 * cap : 16;
        long *nv = realloc(v, (size_t)cap * sizeof *nv);
        if (!nv) break;
        v = nv;
      }
      v[n++] = s;
    }
  }
  closedir(d);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j] > v[j - 1]; j--) {
      long x = v[j];
      v[j] = v[j - 1];
      v[j - 1] = x;
    }
  *out = v;
  return n;
}

clipcl_status cc_checkpoint_latest(const char *dir, long *step, char *path, size_t cap) {
  long *v;
  int n = list_steps(dir, &v);
  for (int i = 0; i < n; i++)
    if (complete_step(dir, v[i]) >= 0) {
      *step = v[i];
      snprintf(path, cap, "%s/step_%ld.safetensors", dir, v[i]);
      free(v);
      return CLIPCL_OK;
    }
  free(v);
  return cc_fail(CLIPCL_ERR_IO, "%s: no complete checkpoint to resume from", dir);
}

void cc_checkpoint_prune(const char *dir, int keep) {
  if (keep <= 0) return;
  long *v;
  int n = list_steps(dir, &v), kept = 0;
  for (int i = 0; i < n; i++) {
    if (complete_step(dir, v[i]) >= 0 && kept < keep) {
      kept++;
      continue;
    }
    if (kept == 0) continue; /* never delete anything newer than the newest complete one */
    char model[4096], optim[4096];
    ckpt_paths(dir, v[i], model, optim, sizeof model);
    /* optimiser file first: killed in between, the model file left behind
     * is an incomplete pair that the next prune removes (an optimiser file
     * alone would never be listed again) */
    remove(optim);
    remove(model);
  }
  free(v);
  cc_atomic_remove_stale(dir); /* temporaries of runs killed mid-write */
}

clipcl_status cc_checkpoint_load(cc_trainer *t, const char *model_path, char **state_json) {
  cc_model *m = t->m;
  *state_json = NULL;
  size_t len = strlen(model_path);
  const char *suf = ".safetensors";
  if (len < strlen(suf) || strcmp(model_path + len - strlen(suf), suf))
    return cc_fail(CLIPCL_ERR_ARG, "%s: a checkpoint is a step_N.safetensors file", model_path);
  char optim[4096];
  snprintf(optim, sizeof optim, "%.*s.optim.safetensors", (int)(len - strlen(suf)), model_path);
  clipcl_config cfg;
  float *host;
  cc_weights_info wi;
  CC_TRY(cc_weights_read(model_path, &m->L.cfg, &cfg, &host, &wi));
  cc_st_file *f = NULL, *mf = NULL;
  clipcl_status s = cc_st_open(optim, &f);
  if (!s) s = cc_st_open(model_path, &mf);
  const cc_st_tensor *ea = f ? cc_st_find(f, "exp_avg") : NULL, *es = f ? cc_st_find(f, "exp_avg_sq") : NULL;
  const char *step_o = f ? cc_st_meta(f, "clipcl.step") : NULL, *step_m = mf ? cc_st_meta(mf, "clipcl.step") : NULL;
  if (!s && (!ea || !es || ea->numel != m->L.total || es->numel != m->L.total))
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: optimiser state does not match the model (%zu parameters)", optim,
                m->L.total);
  if (!s && (!step_o || !step_m || strcmp(step_o, step_m)))
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s and %s are not from the same step", model_path, optim);
  float *mv = NULL;
  if (!s && !(mv = malloc(2 * m->L.total * sizeof *mv))) s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  if (!s) s = cc_st_read_f32(f, ea, mv);
  if (!s) s = cc_st_read_f32(f, es, mv + m->L.total);
  if (!s) s = cc_model_set_params(m, host);
  if (!s) s = cc_write(m->rt, t->mom, mv, m->L.total);
  if (!s) s = cc_write(m->rt, t->vel, mv + m->L.total, m->L.total);
  if (!s) {
    t->step = atol(step_o);
    const char *st = cc_st_meta(f, "clipcl.state");
    size_t l = st ? strlen(st) : 2;
    *state_json = malloc(l + 1);
    if (*state_json) memcpy(*state_json, st ? st : "{}", l + 1);
  }
  free(mv);
  free(host);
  if (f) cc_st_close(f);
  if (mf) cc_st_close(mf);
  return s;
}

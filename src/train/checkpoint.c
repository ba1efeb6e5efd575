/* checkpoint.c: checkpoints of a training run (trainer.h): the model file
 * (open_clip names, loadable by open_clip and `clipcl --model`) and the
 * optimiser file (AdamW moments, step, the caller's state string), each
 * written atomically, the optimiser file first.
 *
 * With several ranks these calls are collective and only rank 0 touches
 * files: it writes the whole optimiser state (ZeRO parts gathered first), so
 * a checkpoint resumes on any number of ranks; loading reads on rank 0 and
 * broadcasts; "latest" is rank 0's answer, so all ranks agree. Saving also
 * checks that every rank holds the same parameters (a 64-bit hash of their
 * bits), which data-parallel training guarantees unless something broke. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "train/trainer.h"

/* Every rank returns root's status, with root's message. */
static clipcl_status share_status(cc_dist *d, clipcl_status s, int root) {
  if (cc_dist_size(d) == 1) return s;
  struct {
    int64_t status;
    char msg[1024];
  } pk;
  pk.status = s;
  snprintf(pk.msg, sizeof pk.msg, "%s", s ? clipcl_last_error() : "");
  clipcl_status e = cc_dist_bcast(d, &pk, sizeof pk, root);
  if (e) return e;
  pk.msg[sizeof pk.msg - 1] = 0;
  if (pk.status) return cc_fail((clipcl_status)pk.status, "%s", pk.msg);
  return CLIPCL_OK;
}

/* CLIPCL_ERR_NOMEM on every rank when one of them lacks a buffer. */
static clipcl_status all_have(cc_dist *d, int have, const char *what) {
  int64_t nomem[1] = {!have};
  CC_TRY(cc_dist_max_i64(d, nomem, 1));
  if (nomem[0]) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory %s%s", what, have ? " on another rank" : "");
  return CLIPCL_OK;
}

static void ckpt_paths(const char *dir, long step, char *model, char *optim, size_t cap) {
  snprintf(model, cap, "%s/step_%ld.safetensors", dir, step);
  snprintf(optim, cap, "%s/step_%ld.optim.safetensors", dir, step);
}

static uint64_t fnv1a(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}

/* The moments of the whole model on root (host, 2 * L.total: m then v). */
static clipcl_status whole_moments(cc_trainer *t, float *mv, int root) {
  cc_model *m = t->m;
  size_t n = m->L.total;
  if (t->red && t->su.zero) {
    CC_TRY(cc_reducer_gather(t->red, t->mom, 1, mv, root));
    return cc_reducer_gather(t->red, t->vel, 1, mv + n, root);
  }
  if (cc_dist_rank(t->d) != root) return CLIPCL_OK;
  CC_TRY(cc_read(m->rt, t->mom, mv, n));
  return cc_read(m->rt, t->vel, mv + n, n);
}

clipcl_status cc_checkpoint_save(cc_trainer *t, const char *dir, const char *state_json) {
  cc_model *m = t->m;
  cc_dist *d = t->d;
  int rank = cc_dist_rank(d);
  size_t n = m->L.total;
  char model[4096], optim[4096], step[32];
  ckpt_paths(dir, t->step, model, optim, sizeof model);
  snprintf(step, sizeof step, "%ld", t->step);
  float *host = malloc(3 * n * sizeof *host);
  clipcl_status s = all_have(d, host != NULL, "writing a checkpoint");
  if (s) {
    free(host);
    return s;
  }
  s = cc_model_get_params(m, host + 2 * n);
  if (cc_dist_size(d) > 1) {
    /* every rank must hold the same parameters */
    int64_t h[2] = {0, 0};
    if (!s) {
      uint64_t v = fnv1a(host + 2 * n, n * sizeof *host);
      memcpy(&h[0], &v, sizeof v);
      h[1] = -h[0];
    }
    clipcl_status e = cc_dist_max_i64(d, h, 2);
    if (!e && !s && h[0] != -h[1])
      s = cc_fail(CLIPCL_ERR_NUMERIC, "the ranks' parameters differ at step %ld (checked before writing %s)",
                  t->step, model);
    if (e) s = e;
  }
  clipcl_status g = whole_moments(t, host, 0);
  if (!s) s = g;
  if (!s && rank == 0) {
    mkdir(dir, 0755);
    cc_st_out outs[2] = {{.name = "exp_avg", .dtype = CC_ST_F32, .ndim = 1, .shape = {(int64_t)n}, .data = host},
                         {.name = "exp_avg_sq", .dtype = CC_ST_F32, .ndim = 1, .shape = {(int64_t)n}, .data = host + n}};
    cc_st_kv meta[3] = {{"format", "clipcl-optimizer"}, {"clipcl.step", step},
                        {"clipcl.state", state_json ? state_json : "{}"}};
    s = cc_st_write(optim, outs, 2, meta, 3, NULL, NULL);
    if (!s) {
      /* crash-test hook: CLIPCL_TEST_KILL_CHECKPOINT=<step> dies half-way
       * through writing that step's model file */
      const char *kill = getenv("CLIPCL_TEST_KILL_CHECKPOINT");
      if (kill && atol(kill) == t->step) cc_atomic_inject_kill((int64_t)(n * 2));
      const char *kv[2] = {"clipcl.step", step};
      s = cc_weights_write_meta(model, &m->L, host + 2 * n, 0, m->tokenizer, kv, 1);
    }
  }
  free(host);
  /* the lowest failing rank's status and message, for all */
  int64_t bad[1] = {s ? cc_dist_size(d) - rank : 0};
  clipcl_status e = cc_dist_max_i64(d, bad, 1);
  if (e) return e;
  return bad[0] ? share_status(d, s, cc_dist_size(d) - (int)bad[0]) : CLIPCL_OK;
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

static clipcl_status latest_here(const char *dir, long *step, char *path, size_t cap) {
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

clipcl_status cc_checkpoint_latest(const char *dir, long *step, char *path, size_t cap) {
  return latest_here(dir, step, path, cap);
}

clipcl_status cc_checkpoint_latest_all(cc_trainer *t, const char *dir, long *step, char *path, size_t cap) {
  cc_dist *d = t->d;
  struct {
    int64_t step;
    char path[4096];
  } pk = {0, ""};
  clipcl_status s = CLIPCL_OK;
  if (cc_dist_rank(d) == 0) {
    long st = 0;
    s = latest_here(dir, &st, pk.path, sizeof pk.path);
    pk.step = st;
  }
  CC_TRY(share_status(d, s, 0));
  CC_TRY(cc_dist_bcast(d, &pk, sizeof pk, 0));
  pk.path[sizeof pk.path - 1] = 0;
  *step = (long)pk.step;
  snprintf(path, cap, "%s", pk.path);
  return CLIPCL_OK;
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

/* Rank 0's part of a load: parameters, moments (m then v), step, state. */
static clipcl_status read_files(cc_trainer *t, const char *model_path, float *params, float *mv, long *step,
                                char **state_json) {
  cc_model *m = t->m;
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
  clipcl_status s = CLIPCL_OK;
  if (cfg.logit_bias != m->L.cfg.logit_bias)
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s %s a logit_bias but this run's model %s", model_path,
                cfg.logit_bias ? "has" : "has no", cfg.logit_bias ? "has none (SigLIP needs --siglip)" : "has one");
  if (!s) s = cc_st_open(optim, &f);
  if (!s) s = cc_st_open(model_path, &mf);
  const cc_st_tensor *ea = f ? cc_st_find(f, "exp_avg") : NULL, *es = f ? cc_st_find(f, "exp_avg_sq") : NULL;
  const char *step_o = f ? cc_st_meta(f, "clipcl.step") : NULL, *step_m = mf ? cc_st_meta(mf, "clipcl.step") : NULL;
  if (!s && (!ea || !es || ea->numel != m->L.total || es->numel != m->L.total))
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: optimiser state does not match the model (%zu parameters)", optim,
                m->L.total);
  if (!s && (!step_o || !step_m || strcmp(step_o, step_m)))
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s and %s are not from the same step", model_path, optim);
  if (!s) s = cc_st_read_f32(f, ea, mv);
  if (!s) s = cc_st_read_f32(f, es, mv + m->L.total);
  if (!s) {
    memcpy(params, host, m->L.total * sizeof *params);
    *step = atol(step_o);
    const char *st = cc_st_meta(f, "clipcl.state");
    size_t l = st ? strlen(st) : 2;
    *state_json = malloc(l + 1);
    if (*state_json) memcpy(*state_json, st ? st : "{}", l + 1);
    else s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  }
  free(host);
  if (f) cc_st_close(f);
  if (mf) cc_st_close(mf);
  return s;
}

clipcl_status cc_checkpoint_load(cc_trainer *t, const char *model_path, char **state_json) {
  cc_model *m = t->m;
  cc_dist *d = t->d;
  int rank = cc_dist_rank(d);
  size_t n = m->L.total;
  *state_json = NULL;
  float *host = malloc(3 * n * sizeof *host); /* params, then m, v */
  long step = 0;
  clipcl_status s = all_have(d, host != NULL, "loading a checkpoint");
  if (s) {
    free(host);
    return s;
  }
  if (rank == 0) s = read_files(t, model_path, host, host + n, &step, state_json);
  s = share_status(d, s, 0);
  if (!s && cc_dist_size(d) > 1) {
    struct {
      int64_t step, len;
    } hd = {step, *state_json ? (int64_t)strlen(*state_json) : 0};
    s = cc_dist_bcast(d, &hd, sizeof hd, 0);
    if (!s && rank != 0) {
      step = (long)hd.step;
      *state_json = calloc((size_t)hd.len + 1, 1);
      if (!*state_json) s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory"); /* the job cannot go on */
    }
    if (!s) s = cc_dist_bcast(d, *state_json, (size_t)hd.len, 0);
    if (!s) s = cc_dist_bcast(d, host, 3 * n * sizeof *host, 0);
  }
  if (!s) s = cc_model_set_params(m, host);
  if (!s && t->red && t->su.zero) {
    s = cc_reducer_scatter_host(t->red, host + n, t->mom);
    if (!s) s = cc_reducer_scatter_host(t->red, host + 2 * n, t->vel);
  } else if (!s) {
    s = cc_write(m->rt, t->mom, host + n, n);
    if (!s) s = cc_write(m->rt, t->vel, host + 2 * n, n);
  }
  if (!s) t->step = step;
  if (s) {
    free(*state_json);
    *state_json = NULL;
  }
  free(host);
  return s;
}

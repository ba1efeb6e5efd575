/* dist_check.c: the data-parallel step checked against one process (run by
 * tests/test_dist.sh, once plainly and once under mpirun).
 *
 *   dist_check run --batch B [--accum K] [--steps S] [--siglip] [--zero 1]
 *                  [--clip X] [--lock-image] [--grad-ckpt] [--replay FILE] --out FILE
 *       Trains clipcl-test (seed 42) on a synthetic global batch of
 *       R x B x K samples per step (R = ranks), rank r taking rows
 *       [r*B*K, (r+1)*B*K), and writes on rank 0, per step, the loss, the
 *       parameters the step started from and the whole summed gradient,
 *       then the final parameters. With --replay every step starts from the
 *       parameters another run's step started from, so that the gradients
 *       of the two are taken at the same point (free runs drift apart by
 *       rounding: the same loss, but gradients differ in the 1e-5s after a
 *       few steps).
 *   dist_check compare A B [--loss T] [--grads T] [--params T]
 *       Fails unless the runs have the same shape and every loss agrees to
 *       the --loss tolerance (relative), every parameter tensor's gradient
 *       at every step to --grads of its norm (scalars: of max(|value|, 1),
 *       see worst()), and every final parameter tensor to --params of its
 *       norm (each check only when given). Prints the worst tensor.
 *
 * File: "CLIPCLDC", u32 steps, u64 parameters, then per step a float loss,
 * the parameters before the step and the gradient, then the final
 * parameters (all float32, little-endian). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "model/model.h"
#include "train/trainer.h"

static void die(const char *what) {
  fprintf(stderr, "dist_check: %s: %s\n", what, clipcl_last_error());
  exit(1);
}

/* The global batch of a step, the same on every rank. */
static void global_batch(long step, int G, int S, int T, int V, float *pix, int32_t *ids) {
  uint64_t x = 0x9E3779B97F4A7C15ULL * (uint64_t)(step + 1);
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, (double)(x >> 11) / 9007199254740992.0)
  for (size_t i = 0; i < (size_t)G * 3 * S * S; i++) pix[i] = (float)(4 * RND() - 2);
  for (int b = 0; b < G; b++) {
    int len = 3 + (int)(RND() * (T - 3));
    for (int t = 0; t < T; t++)
      ids[b * T + t] = t == 0 ? V - 2 : t < len - 1 ? 1 + (int)(RND() * (V - 4)) : t == len - 1 ? V - 1 : 0;
  }
#undef RND
}

typedef struct {
  uint32_t steps;
  uint64_t P;
  float *loss, *before, *grads, *params;
} run_file;

static int load(const char *path, run_file *r) {
  FILE *f = fopen(path, "rb");
  char magic[8];
  if (!f || fread(magic, 1, 8, f) != 8 || memcmp(magic, "CLIPCLDC", 8) || fread(&r->steps, 4, 1, f) != 1 ||
      fread(&r->P, 8, 1, f) != 1 || r->steps > 1000 || r->P > (1u << 26)) {
    fprintf(stderr, "dist_check: %s: not a run file\n", path);
    if (f) fclose(f);
    return -1;
  }
  r->loss = malloc(r->steps * sizeof *r->loss);
  r->before = malloc((size_t)r->steps * r->P * sizeof *r->before);
  r->grads = malloc((size_t)r->steps * r->P * sizeof *r->grads);
  r->params = malloc(r->P * sizeof *r->params);
  int ok = r->loss && r->before && r->grads && r->params;
  for (uint32_t s = 0; ok && s < r->steps; s++)
    ok = fread(&r->loss[s], 4, 1, f) == 1 && fread(r->before + (size_t)s * r->P, 4, r->P, f) == r->P &&
         fread(r->grads + (size_t)s * r->P, 4, r->P, f) == r->P;
  ok = ok && fread(r->params, 4, r->P, f) == r->P;
  fclose(f);
  if (!ok) fprintf(stderr, "dist_check: %s: truncated\n", path);
  return ok ? 0 : -1; /* the caller unloads */
}

static void unload(run_file *r) {
  free(r->loss);
  free(r->before);
  free(r->grads);
  free(r->params);
  memset(r, 0, sizeof *r);
}

static int run(int argc, char **argv) {
  int B = 0, K = 1, steps = 10, siglip = 0, zero = 0, lock = 0, ckpt = 0;
  double clip = 0;
  const char *out = NULL, *replay = NULL;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--accum") && i + 1 < argc) K = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--zero") && i + 1 < argc) zero = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--clip") && i + 1 < argc) clip = atof(argv[++i]);
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--replay") && i + 1 < argc) replay = argv[++i];
    else if (!strcmp(argv[i], "--siglip")) siglip = 1;
    else if (!strcmp(argv[i], "--lock-image")) lock = 1;
    else if (!strcmp(argv[i], "--grad-ckpt")) ckpt = 1;
    else {
      fprintf(stderr, "dist_check: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (B < 1 || K < 1 || steps < 1 || !out) {
    fprintf(stderr, "dist_check run: --batch and --out are required\n");
    return 2;
  }
  cc_dist *d;
  if (cc_dist_get(&d)) die("dist");
  int R = cc_dist_size(d), rank = cc_dist_rank(d);
  clipcl_config cfg;
  if (clipcl_config_get("clipcl-test", &cfg)) die("config");
  if (siglip) {
    cfg.logit_bias = 1;
    cfg.init_logit_bias = -10;
    cfg.init_logit_scale = logf(10);
  }
  clipcl_device *dev;
  if (clipcl_device_open(NULL, &dev)) die("device");
  clipcl_model *m;
  if (clipcl_model_create(dev, &cfg, &m) || clipcl_model_init(m, 42)) die("model");
  /* eps 1e-3: AdamW would otherwise turn rounding noise in gradients that are
   * zero in exact arithmetic (the key bias: softmax ignores it) into full-size
   * steps of either sign, and the runs would drift apart for reasons that have
   * nothing to do with the ranks */
  cc_train_hparams hp = {5e-3f, 0.9f, 0.98f, 1e-3f, 0.2f, 2, steps, (float)clip, B, K, lock};
  cc_train_setup su = {siglip, ckpt, zero, d};
  cc_trainer *t;
  if (cc_trainer_create_setup(m, &hp, &su, &t)) die("trainer");
  int S = cfg.vision.image_size, T = cfg.text.context_length, V = cfg.text.vocab_size, N = B * K, G = N * R;
  size_t P = m->L.total, px = (size_t)3 * S * S;
  float *pix = malloc((size_t)G * px * sizeof *pix), *g = malloc(P * sizeof *g), *p0 = malloc(P * sizeof *p0);
  int32_t *ids = malloc((size_t)G * T * sizeof *ids);
  if (!pix || !g || !p0 || !ids) die("memory");
  run_file rp = {0, 0, NULL, NULL, NULL, NULL};
  if (replay && (load(replay, &rp) || rp.P != P || rp.steps < (uint32_t)steps)) {
    fprintf(stderr, "dist_check: %s does not fit this run\n", replay);
    return 1;
  }
  FILE *f = NULL;
  if (rank == 0) {
    f = fopen(out, "wb");
    if (!f) die(out);
    uint32_t ns = (uint32_t)steps;
    uint64_t np = P;
    fwrite("CLIPCLDC", 1, 8, f);
    fwrite(&ns, 4, 1, f);
    fwrite(&np, 8, 1, f);
  }
  for (long s = 0; s < steps; s++) {
    global_batch(s, G, S, T, V, pix, ids);
    if (replay && cc_model_set_params(m, rp.before + (size_t)s * P)) die("replay");
    if (cc_model_get_params(m, p0)) die("parameters");
    float loss, gn;
    if (cc_trainer_step(t, pix + (size_t)rank * N * px, ids + (size_t)rank * N * T, &loss, &gn)) die("step");
    if (cc_trainer_full_grads(t, g)) die("gradients");
    if (f) {
      fwrite(&loss, 4, 1, f);
      fwrite(p0, 4, P, f);
      fwrite(g, 4, P, f);
      printf("step %ld loss %.7f\n", s + 1, loss);
    }
  }
  if (cc_model_get_params(m, g)) die("parameters");
  if (f) {
    fwrite(g, 4, P, f);
    if (fclose(f)) die(out);
  }
  cc_trainer_free(t);
  clipcl_model_free(m);
  clipcl_device_free(dev);
  free(pix);
  free(g);
  free(p0);
  free(ids);
  unload(&rp);
  return 0;
}

/* Worst per-tensor ||a - b|| / ||b|| over the layout. The scalars
 * (logit_scale, logit_bias) are sums over all pairs of terms of size up to
 * about 1 (probabilities, sigmoids) that cancel as training balances their
 * pulls, so their error is that of their terms: they are compared to
 * max(|b|, 1). */
static double worst(const cc_layout *L, const float *a, const float *b, const char **name) {
  double w = 0;
  for (int i = 0; i < L->n; i++) {
    const cc_tensor_info *t = &L->t[i];
    double d = 0, n = 0;
    for (size_t k = 0; k < t->numel; k++) {
      double x = a[t->off + k], y = b[t->off + k];
      d += (x - y) * (x - y);
      n += y * y;
    }
    if (t->numel == 1 && n < 1) n = 1;
    double r = n > 0 ? sqrt(d / n) : sqrt(d) / 1e-12;
    if (r > w || i == 0) {
      w = r;
      *name = t->name;
    }
  }
  return w;
}

static int compare(int argc, char **argv) {
  double tl = -1, tg = -1, tp = -1;
  for (int i = 4; i + 1 < argc; i += 2) {
    double v = atof(argv[i + 1]);
    if (!strcmp(argv[i], "--loss")) tl = v;
    else if (!strcmp(argv[i], "--grads")) tg = v;
    else if (!strcmp(argv[i], "--params")) tp = v;
    else {
      fprintf(stderr, "usage: dist_check compare A B [--loss T] [--grads T] [--params T]\n");
      return 2;
    }
  }
  if (argc < 4 || argc % 2) {
    fprintf(stderr, "usage: dist_check compare A B [--loss T] [--grads T] [--params T]\n");
    return 2;
  }
  run_file a = {0}, b = {0};
  if (load(argv[2], &a) || load(argv[3], &b) || a.steps != b.steps || a.P != b.P) {
    if (a.loss && b.loss)
      fprintf(stderr, "dist_check: the runs differ in shape (%u steps x %llu vs %u x %llu)\n", a.steps,
              (unsigned long long)a.P, b.steps, (unsigned long long)b.P);
    unload(&a);
    unload(&b);
    return 1;
  }
  /* the tensor layout: clipcl-test, with logit_bias when the files have it */
  clipcl_config cfg;
  cc_layout L;
  if (clipcl_config_get("clipcl-test", &cfg) || cc_layout_build(&cfg, &L)) die("layout");
  if (L.total != a.P) {
    cc_layout_free(&L);
    cfg.logit_bias = 1;
    if (cc_layout_build(&cfg, &L) || L.total != a.P) die("layout with logit_bias");
  }
  int fails = 0;
  double wl = 0, wg = 0;
  const char *wn = "", *n;
  for (uint32_t s = 0; s < a.steps; s++) {
    double dl = fabs((double)a.loss[s] - b.loss[s]) / fmax(fabs((double)b.loss[s]), 1e-30);
    if (dl > wl) wl = dl;
    double r = worst(&L, a.grads + (size_t)s * a.P, b.grads + (size_t)s * b.P, &n);
    if (r > wg) wg = r, wn = n;
    if ((tl >= 0 && dl > tl) || (tg >= 0 && r > tg)) {
      fprintf(stderr, "step %u: loss %.8f vs %.8f (relative %.3g), worst gradient %s relative %.3g\n", s + 1,
              a.loss[s], b.loss[s], dl, n, r);
      fails++;
    }
  }
  double wp = worst(&L, a.params, b.params, &n);
  printf("%u steps: worst loss difference %.3g (tolerance %g), worst gradient tensor %s %.3g (%g), worst final "
         "parameter tensor %s %.3g (%g)\n",
         a.steps, wl, tl, wn, wg, tg, n, wp, tp);
  if (tp >= 0 && wp > tp) fails++;
  cc_layout_free(&L);
  unload(&a);
  unload(&b);
  return fails ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "run")) return run(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "compare")) return compare(argc, argv);
  fprintf(stderr, "usage: dist_check run|compare ... (see tests/dist_check.c)\n");
  return 2;
}

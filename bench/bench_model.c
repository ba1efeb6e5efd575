/* bench_model.c: clipcl's training step and encoders on a model config, timed
 * over random data, one JSON object per measurement:
 *   {"impl": "clipcl", "what": "train_step"|"encode_image"|"encode_text",
 *    "config", "batch", "samples_per_s", "gflop_per_sample", "gflops"}
 * gflop_per_sample counts the GEMM-shaped arithmetic of the forward pass
 * (patch embedding, projections, MLPs, attention products), three times that
 * for a training step (forward + backward); gflops is the rate achieved.
 * With --profile, each measurement is followed by one profiled pass
 * ({"what": "profile", "of": ..., "top": [{"kernel", "share"}...]}, the
 * five kernels with the most device time) and the run ends with the rate of
 * a plain GEMM of the model's largest product, measured in the same process
 * ({"what": "gemm_rate", "m", "n", "k", "gflops"}): the distance between the
 * two rates is what the non-GEMM work and the small products cost.
 * Run side by side with the peers by bench/race.sh (and the older
 * bench/run_model_bench.sh).
 *   bench_model --config NAME [--what train|image|text|all] [--batches 1,8,32]
 *               [--seconds S] [--steps N] [--profile]
 * Each measurement runs at least --seconds (default 3) and --steps calls
 * (default 3) after a warm-up call that compiles the kernels.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl/runtime.h"
#include "model/model.h"
#include "ops/ops.h"
#include "train/trainer.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *w) {
  fprintf(stderr, "bench_model: %s: %s\n", w, clipcl_last_error());
  exit(1);
}

/* Forward GFLOP per sample of a transformer tower of L layers, width W, MLP
 * width F, T tokens (2 flops per multiply-add). */
static double tower_gflop(int L, int W, double F, int T) {
  double per_layer = 2.0 * T * W * 3 * W + 2 * 2.0 * T * T * W + 2.0 * T * W * W + 2 * 2.0 * T * W * F;
  return L * per_layer / 1e9;
}

static double vision_gflop(const clipcl_config *c) {
  int S = c->vision.image_size, p = c->vision.patch_size, W = c->vision.width, P = (S / p) * (S / p);
  return 2.0 * P * 3 * p * p * W / 1e9 + tower_gflop(c->vision.layers, W, c->vision.mlp_ratio * W, P + 1) +
         2.0 * W * c->embed_dim / 1e9;
}

static double text_gflop(const clipcl_config *c) {
  int W = c->text.width;
  return tower_gflop(c->text.layers, W, c->text.mlp_ratio * W, c->text.context_length) +
         2.0 * W * c->embed_dim / 1e9;
}

typedef struct {
  clipcl_model *m;
  cc_trainer *t;
  const float *pix;
  const int32_t *ids;
  float *emb;
  int B;
} job;

static int run(const char *what, job *j) {
  float loss, gn;
  if (!strcmp(what, "train_step")) return cc_trainer_step(j->t, j->pix, j->ids, &loss, &gn);
  if (!strcmp(what, "encode_image")) return clipcl_model_encode_images(j->m, j->pix, j->B, j->emb);
  return clipcl_model_encode_texts(j->m, j->ids, j->B, j->emb);
}

static void profile_line(clipcl_device *pdev, const char *what, const char *config, int B, job *pj) {
  cc_profile_take(pdev, NULL, 0);
  if (run(what, pj)) die(what);
  cc_profile_entry e[64];
  int n = cc_profile_take(pdev, e, 64);
  double total = 0;
  for (int i = 0; i < n; i++) total += e[i].ns;
  printf("{\"impl\": \"clipcl\", \"what\": \"profile\", \"of\": \"%s\", \"config\": \"%s\", \"batch\": %d, "
         "\"device_ms\": %.2f, \"top\": [", what, config, B, total / 1e6);
  for (int i = 0; i < n && i < 5; i++)
    printf("%s{\"kernel\": \"%s\", \"share\": %.3f, \"calls\": %ld}", i ? ", " : "", e[i].name,
           total > 0 ? e[i].ns / total : 0, e[i].count);
  printf("]}\n");
  fflush(stdout);
}

/* GFLOP/s of the plain product (M,K) x (N,K)^T, best of a few timings. */
static double gemm_rate(clipcl_device *dev, int M, int N, int K) {
  cl_mem a, b, c;
  if (cc_buffer(dev, (size_t)M * K * 4, &a, "A") || cc_buffer(dev, (size_t)N * K * 4, &b, "B") ||
      cc_buffer(dev, (size_t)M * N * 4, &c, "C"))
    die("gemm buffers");
  cc_fill(dev, (cc_view){a, 0}, (size_t)M * K, 0.5f);
  cc_fill(dev, (cc_view){b, 0}, (size_t)N * K, 0.25f);
  cc_gemm_desc g = {.transB = 1, .M = M, .N = N, .K = K, .alpha = 1, .A = {a, 0}, .B = {b, 0}, .C = {c, 0},
                    .lda = K, .ldb = K, .ldc = N};
  if (cc_gemm(dev, &g) || cc_finish(dev)) die("gemm");
  double best = 0;
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    for (int i = 0; i < 4; i++)
      if (cc_gemm(dev, &g)) die("gemm");
    if (cc_finish(dev)) die("gemm");
    double gf = 4 * 2.0 * M * N * (double)K / (now() - t0) / 1e9;
    if (gf > best) best = gf;
  }
  cc_release(a), cc_release(b), cc_release(c);
  return best;
}

int main(int argc, char **argv) {
  const char *config = "clipcl-tiny", *what = "all", *batches = NULL;
  int steps = 3, profile = 0;
  double seconds = 3;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batches = argv[++i];
    else if (!strcmp(argv[i], "--batches") && i + 1 < argc) batches = argv[++i];
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--what") && i + 1 < argc) what = argv[++i];
    else if (!strcmp(argv[i], "--profile")) profile = 1;
    else {
      fprintf(stderr, "usage: bench_model --config NAME [--what train|image|text|all] [--batches 1,8,32] "
                      "[--seconds S] [--steps N] [--profile]\n");
      return 2;
    }
  }
  clipcl_config cfg;
  if (clipcl_config_get(config, &cfg)) die("config");
  unsetenv("CLIPCL_PROFILE"); /* the timed device never profiles */
  clipcl_device *dev, *pdev = NULL;
  if (clipcl_device_open(NULL, &dev)) die("device");
  if (profile) {
    setenv("CLIPCL_PROFILE", "1", 1);
    if (clipcl_device_open(NULL, &pdev)) die("device");
    unsetenv("CLIPCL_PROFILE");
  }
  int bs[16], nb = 0;
  for (const char *p = batches ? batches : "64"; *p && nb < 16;) {
    bs[nb++] = atoi(p);
    p += strcspn(p, ",");
    if (*p == ',') p++;
  }
  const char *kinds[3] = {"train_step", "encode_image", "encode_text"};
  int S = cfg.vision.image_size, T = cfg.text.context_length, E = cfg.embed_dim;
  for (int bi = 0; bi < nb; bi++) {
    int B = bs[bi];
    if (B < 1) die("batch");
    float *pix = malloc((size_t)B * 3 * S * S * sizeof *pix), *emb = malloc((size_t)B * E * sizeof *emb);
    int32_t *ids = malloc((size_t)B * T * sizeof *ids);
    if (!pix || !emb || !ids) die("host memory");
    srand(1);
    for (size_t i = 0; i < (size_t)B * 3 * S * S; i++) pix[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++) ids[b * T + t] = t == 0 ? 49406 : t < 20 ? 1 + rand() % 40000 : t == 20 ? 49407 : 0;
    if (cfg.text.vocab_size < 49408)
      for (int i = 0; i < B * T; i++) ids[i] %= cfg.text.vocab_size;
    for (int k = 0; k < 3; k++) {
      const char *w = kinds[k];
      if (strcmp(what, "all") && !strstr(w, what)) continue;
      job j = {NULL, NULL, pix, ids, emb, B}, pj = j;
      if (clipcl_model_create(dev, &cfg, &j.m) || clipcl_model_init(j.m, 1)) die("model");
      cc_train_hparams hp = {5e-4f, 0.9f, 0.98f, 1e-6f, 0.2f, 10, 1000, 0, B, 1, 0};
      if (k == 0 && cc_trainer_create(j.m, &hp, &j.t)) die("trainer");
      if (run(w, &j)) die(w); /* compiles kernels, sizes the workspaces */
      int n = 0;
      double t0 = now(), dt;
      do {
        if (run(w, &j)) die(w);
        n++;
        dt = now() - t0;
      } while (dt < seconds || n < steps);
      double gps = k == 0 ? 3 * (vision_gflop(&cfg) + text_gflop(&cfg)) : k == 1 ? vision_gflop(&cfg) : text_gflop(&cfg);
      double sps = B * n / dt;
      printf("{\"impl\": \"clipcl\", \"what\": \"%s\", \"config\": \"%s\", \"batch\": %d, \"samples_per_s\": %.2f, "
             "\"gflop_per_sample\": %.3f, \"gflops\": %.1f}\n", w, config, B, sps, gps, gps * sps);
      fflush(stdout);
      if (j.t) cc_trainer_free(j.t);
      clipcl_model_free(j.m);
      if (pdev) {
        if (clipcl_model_create(pdev, &cfg, &pj.m) || clipcl_model_init(pj.m, 1)) die("model");
        if (k == 0 && cc_trainer_create(pj.m, &hp, &pj.t)) die("trainer");
        if (run(w, &pj)) die(w);
        profile_line(pdev, w, config, B, &pj);
        if (pj.t) cc_trainer_free(pj.t);
        clipcl_model_free(pj.m);
      }
    }
    free(pix);
    free(ids);
    free(emb);
  }
  if (profile) {
    /* the model's largest product: the MLP's first layer at the largest batch */
    int big = 0;
    for (int i = 0; i < nb; i++) big = bs[i] > big ? bs[i] : big;
    int P = (S / cfg.vision.patch_size) * (S / cfg.vision.patch_size) + 1, W = cfg.vision.width;
    int M = big * P, N = (int)lround(cfg.vision.mlp_ratio * W);
    printf("{\"impl\": \"clipcl\", \"what\": \"gemm_rate\", \"config\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, "
           "\"gflops\": %.1f}\n", config, M, N, W, gemm_rate(dev, M, N, W));
    clipcl_device_free(pdev);
  }
  clipcl_device_free(dev);
  return 0;
}

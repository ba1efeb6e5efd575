/* bench_model.c: clipcl's training step and encoders on a model config, timed
 * over random data, one JSON object per measurement:
 *   {"what": "train_step"|"encode_image"|"encode_text", "config", "batch",
 *    "samples_per_s", "seconds"}
 * Run side by side with open_clip by bench/run_model_bench.sh, which runs the
 * peer (bench/peer_openclip.py) in the same session and prints the ratios.
 *   bench_model --config NAME [--batch B] [--steps N] [--what train|image|text|all]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
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

int main(int argc, char **argv) {
  const char *config = "clipcl-tiny", *what = "all";
  int B = 64, steps = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--what") && i + 1 < argc) what = argv[++i];
    else {
      fprintf(stderr, "usage: bench_model --config NAME [--batch B] [--steps N] [--what train|image|text|all]\n");
      return 2;
    }
  }
  clipcl_config cfg;
  if (clipcl_config_get(config, &cfg)) die("config");
  clipcl_device *dev;
  if (clipcl_device_open(NULL, &dev)) die("device");
  clipcl_model *m;
  if (clipcl_model_create(dev, &cfg, &m) || clipcl_model_init(m, 1)) die("model");
  int S = cfg.vision.image_size, T = cfg.text.context_length, E = cfg.embed_dim;
  float *pix = malloc((size_t)B * 3 * S * S * sizeof *pix), *emb = malloc((size_t)B * E * sizeof *emb);
  int32_t *ids = malloc((size_t)B * T * sizeof *ids);
  srand(1);
  for (size_t i = 0; i < (size_t)B * 3 * S * S; i++) pix[i] = (float)rand() / RAND_MAX - 0.5f;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) ids[b * T + t] = t == 0 ? 49406 : t < 20 ? 1 + rand() % 40000 : t == 20 ? 49407 : 0;
  if (cfg.text.vocab_size < 49408)
    for (int i = 0; i < B * T; i++) ids[i] %= cfg.text.vocab_size;
  if (!strcmp(what, "train") || !strcmp(what, "all")) {
    cc_train_hparams hp = {5e-4f, 0.9f, 0.98f, 1e-6f, 0.2f, 10, 1000, 0, B, 1, 0};
    cc_trainer *t;
    if (cc_trainer_create(m, &hp, &t)) die("trainer");
    float loss, gn;
    if (cc_trainer_step(t, pix, ids, &loss, &gn)) die("step"); /* compiles kernels */
    double t0 = now();
    for (int s = 0; s < steps; s++)
      if (cc_trainer_step(t, pix, ids, &loss, &gn)) die("step");
    double dt = now() - t0;
    printf("{\"impl\": \"clipcl\", \"what\": \"train_step\", \"config\": \"%s\", \"batch\": %d, \"samples_per_s\": %.2f, "
           "\"seconds_per_step\": %.4f}\n", config, B, B * steps / dt, dt / steps);
    fflush(stdout);
    cc_trainer_free(t);
  }
  if (!strcmp(what, "image") || !strcmp(what, "all")) {
    if (clipcl_model_encode_images(m, pix, B, emb)) die("encode");
    double t0 = now();
    for (int s = 0; s < steps; s++)
      if (clipcl_model_encode_images(m, pix, B, emb)) die("encode");
    double dt = now() - t0;
    printf("{\"impl\": \"clipcl\", \"what\": \"encode_image\", \"config\": \"%s\", \"batch\": %d, \"samples_per_s\": %.2f}\n",
           config, B, B * steps / dt);
    fflush(stdout);
  }
  if (!strcmp(what, "text") || !strcmp(what, "all")) {
    if (clipcl_model_encode_texts(m, ids, B, emb)) die("encode");
    double t0 = now();
    for (int s = 0; s < steps; s++)
      if (clipcl_model_encode_texts(m, ids, B, emb)) die("encode");
    double dt = now() - t0;
    printf("{\"impl\": \"clipcl\", \"what\": \"encode_text\", \"config\": \"%s\", \"batch\": %d, \"samples_per_s\": %.2f}\n",
           config, B, B * steps / dt);
  }
  clipcl_device_profile_report(dev, stderr);
  clipcl_model_free(m);
  clipcl_device_free(dev);
  free(pix);
  free(ids);
  free(emb);
  return 0;
}

/* test_train.c: the training step on the small `clipcl-test` config:
 * - resume exactness: 6 steps in one go give the same loss sequence (bit for
 *   bit) as 3 steps, a checkpoint, a fresh process state loading it, 3 steps;
 * - accumulation: micro-batch 4 x accum 2 equals batch 8 x accum 1 (losses
 *   within 1e-5 relative, parameters after 3 steps within 1e-5 of their norm);
 * - a NaN loss stops the step with its number and leaves parameters alone;
 * - newest complete checkpoint, incomplete pairs ignored, pruning;
 * - open_clip's cosine schedule; the loss falls when over-fitting one batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "train/trainer.h"

enum { N = 8 };
static int S, T, V;

static void batch(long step, float *pix, int32_t *ids) {
  uint64_t old = th_seed(1000 + (uint64_t)step);
  th_fill(pix, (size_t)N * 3 * S * S, -2, 2);
  for (int b = 0; b < N; b++) {
    int len = 3 + (int)(th_uniform() * (T - 3));
    for (int t = 0; t < T; t++) ids[b * T + t] = t == 0 ? V - 2 : t < len - 1 ? 1 + (int)(th_uniform() * (V - 4)) : t == len - 1 ? V - 1 : 0;
  }
  th_seed(old);
}

static cc_model *new_model(cc_rt *rt) {
  clipcl_config cfg;
  TH_OK(clipcl_config_get("clipcl-test", &cfg));
  clipcl_model *m;
  TH_OK(clipcl_model_create(rt, &cfg, &m));
  TH_OK(clipcl_model_init(m, 42));
  return m;
}

static cc_train_hparams hparams(int micro, int accum) {
  cc_train_hparams h = {5e-3f, 0.9f, 0.98f, 1e-6f, 0.2f, 2, 6, 1.0f, micro, accum, 0};
  return h;
}

int main(void) {
  cc_rt *rt = th_open();
  clipcl_config cfg;
  TH_OK(clipcl_config_get("clipcl-test", &cfg));
  S = cfg.vision.image_size;
  T = cfg.text.context_length;
  V = cfg.text.vocab_size;
  float *pix = th_alloc((size_t)N * 3 * S * S);
  int32_t *ids = (int32_t *)th_alloc((size_t)N * T);
  float loss, gn, full[6], part[6];
  char dir[] = "/tmp/clipcl_train_XXXXXX";
  if (!mkdtemp(dir)) return 1;

  /* 6 steps in one go */
  cc_model *m = new_model(rt);
  cc_trainer *t;
  TH_OK(cc_trainer_create(m, &(cc_train_hparams){hparams(N, 1).lr, 0.9f, 0.98f, 1e-6f, 0.2f, 2, 6, 1.0f, N, 1, 0}, &t));
  for (long s = 0; s < 6; s++) {
    batch(s, pix, ids);
    TH_OK(cc_trainer_step(t, pix, ids, &full[s], &gn));
  }
  float *p_full = th_alloc(m->L.total);
  TH_OK(cc_model_get_params(m, p_full));
  cc_trainer_free(t);
  clipcl_model_free(m);

  /* 3 steps, checkpoint, a fresh model loads it, 3 more */
  cc_train_hparams h = hparams(N, 1);
  m = new_model(rt);
  TH_OK(cc_trainer_create(m, &h, &t));
  for (long s = 0; s < 3; s++) {
    batch(s, pix, ids);
    TH_OK(cc_trainer_step(t, pix, ids, &part[s], &gn));
  }
  TH_OK(cc_checkpoint_save(t, dir, "{\"epoch\": 0, \"index\": 24}"));
  cc_trainer_free(t);
  clipcl_model_free(m);
  m = new_model(rt);
  TH_OK(clipcl_model_init(m, 7)); /* different weights: the checkpoint must restore them */
  TH_OK(cc_trainer_create(m, &h, &t));
  long step;
  char path[4096];
  TH_OK(cc_checkpoint_latest(dir, &step, path, sizeof path));
  char *state;
  TH_OK(cc_checkpoint_load(t, path, &state));
  th_assert("checkpoint step and state restored", step == 3 && t->step == 3 && state && strstr(state, "\"index\": 24"),
            "step %ld/%ld state %s", step, t->step, state ? state : "(null)");
  free(state);
  for (long s = 3; s < 6; s++) {
    batch(s, pix, ids);
    TH_OK(cc_trainer_step(t, pix, ids, &part[s], &gn));
  }
  th_same_bits("resume: loss sequence of 3+3 steps == 6 steps", part, full, 6);
  float *p_res = th_alloc(m->L.total);
  TH_OK(cc_model_get_params(m, p_res));
  th_same_bits("resume: parameters after 6 steps", p_res, p_full, m->L.total);
  printf("losses:");
  for (int i = 0; i < 6; i++) printf(" %.6f", full[i]);
  printf("\n");

  /* NaN input: the step stops with its number and does not update */
  float *before = th_alloc(m->L.total), *after = th_alloc(m->L.total);
  TH_OK(cc_model_get_params(m, before));
  batch(6, pix, ids);
  pix[5] = NAN;
  clipcl_status s = cc_trainer_step(t, pix, ids, &loss, &gn);
  th_assert("NaN loss refused with the step number", s == CLIPCL_ERR_NUMERIC && strstr(clipcl_last_error(), "step 7"),
            "%s", clipcl_last_error());
  TH_OK(cc_model_get_params(m, after));
  th_same_bits("NaN step left the parameters unchanged", after, before, m->L.total);

  /* checkpoints: newest complete pair; an orphan optimiser file is ignored */
  t->step = 7;
  TH_OK(cc_checkpoint_save(t, dir, "{}"));
  t->step = 9;
  TH_OK(cc_checkpoint_save(t, dir, "{}"));
  char model9[4200], optim9[4200];
  snprintf(model9, sizeof model9, "%s/step_9.safetensors", dir);
  snprintf(optim9, sizeof optim9, "%s/step_9.optim.safetensors", dir);
  remove(model9); /* as if killed between the two writes */
  TH_OK(cc_checkpoint_latest(dir, &step, path, sizeof path));
  th_assert("latest skips an incomplete checkpoint", step == 7, "latest %ld", step);
  FILE *f = fopen(model9, "wb");
  fputs("garbage", f);
  fclose(f);
  TH_OK(cc_checkpoint_latest(dir, &step, path, sizeof path));
  th_assert("latest skips a corrupt model file", step == 7, "latest %ld", step);
  cc_checkpoint_prune(dir, 1);
  char p3[4200];
  snprintf(p3, sizeof p3, "%s/step_3.safetensors", dir);
  th_assert("prune keeps the newest complete one and drops older", access(p3, F_OK) != 0 &&
            cc_checkpoint_latest(dir, &step, path, sizeof path) == CLIPCL_OK && step == 7, "latest %ld", step);
  remove(model9);
  remove(optim9);
  snprintf(path, sizeof path, "%s/step_7.safetensors", dir);
  remove(path);
  snprintf(path, sizeof path, "%s/step_7.optim.safetensors", dir);
  remove(path);
  rmdir(dir);
  cc_trainer_free(t);
  clipcl_model_free(m);

  /* accumulation: 4 x 2 == 8 x 1 */
  float la[3], lb[3];
  cc_model *ma = new_model(rt), *mb = new_model(rt);
  cc_trainer *ta, *tb;
  TH_OK(cc_trainer_create(ma, &(cc_train_hparams){5e-3f, 0.9f, 0.98f, 1e-6f, 0.2f, 2, 6, 1.0f, 4, 2, 0}, &ta));
  TH_OK(cc_trainer_create(mb, &(cc_train_hparams){5e-3f, 0.9f, 0.98f, 1e-6f, 0.2f, 2, 6, 1.0f, 8, 1, 0}, &tb));
  for (long st = 0; st < 3; st++) {
    batch(st, pix, ids);
    TH_OK(cc_trainer_step(ta, pix, ids, &la[st], &gn));
    TH_OK(cc_trainer_step(tb, pix, ids, &lb[st], &gn));
  }
  th_close_f("accum 4x2 losses == batch 8", la, lb, 3, 0, 1e-5);
  float *pa = th_alloc(ma->L.total), *pb = th_alloc(ma->L.total);
  TH_OK(cc_model_get_params(ma, pa));
  TH_OK(cc_model_get_params(mb, pb));
  double *pbd = th_alloc_d(ma->L.total);
  for (size_t i = 0; i < ma->L.total; i++) pbd[i] = pb[i];
  th_close_norm("accum 4x2 parameters == batch 8", pa, pbd, ma->L.total, 1e-5);
  cc_trainer_free(ta);
  cc_trainer_free(tb);
  clipcl_model_free(ma);
  clipcl_model_free(mb);

  /* schedule */
  cc_train_hparams hs = {1.0f, 0, 0, 0, 0, 10, 110, 0, 1, 1, 0};
  double w0 = cc_lr_at(&hs, 0), w9 = cc_lr_at(&hs, 9), c0 = cc_lr_at(&hs, 10), c50 = cc_lr_at(&hs, 60),
         c99 = cc_lr_at(&hs, 109);
  th_assert("cosine schedule as open_clip", fabs(w0 - 0.1) < 1e-12 && fabs(w9 - 1.0) < 1e-12 &&
            fabs(c0 - 1.0) < 1e-12 && fabs(c50 - 0.5) < 1e-12 && fabs(c99 - 0.5 * (1 + cos(3.14159265358979323846 * 99 / 100))) < 1e-12,
            "%g %g %g %g %g", w0, w9, c0, c50, c99);

  /* over-fitting one batch lowers the loss */
  m = new_model(rt);
  TH_OK(cc_trainer_create(m, &(cc_train_hparams){2e-3f, 0.9f, 0.98f, 1e-6f, 0.0f, 0, 40, 0, N, 1, 0}, &t));
  float first = 0;
  batch(0, pix, ids);
  for (int i = 0; i < 40; i++) {
    TH_OK(cc_trainer_step(t, pix, ids, &loss, &gn));
    if (i == 0) first = loss;
  }
  th_assert("loss falls when over-fitting one batch", loss < 0.3f * first, "%.4f -> %.4f", first, loss);
  cc_trainer_free(t);
  clipcl_model_free(m);
  return th_finish(rt);
}

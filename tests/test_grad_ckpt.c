/* test_grad_ckpt.c: activation checkpointing (open_clip --grad-checkpointing).
 * - the loss and every parameter gradient of a step equal those without it,
 *   per tensor to 1e-6 of the tensor's gradient norm (in fact bit for bit:
 *   the recomputed blocks run the same kernels on the same inputs), on the
 *   odd-sized clipcl-test config, for the CLIP loss, with --accum-freq 2,
 *   for SigLIP, and with the image tower locked; three steps, so the
 *   parameters the gradients are taken at have moved;
 * - the activation memory of ViT-B-32 (workspaces only, at batch 2: every
 *   term is proportional to the batch) falls at least 4-fold: one block's
 *   activations plus every block's output instead of all of them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "train/trainer.h"

enum { N = 8 };
static int S, T, V;

static void batch(long step, float *pix, int32_t *ids) {
  uint64_t old = th_seed(2000 + (uint64_t)step);
  th_fill(pix, (size_t)N * 3 * S * S, -2, 2);
  for (int b = 0; b < N; b++) {
    int len = 3 + (int)(th_uniform() * (T - 3));
    for (int t = 0; t < T; t++)
      ids[b * T + t] = t == 0 ? V - 2 : t < len - 1 ? 1 + (int)(th_uniform() * (V - 4)) : t == len - 1 ? V - 1 : 0;
  }
  th_seed(old);
}

/* Per tensor: ||a - b|| <= tol * ||b|| (absolute 1e-12 for all-zero tensors). */
static void same_grads(const char *what, const cc_layout *L, const float *a, const float *b, double tol) {
  double worst = 0;
  const char *wname = "";
  for (int i = 0; i < L->n; i++) {
    const cc_tensor_info *t = &L->t[i];
    double d = 0, n = 0;
    for (size_t k = 0; k < t->numel; k++) {
      double x = a[t->off + k], y = b[t->off + k];
      d += (x - y) * (x - y);
      n += y * y;
    }
    double r = sqrt(d) / fmax(sqrt(n), 1e-12);
    if (r > worst) {
      worst = r;
      wname = t->name;
    }
  }
  th_assert(what, worst <= tol, "worst tensor %s: relative difference %.3g (tolerance %g)", wname, worst, tol);
}

static void compare(cc_rt *rt, const char *tag, int micro, int accum, int siglip, int lock) {
  clipcl_config cfg;
  TH_OK(clipcl_config_get("clipcl-test", &cfg));
  if (siglip) {
    cfg.logit_bias = 1;
    cfg.init_logit_bias = -10;
    cfg.init_logit_scale = logf(10);
  }
  float *pix = th_alloc((size_t)N * 3 * S * S), *g[2], loss[2][3], gn;
  int32_t *ids = (int32_t *)th_alloc((size_t)N * T);
  size_t total = 0;
  for (int ck = 0; ck < 2; ck++) {
    clipcl_model *m;
    TH_OK(clipcl_model_create(rt, &cfg, &m));
    TH_OK(clipcl_model_init(m, 11));
    cc_train_hparams hp = {5e-3f, 0.9f, 0.98f, 1e-6f, 0.2f, 1, 10, 1.0f, micro, accum, lock};
    cc_train_setup su = {siglip, ck, 0, NULL};
    cc_trainer *t;
    TH_OK(cc_trainer_create_setup(m, &hp, &su, &t));
    total = m->L.total;
    g[ck] = th_alloc(total);
    for (long s = 0; s < 3; s++) {
      batch(s, pix, ids);
      TH_OK(cc_trainer_step(t, pix, ids, &loss[ck][s], &gn));
    }
    /* the gradients of the last step are still in the buffer */
    TH_OK(cc_read(rt, m->grads, g[ck], total));
    if (ck == 1) {
      char name[160];
      snprintf(name, sizeof name, "grad checkpointing: losses of 3 steps equal (%s)", tag);
      th_close_f(name, loss[1], loss[0], 3, 0, 1e-6);
      snprintf(name, sizeof name, "grad checkpointing: every parameter gradient equal (%s)", tag);
      same_grads(name, &m->L, g[1], g[0], 1e-6);
    }
    cc_trainer_free(t);
    clipcl_model_free(m);
  }
}

int main(void) {
  cc_rt *rt = th_open();
  clipcl_config cfg;
  TH_OK(clipcl_config_get("clipcl-test", &cfg));
  S = cfg.vision.image_size;
  T = cfg.text.context_length;
  V = cfg.text.vocab_size;
  compare(rt, "CLIP, batch 8", N, 1, 0, 0);
  compare(rt, "CLIP, 4 x accum 2", N / 2, 2, 0, 0);
  compare(rt, "SigLIP, batch 8", N, 1, 1, 0);
  compare(rt, "CLIP, image tower locked", N, 1, 0, 1);

  /* activation memory, ViT-B-32 at batch 2 */
  TH_OK(clipcl_config_get("ViT-B-32", &cfg));
  size_t bytes[2];
  for (int ck = 0; ck < 2; ck++) {
    clipcl_model *m;
    TH_OK(clipcl_model_create(rt, &cfg, &m));
    TH_OK(cc_model_workspace(m, 1, 2, ck ? CC_WS_CKPT : CC_WS_FULL));
    TH_OK(cc_model_workspace(m, 0, 2, ck ? CC_WS_CKPT : CC_WS_FULL));
    bytes[ck] = cc_model_activation_bytes(m);
    /* an inference call later keeps the checkpointing workspace as it is */
    if (ck) {
      TH_OK(cc_model_workspace(m, 1, 1, CC_WS_INFER));
      th_assert("an inference workspace request keeps the checkpointing one", m->vis.save == CC_WS_CKPT &&
                m->vis.cap == 2, "save %d cap %d", m->vis.save, m->vis.cap);
    }
    clipcl_model_free(m);
  }
  th_assert("ViT-B-32 activation memory falls at least 4-fold with checkpointing", bytes[1] * 4 <= bytes[0],
            "batch 2: %.1f MiB without, %.1f MiB with (x16 for batch 32)", bytes[0] / 1048576.0,
            bytes[1] / 1048576.0);
  return th_finish(rt);
}

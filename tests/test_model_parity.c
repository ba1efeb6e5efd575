/* test_model_parity.c: the whole model against open_clip 2.20 (fixtures in
 * tests/data/parity/, written by tests/tools/make_parity_fixtures.py) on the
 * small `clipcl-test` config, exact GELU and QuickGELU: image and text
 * features, normalised embeddings, logits and loss within 1e-4 relative (to
 * each tensor's norm; loss to its value), and every parameter's gradient
 * within 1e-3 relative to its norm. Also the public encoders, weights loading
 * (config inference from shapes), and a save/load round trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"
#include "model/model.h"

static float *fx_read(const cc_st_file *f, const char *name, size_t *n) {
  const cc_st_tensor *t = cc_st_find(f, name);
  if (!t) {
    fprintf(stderr, "fixture has no %s\n", name);
    exit(1);
  }
  float *d = th_alloc(t->numel);
  if (t->dtype == CC_ST_I32) {
    TH_OK(cc_st_read_raw(f, t, d, t->numel * 4));
  } else {
    TH_OK(cc_st_read_f32(f, t, d));
  }
  if (n) *n = t->numel;
  return d;
}

static void cmp_norm(const char *tag, const char *name, const float *got, const float *want, size_t n, double tol) {
  double *w = th_alloc_d(n);
  for (size_t i = 0; i < n; i++) w[i] = want[i];
  char full[200];
  snprintf(full, sizeof full, "%s %s", tag, name);
  th_close_norm(full, got, w, n, tol);
}

static void parity(cc_rt *rt, int quick) {
  const char *tag = quick ? "quickgelu" : "gelu";
  char path[256];
  snprintf(path, sizeof path, "data/parity/parity_%s.safetensors", tag);
  cc_st_file *fx;
  TH_OK(cc_st_open(path, &fx));
  clipcl_config cfg;
  TH_OK(clipcl_config_get("clipcl-test", &cfg));
  cfg.quick_gelu = quick;
  clipcl_model *m;
  TH_OK(clipcl_model_load(rt, "data/parity/weights.safetensors", &cfg, &m));
  const int B = 5;
  int E = cfg.embed_dim, T = cfg.text.context_length, S = cfg.vision.image_size;
  size_t n;
  float *images = fx_read(fx, "images", NULL);
  int32_t *ids = (int32_t *)fx_read(fx, "ids", NULL);
  TH_OK(cc_model_enable_grads(m));
  TH_OK(cc_model_workspace(m, 1, B, 1));
  TH_OK(cc_model_workspace(m, 0, B, 1));
  TH_OK(cc_model_head_workspace(m, B));
  TH_OK(cc_write(rt, m->vis.pixels, images, (size_t)B * 3 * S * S));
  TH_OK(cc_write(rt, m->txt.ids, ids, (size_t)B * T));
  TH_OK(cc_vision_forward(m, B));
  TH_OK(cc_text_forward(m, B));
  TH_OK(cc_head_forward_backward(m, m->vis.feat, m->txt.feat, B, 1, m->vis.dfeat, m->txt.dfeat));
  TH_OK(cc_vision_backward(m, B));
  TH_OK(cc_text_backward(m, B));

  float *got = th_alloc((size_t)B * B > (size_t)B * E ? (size_t)B * B : (size_t)B * E);
  TH_OK(cc_read(rt, m->vis.feat, got, (size_t)B * E));
  cmp_norm(tag, "image_features", got, fx_read(fx, "image_features", NULL), (size_t)B * E, 1e-4);
  TH_OK(cc_read(rt, m->txt.feat, got, (size_t)B * E));
  cmp_norm(tag, "text_features", got, fx_read(fx, "text_features", NULL), (size_t)B * E, 1e-4);
  TH_OK(cc_read(rt, m->head.img_n, got, (size_t)B * E));
  cmp_norm(tag, "image_embeds", got, fx_read(fx, "image_embeds", NULL), (size_t)B * E, 1e-4);
  TH_OK(cc_read(rt, m->head.li, got, (size_t)B * B));
  cmp_norm(tag, "logits_per_image", got, fx_read(fx, "logits_per_image", NULL), (size_t)B * B, 1e-4);
  float loss;
  TH_OK(cc_read(rt, m->head.loss, &loss, 1));
  float want_loss = fx_read(fx, "loss", NULL)[0];
  char name[200];
  snprintf(name, sizeof name, "%s loss", tag);
  th_assert(name, fabs(loss - want_loss) <= 1e-4 * fabs(want_loss), "%.7f vs open_clip %.7f", loss, want_loss);

  /* every parameter's gradient */
  float *grads = th_alloc(m->L.total);
  TH_OK(cc_read(rt, m->grads, grads, m->L.total));
  int bad = 0;
  double worst = 0;
  const char *worst_name = "";
  for (int i = 0; i < m->L.n; i++) {
    const cc_tensor_info *t = &m->L.t[i];
    char gname[160];
    snprintf(gname, sizeof gname, "grad.%s", t->name);
    float *want = fx_read(fx, gname, &n);
    if (n != t->numel) {
      th_assert(gname, 0, "fixture has %zu elements, model %zu", n, t->numel);
      continue;
    }
    double num = 0, den = 0;
    for (size_t j = 0; j < n; j++) {
      double d = (double)grads[t->off + j] - want[j];
      num += d * d;
      den += (double)want[j] * want[j];
    }
    double rel = sqrt(num) / fmax(sqrt(den), 1e-30);
    if (!(rel <= 1e-3)) {
      bad++;
      printf("  gradient %s: relative error %.3g (norm %.3g)\n", t->name, rel, sqrt(den));
    }
    if (rel > worst || isnan(rel)) {
      worst = rel;
      worst_name = t->name;
    }
  }
  snprintf(name, sizeof name, "%s gradients of all %d tensors", tag, m->L.n);
  th_assert(name, bad == 0, "worst relative error %.3g (%s)", worst, worst_name);

  /* public encoders return the normalised embeddings */
  float *emb = th_alloc((size_t)B * E);
  TH_OK(clipcl_model_encode_images(m, images, B, emb));
  cmp_norm(tag, "clipcl_model_encode_images", emb, fx_read(fx, "image_embeds", NULL), (size_t)B * E, 1e-4);
  TH_OK(clipcl_model_encode_texts(m, ids, B, emb));
  cmp_norm(tag, "clipcl_model_encode_texts", emb, fx_read(fx, "text_embeds", NULL), (size_t)B * E, 1e-4);

  /* encoders on one item at a time give the same rows (batch independence) */
  float *one = th_alloc((size_t)E);
  TH_OK(clipcl_model_encode_texts(m, ids + 3 * T, 1, one));
  snprintf(name, sizeof name, "%s text row 3 alone == in batch", tag);
  th_close_f(name, one, emb + 3 * E, (size_t)E, 1e-6, 1e-5);

  clipcl_model_free(m);
  cc_st_close(fx);
}

static void load_save(cc_rt *rt) {
  /* the open_clip file carries no config: it is inferred from the shapes */
  clipcl_model *m;
  TH_OK(clipcl_model_load(rt, "data/parity/weights.safetensors", NULL, &m));
  const clipcl_config *c = clipcl_model_config(m);
  th_assert("config inferred from shapes", !strcmp(clipcl_model_config_source(m), "inferred") &&
            c->embed_dim == 24 && c->vision.width == 48 && c->vision.layers == 2 && c->vision.patch_size == 8 &&
            c->vision.image_size == 24 && c->text.context_length == 11 && c->text.vocab_size == 300 &&
            c->text.width == 40 && c->text.layers == 2 && c->vision.mlp_ratio == 4.0f,
            "embed %d vision %d/%d/%d/%d text %d/%d/%d/%d", c->embed_dim, c->vision.image_size, c->vision.layers,
            c->vision.width, c->vision.patch_size, c->text.context_length, c->text.vocab_size, c->text.width,
            c->text.layers);
  clipcl_config cfg;
  TH_OK(clipcl_config_get("clipcl-test", &cfg));
  clipcl_model_free(m);
  TH_OK(clipcl_model_load(rt, "data/parity/weights.safetensors", &cfg, &m));
  size_t total = m->L.total;
  float *a = th_alloc(total), *b = th_alloc(total);
  TH_OK(cc_model_get_params(m, a));
  const char *tmp = "parity_roundtrip.tmp.safetensors", *tmp_hf = "parity_roundtrip_hf.tmp.safetensors";
  for (int hf = 0; hf < 2; hf++) {
    const char *p = hf ? tmp_hf : tmp;
    TH_OK(clipcl_model_save(m, p, hf));
    clipcl_model *m2;
    TH_OK(clipcl_model_load(rt, p, NULL, &m2));
    th_assert(hf ? "HF-named file: config from metadata" : "saved file: config from metadata",
              !strcmp(clipcl_model_config_source(m2), "metadata") && clipcl_model_config(m2)->text.heads == 5,
              "%s, text heads %d", clipcl_model_config_source(m2), clipcl_model_config(m2)->text.heads);
    TH_OK(cc_model_get_params(m2, b));
    th_same_bits(hf ? "save/load round trip (HF names)" : "save/load round trip", a, b, total);
    clipcl_model_free(m2);
    remove(p);
  }
  clipcl_model_free(m);
}

int main(void) {
  cc_rt *rt = th_open();
  parity(rt, 0);
  parity(rt, 1);
  load_save(rt);
  return th_finish(rt);
}

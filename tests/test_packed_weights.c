/* test_packed_weights.c: inference with the linear weights packed once for
 * the CPU GEMM kernels (src/model/clip.c pack_weights) against the same
 * model with packing off (CLIPCL_PACK_WEIGHTS=0):
 *  - image and text embeddings and text hidden states: the same bits
 *    (packing moves the weights, never the order of the products);
 *  - after new parameters are set, the packed copies are rebuilt: the
 *    embeddings equal those of a model created with those parameters;
 *  - a model with gradients enabled (training) does not use them, and still
 *    gives the same embeddings.
 * Config clipcl-test (tiny, odd widths), batches 1 and 3. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/model.h"

typedef struct {
  float *img, *txt, *hid;
} outputs;

static void run(clipcl_model *m, const clipcl_config *cfg, int B, const float *pix, const int32_t *ids, outputs *o) {
  int E = cfg->embed_dim, T = cfg->text.context_length, C = cfg->text.width;
  o->img = th_alloc((size_t)B * E);
  o->txt = th_alloc((size_t)B * E);
  o->hid = th_alloc((size_t)B * T * C);
  TH_OK(clipcl_model_encode_images(m, pix, B, o->img));
  TH_OK(clipcl_model_encode_texts(m, ids, B, o->txt));
  TH_OK(clipcl_model_text_hidden_states(m, ids, B, 1, o->hid));
}

static void same(const char *tag, const clipcl_config *cfg, int B, const outputs *a, const outputs *b) {
  int E = cfg->embed_dim, T = cfg->text.context_length, C = cfg->text.width;
  char name[128];
  snprintf(name, sizeof name, "%s: image embeddings", tag);
  th_same_bits(name, a->img, b->img, (size_t)B * E);
  snprintf(name, sizeof name, "%s: text embeddings", tag);
  th_same_bits(name, a->txt, b->txt, (size_t)B * E);
  snprintf(name, sizeof name, "%s: hidden states", tag);
  th_same_bits(name, a->hid, b->hid, (size_t)B * T * C);
}

int main(void) {
  cc_rt *rt = th_open();
  clipcl_config cfg;
  TH_OK(clipcl_config_get("clipcl-test", &cfg));
  int S = cfg.vision.image_size, T = cfg.text.context_length, V = cfg.text.vocab_size;
  for (int B = 1; B <= 3; B += 2) {
    float *pix = th_alloc((size_t)B * 3 * S * S);
    th_fill(pix, (size_t)B * 3 * S * S, -2, 2);
    int32_t *ids = calloc((size_t)B * T, sizeof *ids);
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++) ids[b * T + t] = t == 0 ? V - 2 : t < 5 + b ? 1 + (b * 7 + t * 13) % (V - 3) : t == 5 + b ? V - 1 : 0;
    clipcl_model *packed, *plain;
    TH_OK(clipcl_model_create(rt, &cfg, &packed));
    TH_OK(clipcl_model_init(packed, 7));
    setenv("CLIPCL_PACK_WEIGHTS", "0", 1);
    TH_OK(clipcl_model_create(rt, &cfg, &plain));
    TH_OK(clipcl_model_init(plain, 7));
    outputs a, b;
    run(plain, &cfg, B, pix, ids, &b); /* packing off: decided on first use */
    unsetenv("CLIPCL_PACK_WEIGHTS");
    run(packed, &cfg, B, pix, ids, &a);
    th_assert("packed copies built", packed->pk_state == 1 && packed->npk > 0, "state %d, %d weights",
              packed->pk_state, packed->npk);
    th_assert("plain model packs nothing", plain->pk_state == -1, "state %d", plain->pk_state);
    char tag[64];
    snprintf(tag, sizeof tag, "batch %d packed vs plain", B);
    same(tag, &cfg, B, &a, &b);

    /* new parameters: the packed copies follow */
    size_t n = packed->L.total;
    float *host = malloc(n * sizeof *host);
    clipcl_model *fresh;
    TH_OK(clipcl_model_create(rt, &cfg, &fresh));
    TH_OK(clipcl_model_init(fresh, 11));
    TH_OK(cc_model_get_params(fresh, host));
    TH_OK(cc_model_set_params(packed, host));
    setenv("CLIPCL_PACK_WEIGHTS", "0", 1);
    outputs c, d;
    run(fresh, &cfg, B, pix, ids, &d);
    unsetenv("CLIPCL_PACK_WEIGHTS");
    run(packed, &cfg, B, pix, ids, &c);
    snprintf(tag, sizeof tag, "batch %d after new parameters", B);
    same(tag, &cfg, B, &c, &d);

    /* gradients enabled: the packed copies are not used */
    TH_OK(cc_model_enable_grads(packed));
    outputs e;
    run(packed, &cfg, B, pix, ids, &e);
    snprintf(tag, sizeof tag, "batch %d with gradients enabled", B);
    same(tag, &cfg, B, &e, &d);
    free(host);
    free(ids);
    clipcl_model_free(fresh);
    clipcl_model_free(plain);
    clipcl_model_free(packed);
  }
  return th_finish(rt);
}

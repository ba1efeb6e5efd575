/* api.c: the public model functions of clipcl.h on top of model.h and
 * weights.h: create/init/load/save, identity, and batched encoders for
 * inference (which normalise on the host after one download per chunk). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/weights.h"

#define IMAGE_CHUNK 32
#define TEXT_CHUNK 64

clipcl_status clipcl_model_create(clipcl_device *dev, const clipcl_config *cfg, clipcl_model **out) {
  CC_TRY(cc_model_create(dev, cfg, out));
  (*out)->config_source = CC_CONFIG_OVERRIDE;
  return CLIPCL_OK;
}

clipcl_status clipcl_model_init(clipcl_model *m, uint64_t seed) {
  float *host = malloc(m->L.total * sizeof *host);
  if (!host) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory initialising %zu parameters", m->L.total);
  cc_layout_init_params(&m->L, seed, host);
  clipcl_status s = cc_model_set_params(m, host);
  free(host);
  return s;
}

clipcl_status clipcl_model_load(clipcl_device *dev, const char *path, const clipcl_config *config,
                                clipcl_model **out) {
  *out = NULL;
  clipcl_config cfg;
  float *host;
  cc_weights_info info;
  CC_TRY(cc_weights_read(path, config, &cfg, &host, &info));
  clipcl_model *m;
  clipcl_status s = cc_model_create(dev, &cfg, &m);
  if (!s) s = cc_model_set_params(m, host);
  free(host);
  if (s) {
    clipcl_model_free(m);
    return s;
  }
  snprintf(m->tokenizer, sizeof m->tokenizer, "%s", info.tokenizer);
  snprintf(m->path, sizeof m->path, "%s", path);
  m->config_source = info.config_source;
  m->no_vision = info.no_vision;
  m->no_text_proj = info.no_text_proj;
  *out = m;
  return CLIPCL_OK;
}

const char *clipcl_model_config_source(const clipcl_model *m) {
  return m->config_source == CC_CONFIG_METADATA ? "metadata"
         : m->config_source == CC_CONFIG_INFERRED ? "inferred"
                                                 : "override";
}

/* What a model loaded from a text-only file cannot do. */
static clipcl_status refuse_partial(const clipcl_model *m, int need_vision, int need_proj, const char *what) {
  if ((need_vision && m->no_vision) || (need_proj && m->no_text_proj))
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: %s holds a text tower only (no %s): it gives text hidden states",
                   what, m->path, m->no_vision && need_vision ? "image tower" : "text projection");
  return CLIPCL_OK;
}

clipcl_status clipcl_model_save(clipcl_model *m, const char *path, int hf_names) {
  CC_TRY(refuse_partial(m, 1, 1, "saving"));
  float *host = malloc(m->L.total * sizeof *host);
  if (!host) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory saving %s", path);
  clipcl_status s = cc_model_get_params(m, host);
  if (!s) s = cc_weights_write(path, &m->L, host, hf_names, m->tokenizer);
  free(host);
  return s;
}

const clipcl_config *clipcl_model_config(const clipcl_model *m) { return &m->L.cfg; }

uint64_t clipcl_model_num_params(const clipcl_model *m) { return clipcl_config_num_params(&m->L.cfg); }

clipcl_status clipcl_model_identity(clipcl_model *m, char *out, size_t cap) {
  float *host = malloc(m->L.total * sizeof *host);
  if (!host) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  clipcl_status s = cc_model_get_params(m, host);
  if (!s) {
    uint64_t h = 14695981039346656037ull;
    char *json = clipcl_config_to_json(&m->L.cfg);
    for (const char *c = json ? json : ""; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    free(json);
    const unsigned char *b = (const unsigned char *)host;
    for (size_t i = 0; i < m->L.total * sizeof *host; i++) h = (h ^ b[i]) * 1099511628211ull;
    snprintf(out, cap, "%s-%016llx", m->L.cfg.name, (unsigned long long)h);
  }
  free(host);
  return s;
}

static void normalise_rows(float *x, int n, int E) {
  for (int i = 0; i < n; i++) {
    double s = 0;
    for (int j = 0; j < E; j++) s += (double)x[(size_t)i * E + j] * x[(size_t)i * E + j];
    double inv = 1.0 / fmax(sqrt(s), 1e-12);
    for (int j = 0; j < E; j++) x[(size_t)i * E + j] = (float)(x[(size_t)i * E + j] * inv);
  }
}

clipcl_status clipcl_model_encode_images(clipcl_model *m, const float *pixels, int n, float *emb) {
  CC_TRY(refuse_partial(m, 1, 0, "image embeddings"));
  if (n <= 0) return CLIPCL_OK;
  int chunk = n < IMAGE_CHUNK ? n : IMAGE_CHUNK, E = m->L.cfg.embed_dim, S = m->L.cfg.vision.image_size;
  CC_TRY(cc_model_workspace(m, 1, chunk, 0));
  size_t px = (size_t)3 * S * S;
  for (int i = 0; i < n; i += chunk) {
    int b = n - i < chunk ? n - i : chunk;
    CC_TRY(cc_write(m->rt, m->vis.pixels, pixels + (size_t)i * px, (size_t)b * px));
    CC_TRY(cc_vision_forward(m, b));
    CC_TRY(cc_read(m->rt, m->vis.feat, emb + (size_t)i * E, (size_t)b * E));
  }
  normalise_rows(emb, n, E);
  return CLIPCL_OK;
}

clipcl_status clipcl_model_encode_texts(clipcl_model *m, const int32_t *ids, int n, float *emb) {
  CC_TRY(refuse_partial(m, 0, 1, "text embeddings"));
  if (n <= 0) return CLIPCL_OK;
  int chunk = n < TEXT_CHUNK ? n : TEXT_CHUNK, E = m->L.cfg.embed_dim, T = m->L.cfg.text.context_length;
  CC_TRY(cc_model_workspace(m, 0, chunk, 0));
  for (int i = 0; i < n; i += chunk) {
    int b = n - i < chunk ? n - i : chunk;
    CC_TRY(cc_write(m->rt, m->txt.ids, ids + (size_t)i * T, (size_t)b * T));
    CC_TRY(cc_text_forward(m, b));
    CC_TRY(cc_read(m->rt, m->txt.feat, emb + (size_t)i * E, (size_t)b * E));
  }
  normalise_rows(emb, n, E);
  return CLIPCL_OK;
}

clipcl_status clipcl_model_text_hidden_states(clipcl_model *m, const int32_t *ids, int n, int skip, float *out) {
  if (!m || n < 0 || (n && (!ids || !out))) return cc_fail(CLIPCL_ERR_ARG, "hidden states: bad arguments");
  if (n == 0) return CLIPCL_OK;
  const cc_layout *L = &m->L;
  int T = L->cfg.text.context_length, C = L->txt.C, V = L->cfg.text.vocab_size;
  if (skip < 0 || skip >= L->txt.layers)
    return cc_fail(CLIPCL_ERR_ARG, "hidden states: layer %d from the end does not exist (the text tower has %d)",
                   skip, L->txt.layers);
  for (size_t i = 0; i < (size_t)n * T; i++)
    if (ids[i] < 0 || ids[i] >= V)
      return cc_fail(CLIPCL_ERR_ARG, "hidden states: text %zu, position %zu: token id %d is outside the vocabulary (%d)",
                     i / T, i % T, ids[i], V);
  int chunk = n < TEXT_CHUNK ? n : TEXT_CHUNK;
  CC_TRY(cc_model_workspace(m, 0, chunk, 0));
  for (int i = 0; i < n; i += chunk) {
    int b = n - i < chunk ? n - i : chunk;
    cc_view h;
    CC_TRY(cc_write(m->rt, m->txt.ids, ids + (size_t)i * T, (size_t)b * T));
    CC_TRY(cc_text_hidden_forward(m, b, skip, &h));
    CC_TRY(cc_read(m->rt, h, out + (size_t)i * T * C, (size_t)b * T * C));
  }
  return CLIPCL_OK;
}

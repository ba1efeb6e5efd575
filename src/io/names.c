/* names.c: OpenAI/open_clip <-> HF transformers CLIP weight names (see
 * names.h), from two tables: whole names outside the transformer blocks, and
 * per-block suffixes after "<tower prefix><layer index>.". */
#include "io/names.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

typedef struct {
  const char *openai, *hf;
  cc_xf_op op;
  int part;
} rule;

static const rule whole[] = {
    {"visual.class_embedding", "vision_model.embeddings.class_embedding", CC_XF_IDENTITY, 0},
    {"visual.positional_embedding", "vision_model.embeddings.position_embedding.weight", CC_XF_IDENTITY, 0},
    {"visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight", CC_XF_IDENTITY, 0},
    {"visual.ln_pre.weight", "vision_model.pre_layrnorm.weight", CC_XF_IDENTITY, 0}, /* HF's spelling */
    {"visual.ln_pre.bias", "vision_model.pre_layrnorm.bias", CC_XF_IDENTITY, 0},
    {"visual.ln_post.weight", "vision_model.post_layernorm.weight", CC_XF_IDENTITY, 0},
    {"visual.ln_post.bias", "vision_model.post_layernorm.bias", CC_XF_IDENTITY, 0},
    {"visual.proj", "visual_projection.weight", CC_XF_TRANSPOSE, 0},
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight", CC_XF_IDENTITY, 0},
    {"positional_embedding", "text_model.embeddings.position_embedding.weight", CC_XF_IDENTITY, 0},
    {"ln_final.weight", "text_model.final_layer_norm.weight", CC_XF_IDENTITY, 0},
    {"ln_final.bias", "text_model.final_layer_norm.bias", CC_XF_IDENTITY, 0},
    {"text_projection", "text_projection.weight", CC_XF_TRANSPOSE, 0},
    {"logit_scale", "logit_scale", CC_XF_IDENTITY, 0},
    {"logit_bias", "logit_bias", CC_XF_IDENTITY, 0}, /* SigLIP */
};

/* Within one residual block. q, k, v stay in that order: it is the row order
 * of in_proj_weight. */
static const rule block[] = {
    {"ln_1.weight", "layer_norm1.weight", CC_XF_IDENTITY, 0},
    {"ln_1.bias", "layer_norm1.bias", CC_XF_IDENTITY, 0},
    {"attn.in_proj_weight", "self_attn.q_proj.weight", CC_XF_QKV_PART, 0},
    {"attn.in_proj_weight", "self_attn.k_proj.weight", CC_XF_QKV_PART, 1},
    {"attn.in_proj_weight", "self_attn.v_proj.weight", CC_XF_QKV_PART, 2},
    {"attn.in_proj_bias", "self_attn.q_proj.bias", CC_XF_QKV_PART, 0},
    {"attn.in_proj_bias", "self_attn.k_proj.bias", CC_XF_QKV_PART, 1},
    {"attn.in_proj_bias", "self_attn.v_proj.bias", CC_XF_QKV_PART, 2},
    {"attn.out_proj.weight", "self_attn.out_proj.weight", CC_XF_IDENTITY, 0},
    {"attn.out_proj.bias", "self_attn.out_proj.bias", CC_XF_IDENTITY, 0},
    {"ln_2.weight", "layer_norm2.weight", CC_XF_IDENTITY, 0},
    {"ln_2.bias", "layer_norm2.bias", CC_XF_IDENTITY, 0},
    {"mlp.c_fc.weight", "mlp.fc1.weight", CC_XF_IDENTITY, 0},
    {"mlp.c_fc.bias", "mlp.fc1.bias", CC_XF_IDENTITY, 0},
    {"mlp.c_proj.weight", "mlp.fc2.weight", CC_XF_IDENTITY, 0},
    {"mlp.c_proj.bias", "mlp.fc2.bias", CC_XF_IDENTITY, 0},
};

static const struct {
  const char *openai, *hf;
} towers[] = {
    {"visual.transformer.resblocks.", "vision_model.encoder.layers."},
    {"transformer.resblocks.", "text_model.encoder.layers."},
};

#define NWHOLE (sizeof whole / sizeof *whole)
#define NBLOCK (sizeof block / sizeof *block)
#define NTOWER (sizeof towers / sizeof *towers)

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* A layer index: 1-6 digits without a leading zero (so the string maps back
 * to itself), then '.'. Returns its length, 0 if none. */
static size_t layer_index(const char *s) {
  size_t n = 0;
  while (s[n] >= '0' && s[n] <= '9') n++;
  if (n == 0 || n > 6 || (n > 1 && s[0] == '0') || s[n] != '.') return 0;
  return n;
}

static clipcl_status set(cc_name_map *m, const char *a, size_t alen, const char *b, const rule *r) {
  size_t blen = strlen(b);
  if (alen + blen + 1 > CC_NAME_MAX) return cc_fail(CLIPCL_ERR_FORMAT, "weight name too long: %.80s...", b);
  memcpy(m->name, a, alen);
  memcpy(m->name + alen, b, blen + 1);
  m->op = r->op;
  m->part = r->part;
  return CLIPCL_OK;
}

/* Tensor names come from files: keep the message on one line. */
static const char *printable(const char *s, char *buf, size_t cap) {
  size_t i = 0, j = 0;
  for (; s[i] && j + 4 < cap; i++) buf[j++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
  if (s[i]) memcpy(buf + j, "...", 3), j += 3;
  buf[j] = 0;
  return buf;
}

clipcl_status cc_name_hf_to_openai(const char *hf, cc_name_map *out) {
  if (!hf || !out) return cc_fail(CLIPCL_ERR_ARG, "cc_name_hf_to_openai: NULL argument");
  memset(out, 0, sizeof *out);
  size_t len = strlen(hf);
  static const char pid[] = ".position_ids";
  if (len >= sizeof pid - 1 && strcmp(hf + len - (sizeof pid - 1), pid) == 0) {
    static const rule ign = {"", "", CC_XF_IGNORE, 0};
    return set(out, "", 0, "", &ign);
  }
  for (size_t i = 0; i < NWHOLE; i++)
    if (strcmp(hf, whole[i].hf) == 0) return set(out, "", 0, whole[i].openai, &whole[i]);
  for (size_t t = 0; t < NTOWER; t++) {
    if (!starts_with(hf, towers[t].hf)) continue;
    const char *rest = hf + strlen(towers[t].hf);
    size_t li = layer_index(rest);
    if (!li) break;
    const char *suffix = rest + li + 1;
    for (size_t i = 0; i < NBLOCK; i++) {
      if (strcmp(suffix, block[i].hf) != 0) continue;
      char prefix[CC_NAME_MAX];
      int n = snprintf(prefix, sizeof prefix, "%s%.*s.", towers[t].openai, (int)li, rest);
      if (n < 0 || (size_t)n >= sizeof prefix) break;
      return set(out, prefix, (size_t)n, block[i].openai, &block[i]);
    }
    break;
  }
  char nb[96];
  return cc_fail(CLIPCL_ERR_FORMAT, "unknown HF CLIP weight name '%s'", printable(hf, nb, sizeof nb));
}

clipcl_status cc_name_openai_to_hf(const char *openai, cc_name_map out[3], int *count) {
  if (!openai || !out || !count) return cc_fail(CLIPCL_ERR_ARG, "cc_name_openai_to_hf: NULL argument");
  *count = 0;
  for (size_t i = 0; i < NWHOLE; i++)
    if (strcmp(openai, whole[i].openai) == 0) {
      CC_TRY(set(&out[0], "", 0, whole[i].hf, &whole[i]));
      *count = 1;
      return CLIPCL_OK;
    }
  for (size_t t = 0; t < NTOWER; t++) {
    if (!starts_with(openai, towers[t].openai)) continue;
    const char *rest = openai + strlen(towers[t].openai);
    size_t li = layer_index(rest);
    if (!li) break;
    const char *suffix = rest + li + 1;
    char prefix[CC_NAME_MAX];
    int n = snprintf(prefix, sizeof prefix, "%s%.*s.", towers[t].hf, (int)li, rest);
    if (n < 0 || (size_t)n >= sizeof prefix) break;
    for (size_t i = 0; i < NBLOCK && *count < 3; i++) {
      if (strcmp(suffix, block[i].openai) != 0) continue;
      CC_TRY(set(&out[*count], prefix, (size_t)n, block[i].hf, &block[i]));
      (*count)++;
    }
    if (*count) return CLIPCL_OK;
    break;
  }
  char nb[96];
  return cc_fail(CLIPCL_ERR_FORMAT, "unknown OpenAI CLIP weight name '%s'", printable(openai, nb, sizeof nb));
}

cc_naming cc_name_kind(const char *name) {
  if (!name || strcmp(name, "logit_scale") == 0 || strcmp(name, "logit_bias") == 0) return CC_NAMING_UNKNOWN;
  cc_name_map m[3];
  int n;
  /* The last error message is the caller's; probing must not replace it. */
  char saved[8192];
  snprintf(saved, sizeof saved, "%s", clipcl_last_error());
  cc_naming k = CC_NAMING_UNKNOWN;
  if (cc_name_hf_to_openai(name, m) == CLIPCL_OK) k = CC_NAMING_HF;
  else if (cc_name_openai_to_hf(name, m, &n) == CLIPCL_OK) k = CC_NAMING_OPENAI;
  cc_fail(CLIPCL_OK, "%s", saved);
  return k;
}

cc_naming cc_names_detect(const char *const *names, size_t n) {
  size_t oa = 0, hf = 0;
  for (size_t i = 0; names && i < n; i++) {
    cc_naming k = cc_name_kind(names[i]);
    oa += k == CC_NAMING_OPENAI;
    hf += k == CC_NAMING_HF;
  }
  if (oa && hf) return CC_NAMING_MIXED;
  if (oa) return CC_NAMING_OPENAI;
  if (hf) return CC_NAMING_HF;
  return CC_NAMING_UNKNOWN;
}

const char *cc_naming_name(cc_naming k) {
  switch (k) {
    case CC_NAMING_OPENAI: return "openai";
    case CC_NAMING_HF: return "hf";
    case CC_NAMING_MIXED: return "mixed";
    case CC_NAMING_UNKNOWN: break;
  }
  return "unknown";
}

/* weights.c: model weights in safetensors files, with OpenAI/open_clip or
 * Hugging Face transformers tensor names (detected), F32/F16/BF16 in and F32
 * out. The config comes from, in order: the caller's override, the file's
 * `clipcl.config` metadata, or the tensor shapes (heads = width / 64 and exact
 * GELU assumed, as OpenAI's and open_clip's ViT configs use; whether OpenAI
 * weights want QuickGELU is not recorded in their files). A file with a
 * missing, extra or mis-shaped tensor is refused, naming it. A file with a
 * text tower only (HF CLIPTextModel / CLIPTextModelWithProjection, e.g. a
 * diffusion pipeline's text_encoder) loads for text hidden states, with its
 * config given and a placeholder image tower. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/names.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/weights.h"

/* ---- config from shapes ---------------------------------------------------- */

static const cc_st_tensor *find_either(const cc_st_file *f, cc_naming naming, const char *openai) {
  if (naming != CC_NAMING_HF) return cc_st_find(f, openai);
  cc_name_map map[3];
  int n;
  if (cc_name_openai_to_hf(openai, map, &n) != CLIPCL_OK) return NULL;
  return cc_st_find(f, map[0].name);
}

static int count_layers(const cc_st_file *f, cc_naming naming, const char *prefix_openai) {
  int n = 0;
  for (;; n++) {
    char name[160];
    snprintf(name, sizeof name, "%s.%d.ln_1.weight", prefix_openai, n);
    if (!find_either(f, naming, name)) return n;
  }
}

static clipcl_status infer_config(const cc_st_file *f, cc_naming naming, clipcl_config *c) {
  const char *path = cc_st_path(f);
  const cc_st_tensor *cls = find_either(f, naming, "visual.class_embedding");
  const cc_st_tensor *vpos = find_either(f, naming, "visual.positional_embedding");
  const cc_st_tensor *conv = find_either(f, naming, "visual.conv1.weight");
  const cc_st_tensor *tok = find_either(f, naming, "token_embedding.weight");
  const cc_st_tensor *tpos = find_either(f, naming, "positional_embedding");
  const cc_st_tensor *tproj = find_either(f, naming, "text_projection");
  const cc_st_tensor *vfc = find_either(f, naming, "visual.transformer.resblocks.0.mlp.c_fc.weight");
  const cc_st_tensor *tfc = find_either(f, naming, "transformer.resblocks.0.mlp.c_fc.weight");
  const char *missing = !cls ? "visual.class_embedding" : !vpos ? "visual.positional_embedding"
                      : !conv ? "visual.conv1.weight" : !tok ? "token_embedding.weight"
                      : !tpos ? "positional_embedding" : !tproj ? "text_projection"
                      : !vfc ? "visual.transformer.resblocks.0.mlp.c_fc.weight"
                      : !tfc ? "transformer.resblocks.0.mlp.c_fc.weight" : NULL;
  if (missing)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: cannot infer the model config: tensor %s (or its HF name) is missing",
                   path, missing);
  if (cls->ndim != 1 || conv->ndim != 4 || vpos->ndim != 2 || tok->ndim != 2 || tpos->ndim != 2 ||
      tproj->ndim != 2 || vfc->ndim != 2 || tfc->ndim != 2)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: cannot infer the model config: unexpected tensor ranks", path);
  memset(c, 0, sizeof *c);
  int vw = (int)cls->shape[0], p = (int)conv->shape[2];
  long npos = (long)vpos->shape[0] - 1, g = 0;
  while ((g + 1) * (g + 1) <= npos) g++;
  if (g * g != npos || p <= 0)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: visual positional embedding of %ld patches is not a square grid", path,
                   npos);
  int tw = (int)tpos->shape[1];
  /* HF stores projections as (E, W); OpenAI as (W, E) */
  int E = (int)(naming == CC_NAMING_HF ? tproj->shape[0] : tproj->shape[1]);
  c->embed_dim = E;
  c->quick_gelu = 0;
  c->vision = (clipcl_vision_cfg){(int)g * p, count_layers(f, naming, "visual.transformer.resblocks"), vw, p, 64,
                                  (float)vfc->shape[0] / (float)vw};
  c->text = (clipcl_text_cfg){(int)tpos->shape[0], (int)tok->shape[0], tw, tw / 64 > 0 ? tw / 64 : 1,
                              count_layers(f, naming, "transformer.resblocks"), (float)tfc->shape[0] / (float)tw};
  if (vw % 64) c->vision.head_width = vw; /* one head when the width is not a multiple of 64 */
  /* a SigLIP model: the bias is read from the file, its init value unknown */
  if (cc_st_find(f, "logit_bias")) c->logit_bias = 1;
  if (tw % 64) c->text.heads = 1;
  snprintf(c->name, sizeof c->name, "inferred");
  return clipcl_config_validate(c, path);
}

/* ---- loading ---------------------------------------------------------------------- */

static int shape_is(const cc_st_tensor *t, int ndim, const int64_t *shape) {
  if (t->ndim != ndim) return 0;
  for (int i = 0; i < ndim; i++)
    if (t->shape[i] != shape[i]) return 0;
  return 1;
}

static void shape_str(char *out, size_t n, int ndim, const int64_t *shape) {
  size_t k = (size_t)snprintf(out, n, "[");
  for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(out + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (k < n) snprintf(out + k, n - k, "]");
}

static clipcl_status shape_fail(const char *path, const char *name, const cc_st_tensor *t, int ndim,
                                const int64_t *want) {
  char got[96], exp[96];
  shape_str(got, sizeof got, t->ndim, t->shape);
  shape_str(exp, sizeof exp, ndim, want);
  return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor %s has shape %s, the config needs %s", path, name, got, exp);
}

/* Reads every tensor of the layout from f into host[L->total]. Marks used
 * file tensors in `used` (index by file order). A text-only file leaves the
 * vision tower, logit_scale and (when absent) text_projection at zero. */
static clipcl_status read_all(const cc_st_file *f, cc_naming naming, const cc_layout *L, float *host,
                              unsigned char *used, int text_only) {
  const char *path = cc_st_path(f);
  size_t nfile = cc_st_count(f);
  for (int i = 0; i < L->n; i++) {
    const cc_tensor_info *t = &L->t[i];
    float *dst = host + t->off;
    if (text_only && (!strncmp(t->name, "visual.", 7) || t->ndim == 0 /* logit_scale, logit_bias */ ||
                      (!strcmp(t->name, "text_projection") && !find_either(f, naming, t->name))))
      continue;
    if (naming != CC_NAMING_HF || t->ndim == 0) {
      const cc_st_tensor *s = cc_st_find(f, t->name);
      if (!s) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor %s is missing", path, t->name);
      /* logit_scale (and logit_bias) are stored as [] by open_clip and sometimes as [1] */
      int ok = shape_is(s, t->ndim, t->shape) || (t->ndim == 0 && s->ndim == 1 && s->shape[0] == 1);
      if (!ok) return shape_fail(path, t->name, s, t->ndim, t->shape);
      CC_TRY(cc_st_read_f32(f, s, dst));
      used[s - cc_st_get(f, 0)] = 1;
      continue;
    }
    cc_name_map map[3];
    int nmap;
    CC_TRY(cc_name_openai_to_hf(t->name, map, &nmap));
    for (int k = 0; k < nmap; k++) {
      const cc_st_tensor *s = cc_st_find(f, map[k].name);
      if (!s) return cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor %s (HF name of %s) is missing", path, map[k].name, t->name);
      if (map[k].op == CC_XF_QKV_PART) {
        int64_t part[2] = {t->shape[0] / 3, t->ndim == 2 ? t->shape[1] : 0};
        if (!shape_is(s, t->ndim, part)) return shape_fail(path, map[k].name, s, t->ndim, part);
        CC_TRY(cc_st_read_f32(f, s, dst + (size_t)map[k].part * (t->numel / 3)));
      } else if (map[k].op == CC_XF_TRANSPOSE) {
        int64_t tr[2] = {t->shape[1], t->shape[0]};
        if (!shape_is(s, 2, tr)) return shape_fail(path, map[k].name, s, 2, tr);
        float *tmp = malloc(t->numel * sizeof *tmp);
        if (!tmp) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory reading %s", path);
        clipcl_status st = cc_st_read_f32(f, s, tmp);
        size_t R = (size_t)tr[0], Cc = (size_t)tr[1];
        for (size_t r = 0; r < R && !st; r++)
          for (size_t c = 0; c < Cc; c++) dst[c * R + r] = tmp[r * Cc + c];
        free(tmp);
        CC_TRY(st);
      } else {
        if (!shape_is(s, t->ndim, t->shape)) return shape_fail(path, map[k].name, s, t->ndim, t->shape);
        CC_TRY(cc_st_read_f32(f, s, dst));
      }
      used[s - cc_st_get(f, 0)] = 1;
    }
  }
  for (size_t i = 0; i < nfile; i++) {
    const cc_st_tensor *s = cc_st_get(f, i);
    if (used[i]) continue;
    cc_name_map mp;
    if (naming == CC_NAMING_HF && cc_name_hf_to_openai(s->name, &mp) == CLIPCL_OK && mp.op == CC_XF_IGNORE) continue;
    if (!strcmp(s->name, "attn_mask")) continue; /* some exports keep the causal-mask buffer */
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: unexpected tensor %s (not part of a %s model with this config)", path,
                   s->name, L->cfg.name);
  }
  return CLIPCL_OK;
}

clipcl_status cc_weights_read(const char *path, const clipcl_config *override, clipcl_config *cfg_out,
                              float **host_out, cc_weights_info *info) {
  *host_out = NULL;
  memset(info, 0, sizeof *info);
  cc_st_file *f;
  CC_TRY(cc_st_open(path, &f));
  size_t n = cc_st_count(f);
  const char **names = malloc((n ? n : 1) * sizeof *names);
  unsigned char *used = calloc(n ? n : 1, 1);
  float *host = NULL;
  cc_layout L = {0};
  clipcl_status s = CLIPCL_OK;
  if (!names || !used) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory reading %s", path);
    goto done;
  }
  for (size_t i = 0; i < n; i++) names[i] = cc_st_get(f, i)->name;
  cc_naming naming = cc_names_detect(names, n);
  if (naming == CC_NAMING_MIXED || naming == CC_NAMING_UNKNOWN) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: tensor names are %s (neither OpenAI/open_clip nor HF CLIP names)", path,
                naming == CC_NAMING_MIXED ? "a mix of OpenAI and HF names" : "unrecognised");
    goto done;
  }
  clipcl_config cfg;
  const char *meta = cc_st_meta(f, "clipcl.config");
  /* A text encoder alone (HF CLIPTextModel, as diffusion pipelines keep it):
   * good for hidden states; its config cannot be inferred (QuickGELU or not). */
  int text_only = !find_either(f, naming, "visual.conv1.weight") && find_either(f, naming, "token_embedding.weight");
  if (text_only && !override && !meta) {
    s = cc_fail(CLIPCL_ERR_FORMAT,
                "%s holds a text tower only (no image tower): give its config (--model-config; ViT-L-14-quickgelu "
                "for the text encoder of Stable Diffusion 1.x)", path);
    goto done;
  }
  if (override) {
    cfg = *override;
    info->config_source = CC_CONFIG_OVERRIDE;
    /* a SigLIP file keeps its learnt bias whatever architecture is named */
    if (cc_st_find(f, "logit_bias")) cfg.logit_bias = 1;
  } else if (meta) {
    char src[600];
    snprintf(src, sizeof src, "%s (clipcl.config metadata)", path);
    if ((s = clipcl_config_parse(meta, src, &cfg))) goto done;
    const char *nm = cc_st_meta(f, "clipcl.config_name");
    if (nm) snprintf(cfg.name, sizeof cfg.name, "%s", nm);
    info->config_source = CC_CONFIG_METADATA;
  } else {
    if ((s = infer_config(f, naming, &cfg))) goto done;
    info->config_source = CC_CONFIG_INFERRED;
  }
  if (text_only) {
    /* no room for the absent image tower: the smallest valid one, all zero */
    cfg.vision = (clipcl_vision_cfg){.image_size = 1, .layers = 1, .width = 1, .patch_size = 1, .head_width = 1,
                                     .mlp_ratio = 1.0f};
    info->no_vision = 1;
    info->no_text_proj = !find_either(f, naming, "text_projection");
  }
  if ((s = cc_layout_build(&cfg, &L))) goto done;
  {
    /* every parameter comes from the file: one that holds far fewer values
     * than the config needs is refused before its (config-sized) buffer is
     * made, so a forged config in a small file cannot ask for gigabytes; a
     * near miss goes on to read_all, which names the tensor that is wrong */
    uint64_t have = 0, need = 0;
    for (size_t i = 0; i < n; i++) have += cc_st_get(f, i)->numel;
    for (int i = 0; i < L.n; i++) need += L.t[i].numel;
    if (have < need / 2) {
      s = cc_fail(CLIPCL_ERR_FORMAT, "%s: holds %llu values, not the %llu parameters of the model its config "
                  "describes (%s)", path, (unsigned long long)have, (unsigned long long)need,
                  info->config_source == CC_CONFIG_OVERRIDE ? "as given" :
                  info->config_source == CC_CONFIG_METADATA ? "from its metadata" : "inferred from its shapes");
      goto done;
    }
  }
  host = calloc(L.total ? L.total : 1, sizeof *host);
  if (!host) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory reading %s (%zu parameters)", path, L.total);
    goto done;
  }
  if ((s = read_all(f, naming, &L, host, used, text_only))) goto done;
  {
    const char *tk = cc_st_meta(f, "clipcl.tokenizer");
    snprintf(info->tokenizer, sizeof info->tokenizer, "%s", tk ? tk : "");
    info->hf_names = naming == CC_NAMING_HF;
  }
  *cfg_out = cfg;
  *host_out = host;
  host = NULL;
done:
  free(host);
  free(names);
  free(used);
  cc_layout_free(&L);
  cc_st_close(f);
  return s;
}

/* ---- writing ------------------------------------------------------------------------ */

clipcl_status cc_weights_write(const char *path, const cc_layout *L, const float *host, int hf_names,
                               const char *tokenizer) {
  return cc_weights_write_meta(path, L, host, hf_names, tokenizer, NULL, 0);
}

clipcl_status cc_weights_write_meta(const char *path, const cc_layout *L, const float *host, int hf_names,
                                    const char *tokenizer, const char *const *extra_kv, int n_extra) {
  int n = L->n, cap = hf_names ? 3 * n : n;
  cc_st_out *outs = calloc((size_t)cap, sizeof *outs);
  char(*names)[CC_NAME_MAX] = calloc((size_t)cap, sizeof *names);
  float **owned = calloc((size_t)cap, sizeof *owned);
  char *cfg_json = clipcl_config_to_json(&L->cfg);
  clipcl_status s = CLIPCL_OK;
  int k = 0;
  if (!outs || !names || !owned || !cfg_json) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory writing %s", path);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    const cc_tensor_info *t = &L->t[i];
    const float *src = host + t->off;
    if (!hf_names || t->ndim == 0) {
      snprintf(names[k], CC_NAME_MAX, "%s", t->name);
      outs[k] = (cc_st_out){.name = names[k], .dtype = CC_ST_F32, .ndim = t->ndim, .data = src};
      memcpy(outs[k].shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
      k++;
      continue;
    }
    cc_name_map map[3];
    int nmap;
    if ((s = cc_name_openai_to_hf(t->name, map, &nmap))) goto done;
    for (int j = 0; j < nmap; j++) {
      memcpy(names[k], map[j].name, CC_NAME_MAX);
      names[k][CC_NAME_MAX - 1] = 0;
      outs[k] = (cc_st_out){.name = names[k], .dtype = CC_ST_F32, .ndim = t->ndim, .data = src};
      memcpy(outs[k].shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
      if (map[j].op == CC_XF_QKV_PART) {
        outs[k].shape[0] = t->shape[0] / 3;
        outs[k].data = src + (size_t)map[j].part * (t->numel / 3);
      } else if (map[j].op == CC_XF_TRANSPOSE) {
        size_t R = (size_t)t->shape[0], Cc = (size_t)t->shape[1];
        float *tr = malloc(t->numel * sizeof *tr);
        if (!tr) {
          s = cc_fail(CLIPCL_ERR_NOMEM, "out of host memory writing %s", path);
          goto done;
        }
        for (size_t r = 0; r < R; r++)
          for (size_t c = 0; c < Cc; c++) tr[c * R + r] = src[r * Cc + c];
        owned[k] = tr;
        outs[k].data = tr;
        outs[k].shape[0] = (int64_t)Cc;
        outs[k].shape[1] = (int64_t)R;
      }
      k++;
    }
  }
  {
    cc_st_kv meta[4 + 16] = {{"format", "pt"}, {"clipcl.config", cfg_json}, {"clipcl.config_name", L->cfg.name},
                             {"clipcl.tokenizer", tokenizer && *tokenizer ? tokenizer : "clip-bpe-49408"}};
    int nm = 4;
    for (int i = 0; i < n_extra && nm < 20; i++, nm++) meta[nm] = (cc_st_kv){extra_kv[2 * i], extra_kv[2 * i + 1]};
    s = cc_st_write(path, outs, (size_t)k, meta, (size_t)nm, NULL, NULL);
  }
done:
  for (int i = 0; i < k && owned; i++) free(owned[i]);
  free(owned);
  free(outs);
  free(names);
  free(cfg_json);
  return s;
}

/* config.c: model configurations: built-in table, open_clip JSON in and out,
 * validation and parameter counting. Architectures outside plain ViT + text
 * transformer (timm/HF towers, attentional pooling, layer scale, ...) are
 * refused with the key that asks for them. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipcl.h"
#include "util/error.h"

/* A config file is a few hundred bytes; a longer one is not a config. */
#define CC_CONFIG_MAX_FILE 65536

typedef struct {
  const char *name;
  clipcl_config c;
} builtin_cfg;

#define TEXT_STD {77, 49408, 512, 8, 12, 4.0f}
static const builtin_cfg builtins[] = {
    {"ViT-B-32", {"ViT-B-32", 512, 0, {224, 12, 768, 32, 64, 4.0f}, TEXT_STD, 0, 0, 0}},
    {"ViT-B-32-quickgelu", {"ViT-B-32-quickgelu", 512, 1, {224, 12, 768, 32, 64, 4.0f}, TEXT_STD, 0, 0, 0}},
    {"ViT-B-16", {"ViT-B-16", 512, 0, {224, 12, 768, 16, 64, 4.0f}, TEXT_STD, 0, 0, 0}},
    {"ViT-B-16-quickgelu", {"ViT-B-16-quickgelu", 512, 1, {224, 12, 768, 16, 64, 4.0f}, TEXT_STD, 0, 0, 0}},
    {"ViT-L-14", {"ViT-L-14", 768, 0, {224, 24, 1024, 14, 64, 4.0f}, {77, 49408, 768, 12, 12, 4.0f}, 0, 0, 0}},
    {"ViT-L-14-quickgelu", {"ViT-L-14-quickgelu", 768, 1, {224, 24, 1024, 14, 64, 4.0f}, {77, 49408, 768, 12, 12, 4.0f}, 0, 0, 0}},
    /* Small configs for CPU work. tiny: 64 px images, 8 px patches (65
     * positions), 6 layers of width 256 in each tower. micro: 32 px, 17
     * positions, 4 layers of width 128, text context 32: trains at tens to
     * hundreds of samples/s on 2 cores. */
    {"clipcl-tiny", {"clipcl-tiny", 256, 0, {64, 6, 256, 8, 64, 4.0f}, {77, 49408, 256, 4, 6, 4.0f}, 0, 0, 0}},
    {"clipcl-micro", {"clipcl-micro", 128, 0, {32, 4, 128, 8, 32, 4.0f}, {32, 49408, 128, 4, 4, 4.0f}, 0, 0, 0}},
    /* Odd sizes on purpose, for parity tests: 9 patches + class token, head
     * width 16 (vision) and 8 (text), vocabulary 300 (ids, not BPE). */
    {"clipcl-test", {"clipcl-test", 24, 0, {24, 2, 48, 8, 16, 4.0f}, {11, 300, 40, 5, 2, 4.0f}, 0, 0, 0}},
};
#define NBUILTIN (sizeof builtins / sizeof *builtins)

const char *const *clipcl_config_names(void) {
  static const char *names[NBUILTIN + 1];
  for (size_t i = 0; i < NBUILTIN; i++) names[i] = builtins[i].name;
  names[NBUILTIN] = NULL;
  return names;
}

clipcl_status clipcl_config_validate(const clipcl_config *c, const char *src) {
  const clipcl_vision_cfg *v = &c->vision;
  const clipcl_text_cfg *t = &c->text;
  if (c->embed_dim <= 0 || c->embed_dim > 65536) return cc_fail(CLIPCL_ERR_FORMAT, "%s: embed_dim %d out of range", src, c->embed_dim);
  if (v->image_size <= 0 || v->image_size > 4096 || v->patch_size <= 0 || v->image_size % v->patch_size)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: vision image_size %d must be a positive multiple of patch_size %d", src,
                   v->image_size, v->patch_size);
  if (v->layers <= 0 || v->layers > 256 || v->width <= 0 || v->width > 65536)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: vision layers %d / width %d out of range", src, v->layers, v->width);
  if (v->head_width <= 0 || v->width % v->head_width)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: vision width %d is not a multiple of head_width %d", src, v->width,
                   v->head_width);
  if (!(v->mlp_ratio > 0 && v->mlp_ratio <= 64) || !(t->mlp_ratio > 0 && t->mlp_ratio <= 64))
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: mlp_ratio out of range", src);
  if (t->context_length <= 1 || t->context_length > 4096 || t->vocab_size <= 1 || t->vocab_size > 10000000)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: text context_length %d / vocab_size %d out of range", src, t->context_length,
                   t->vocab_size);
  if (t->layers <= 0 || t->layers > 256 || t->width <= 0 || t->width > 65536 || t->heads <= 0 ||
      t->width % t->heads)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: text width %d must be a positive multiple of heads %d (layers %d)", src,
                   t->width, t->heads, t->layers);
  return CLIPCL_OK;
}

static int mlp_width(int width, float ratio) { return (int)(width * ratio); }

static uint64_t tower_block_params(uint64_t w, uint64_t m) {
  /* ln_1 (2w) + in_proj (3w*w + 3w) + out_proj (w*w + w) + ln_2 (2w) + c_fc (m*w + m) + c_proj (w*m + w) */
  return 2 * w + 3 * w * w + 3 * w + w * w + w + 2 * w + m * w + m + w * m + w;
}

uint64_t clipcl_config_num_params(const clipcl_config *c) {
  const clipcl_vision_cfg *v = &c->vision;
  const clipcl_text_cfg *t = &c->text;
  uint64_t vw = (uint64_t)v->width, g = (uint64_t)(v->image_size / v->patch_size);
  uint64_t n = vw + (g * g + 1) * vw + vw * 3 * v->patch_size * v->patch_size + 2 * vw;
  n += (uint64_t)v->layers * tower_block_params(vw, (uint64_t)mlp_width(v->width, v->mlp_ratio));
  n += 2 * vw + vw * (uint64_t)c->embed_dim;
  uint64_t tw = (uint64_t)t->width;
  n += (uint64_t)t->vocab_size * tw + (uint64_t)t->context_length * tw;
  n += (uint64_t)t->layers * tower_block_params(tw, (uint64_t)mlp_width(t->width, t->mlp_ratio));
  n += 2 * tw + tw * (uint64_t)c->embed_dim + 1;
  return n + (c->logit_bias ? 1 : 0);
}

/* Reads an integer member; absent keeps the default. */
static clipcl_status get_int(json_t *o, const char *key, int *out, const char *src, const char *sect) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) return CLIPCL_OK;
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    if (x < -2147483647 || x > 2147483647) return cc_fail(CLIPCL_ERR_FORMAT, "%s: %s.%s out of range", src, sect, key);
    *out = (int)x;
    return CLIPCL_OK;
  }
  if (json_is_array(v) && json_array_size(v) == 2 && json_is_integer(json_array_get(v, 0)) &&
      json_integer_value(json_array_get(v, 0)) == json_integer_value(json_array_get(v, 1))) {
    *out = (int)json_integer_value(json_array_get(v, 0)); /* square [h, w] */
    return CLIPCL_OK;
  }
  return cc_fail(CLIPCL_ERR_FORMAT, "%s: %s.%s must be an integer", src, sect, key);
}

static clipcl_status get_float(json_t *o, const char *key, float *out, const char *src, const char *sect) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) return CLIPCL_OK;
  if (!json_is_number(v)) return cc_fail(CLIPCL_ERR_FORMAT, "%s: %s.%s must be a number", src, sect, key);
  *out = (float)json_number_value(v);
  return CLIPCL_OK;
}

/* Keys that only matter to training tricks or other tower kinds: accepted when
 * they hold their neutral value, refused otherwise. */
static clipcl_status check_neutral(json_t *o, const char *sect, const char *src, const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    int known = 0;
    for (const char *const *a = allowed; *a; a++)
      if (!strcmp(*a, key)) known = 1;
    if (known) continue;
    int neutral = json_is_null(v) || json_is_false(v) || (json_is_number(v) && json_number_value(v) == 0.0);
    if (!strcmp(key, "pad_id") || !strcmp(key, "proj") || !strcmp(key, "pooler_type") ||
        !strcmp(key, "hf_tokenizer_name") || !strcmp(key, "hf_model_pretrained") || !strcmp(key, "n_queries") ||
        !strcmp(key, "attn_pooler_heads") || !strcmp(key, "timm_pool") || !strcmp(key, "timm_proj") ||
        !strcmp(key, "timm_model_pretrained") || !strcmp(key, "timm_proj_bias") || !strcmp(key, "timm_drop") ||
        !strcmp(key, "timm_drop_path") || !strcmp(key, "output_tokens"))
      neutral = 1; /* only used by towers we refuse elsewhere */
    if (!neutral)
      return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: %s.%s is not supported (clipcl builds plain ViT/transformer towers)",
                     src, sect, key);
  }
  return CLIPCL_OK;
}

clipcl_status clipcl_config_parse(const char *text, const char *src, clipcl_config *out) {
  json_error_t jerr;
  json_t *root = json_loads(text, 0, &jerr);
  if (!root) return cc_fail(CLIPCL_ERR_FORMAT, "%s: invalid JSON at line %d: %s", src, jerr.line, jerr.text);
  clipcl_status s = CLIPCL_OK;
  clipcl_config c;
  memset(&c, 0, sizeof c);
  c.vision = (clipcl_vision_cfg){224, 12, 768, 16, 64, 4.0f};
  c.text = (clipcl_text_cfg){77, 49408, 512, 8, 12, 4.0f};
  c.embed_dim = 512;
  json_t *vis, *txt, *qg;
  static const char *const top_ok[] = {"embed_dim",        "quick_gelu",      "vision_cfg", "text_cfg", "custom_text",
                                       "init_logit_scale", "init_logit_bias", NULL};
  static const char *const vis_ok[] = {"image_size", "layers", "width", "patch_size", "head_width", "mlp_ratio", NULL};
  static const char *const txt_ok[] = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", NULL};
  if (!json_is_object(root)) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: the config must be a JSON object", src);
    goto done;
  }
  if ((s = check_neutral(root, "config", src, top_ok))) goto done;
  vis = json_object_get(root, "vision_cfg");
  txt = json_object_get(root, "text_cfg");
  if (!json_is_object(vis) || !json_is_object(txt)) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: vision_cfg and text_cfg objects are required", src);
    goto done;
  }
  if ((s = check_neutral(vis, "vision_cfg", src, vis_ok)) || (s = check_neutral(txt, "text_cfg", src, txt_ok)))
    goto done;
  if ((s = get_int(root, "embed_dim", &c.embed_dim, src, "config"))) goto done;
  qg = json_object_get(root, "quick_gelu");
  if (qg && !json_is_boolean(qg) && !json_is_null(qg)) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: quick_gelu must be true or false", src);
    goto done;
  }
  c.quick_gelu = json_is_true(qg);
  {
    json_t *ls = json_object_get(root, "init_logit_scale"), *lb = json_object_get(root, "init_logit_bias");
    if ((ls && !json_is_number(ls)) || (lb && !json_is_number(lb) && !json_is_null(lb))) {
      s = cc_fail(CLIPCL_ERR_FORMAT, "%s: init_logit_scale and init_logit_bias must be numbers", src);
      goto done;
    }
    if (ls) c.init_logit_scale = (float)json_number_value(ls);
    if (lb && json_is_number(lb)) {
      c.logit_bias = 1;
      c.init_logit_bias = (float)json_number_value(lb);
    }
  }
  if ((s = get_int(vis, "image_size", &c.vision.image_size, src, "vision_cfg")) ||
      (s = get_int(vis, "layers", &c.vision.layers, src, "vision_cfg")) ||
      (s = get_int(vis, "width", &c.vision.width, src, "vision_cfg")) ||
      (s = get_int(vis, "patch_size", &c.vision.patch_size, src, "vision_cfg")) ||
      (s = get_int(vis, "head_width", &c.vision.head_width, src, "vision_cfg")) ||
      (s = get_float(vis, "mlp_ratio", &c.vision.mlp_ratio, src, "vision_cfg")) ||
      (s = get_int(txt, "context_length", &c.text.context_length, src, "text_cfg")) ||
      (s = get_int(txt, "vocab_size", &c.text.vocab_size, src, "text_cfg")) ||
      (s = get_int(txt, "width", &c.text.width, src, "text_cfg")) ||
      (s = get_int(txt, "heads", &c.text.heads, src, "text_cfg")) ||
      (s = get_int(txt, "layers", &c.text.layers, src, "text_cfg")) ||
      (s = get_float(txt, "mlp_ratio", &c.text.mlp_ratio, src, "text_cfg")))
    goto done;
  if ((s = clipcl_config_validate(&c, src))) goto done;
  {
    const char *base = strrchr(src, '/');
    base = base ? base + 1 : src;
    snprintf(c.name, sizeof c.name, "%s", base);
    char *dot = strrchr(c.name, '.');
    if (dot && !strcmp(dot, ".json")) *dot = 0;
  }
  *out = c;
done:
  json_decref(root);
  return s;
}

clipcl_status clipcl_config_get(const char *name, clipcl_config *out) {
  if (!name || !*name) return cc_fail(CLIPCL_ERR_ARG, "no model config given");
  for (size_t i = 0; i < NBUILTIN; i++)
    if (!strcmp(builtins[i].name, name)) {
      *out = builtins[i].c;
      return CLIPCL_OK;
    }
  FILE *f = fopen(name, "rb");
  if (!f) {
    char list[1024] = "";
    for (size_t i = 0; i < NBUILTIN; i++) {
      strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
      strncat(list, builtins[i].name, sizeof list - strlen(list) - 1);
    }
    return cc_fail(CLIPCL_ERR_ARG, "%s: not a built-in model config (%s) nor a readable JSON file", name, list);
  }
  static _Thread_local char buf[CC_CONFIG_MAX_FILE + 2];
  size_t n = fread(buf, 1, CC_CONFIG_MAX_FILE + 1, f);
  fclose(f);
  if (n > CC_CONFIG_MAX_FILE) return cc_fail(CLIPCL_ERR_FORMAT, "%s: config file larger than 64 KiB", name);
  buf[n] = 0;
  return clipcl_config_parse(buf, name, out);
}

char *clipcl_config_to_json(const clipcl_config *c) {
  json_t *v = json_pack("{s:i,s:i,s:i,s:i,s:i,s:f}", "image_size", c->vision.image_size, "layers", c->vision.layers,
                        "width", c->vision.width, "patch_size", c->vision.patch_size, "head_width",
                        c->vision.head_width, "mlp_ratio", (double)c->vision.mlp_ratio);
  json_t *t = json_pack("{s:i,s:i,s:i,s:i,s:i}", "context_length", c->text.context_length, "vocab_size",
                        c->text.vocab_size, "width", c->text.width, "heads", c->text.heads, "layers", c->text.layers);
  if (t && c->text.mlp_ratio != 4.0f) json_object_set_new(t, "mlp_ratio", json_real(c->text.mlp_ratio));
  json_t *root = json_pack("{s:i,s:b,s:o,s:o}", "embed_dim", c->embed_dim, "quick_gelu", c->quick_gelu,
                           "vision_cfg", v, "text_cfg", t);
  if (!root) return NULL;
  if (c->init_logit_scale != 0) json_object_set_new(root, "init_logit_scale", json_real(c->init_logit_scale));
  if (c->logit_bias) json_object_set_new(root, "init_logit_bias", json_real(c->init_logit_bias));
  char *s = json_dumps(root, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
  json_decref(root);
  return s;
}

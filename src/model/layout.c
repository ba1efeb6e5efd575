/* layout.c: parameter table and initialisation of a CLIP model (see layout.h).
 * Initialisation follows open_clip 2.20 (which keeps OpenAI's
 * initialize_parameters for the text tower and PyTorch's module defaults for
 * the vision blocks); draws come from our own seeded generator, so values
 * differ from PyTorch's while the distributions match. */
#include "model/layout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

typedef struct {
  cc_layout *L;
  size_t cap, off;
} builder;

static clipcl_status add(builder *b, const char *name, int ndim, const int64_t *shape, int tower, int init,
                         float scale, size_t *off_out) {
  cc_layout *L = b->L;
  if ((size_t)L->n == b->cap) {
    size_t nc = b->cap ? 2 * b->cap : 64;
    cc_tensor_info *t = realloc(L->t, nc * sizeof *t);
    if (!t) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory building the parameter layout");
    L->t = t;
    b->cap = nc;
  }
  cc_tensor_info *t = &L->t[L->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->numel = 1;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    t->numel *= (size_t)shape[i];
  }
  t->tower = (unsigned char)tower;
  t->init = (unsigned char)init;
  t->init_scale = scale;
  /* open_clip's exclusion rule: ndim < 2, "ln"/"bn" in the name, biases, logit_scale */
  t->decay = !(ndim < 2 || strstr(name, "ln_") || strstr(name, ".ln") || strstr(name, "bias") ||
               strstr(name, "logit_scale"));
  t->off = b->off;
  b->off += (t->numel + 15) / 16 * 16;
  if (off_out) *off_out = t->off;
  return CLIPCL_OK;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static clipcl_status add_blocks(builder *b, const char *prefix, cc_tower_dims *d, int tower, int text) {
  d->blk = calloc((size_t)d->layers, sizeof *d->blk);
  if (!d->blk) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory building the parameter layout");
  int64_t W = d->C, M = d->M;
  /* open_clip 2.20: text blocks get OpenAI's normal init; vision blocks keep
   * PyTorch defaults (xavier in_proj, kaiming-uniform linears). */
  float attn_std = powf((float)W, -0.5f), proj_std = attn_std * powf(2.0f * d->layers, -0.5f);
  float fc_std = powf(2.0f * W, -0.5f);
  float xavier = sqrtf(6.0f / (float)(W + 3 * W)), lin_w = 1.0f / sqrtf((float)W), lin_m = 1.0f / sqrtf((float)M);
  for (int l = 0; l < d->layers; l++) {
    cc_block_off *o = &d->blk[l];
    char n[96];
#define P(field, suffix, ndim, shape, init, scale)              \
  snprintf(n, sizeof n, "%s.%d.%s", prefix, l, suffix);          \
  CC_TRY(add(b, n, ndim, shape, tower, init, scale, &o->field));
    P(ln1_w, "ln_1.weight", 1, SHAPE(W), CC_INIT_ONE, 0);
    P(ln1_b, "ln_1.bias", 1, SHAPE(W), CC_INIT_ZERO, 0);
    P(qkv_w, "attn.in_proj_weight", 2, SHAPE(3 * W, W), text ? CC_INIT_NORMAL : CC_INIT_UNIFORM,
      text ? attn_std : xavier);
    P(qkv_b, "attn.in_proj_bias", 1, SHAPE(3 * W), CC_INIT_ZERO, 0);
    P(out_w, "attn.out_proj.weight", 2, SHAPE(W, W), text ? CC_INIT_NORMAL : CC_INIT_UNIFORM,
      text ? proj_std : lin_w);
    P(out_b, "attn.out_proj.bias", 1, SHAPE(W), CC_INIT_ZERO, 0);
    P(ln2_w, "ln_2.weight", 1, SHAPE(W), CC_INIT_ONE, 0);
    P(ln2_b, "ln_2.bias", 1, SHAPE(W), CC_INIT_ZERO, 0);
    P(fc_w, "mlp.c_fc.weight", 2, SHAPE(M, W), text ? CC_INIT_NORMAL : CC_INIT_UNIFORM, text ? fc_std : lin_w);
    P(fc_b, "mlp.c_fc.bias", 1, SHAPE(M), CC_INIT_UNIFORM, lin_w);
    P(proj_w, "mlp.c_proj.weight", 2, SHAPE(W, M), text ? CC_INIT_NORMAL : CC_INIT_UNIFORM,
      text ? proj_std : lin_m);
    P(proj_b, "mlp.c_proj.bias", 1, SHAPE(W), CC_INIT_UNIFORM, lin_m);
#undef P
  }
  return CLIPCL_OK;
}

clipcl_status cc_layout_build(const clipcl_config *cfg, cc_layout *L) {
  memset(L, 0, sizeof *L);
  CC_TRY(clipcl_config_validate(cfg, cfg->name));
  L->cfg = *cfg;
  builder b = {L, 0, 0};
  const clipcl_vision_cfg *v = &cfg->vision;
  const clipcl_text_cfg *tc = &cfg->text;
  L->grid = v->image_size / v->patch_size;
  L->patch_dim = 3 * v->patch_size * v->patch_size;
  L->vis = (cc_tower_dims){v->layers, L->grid * L->grid + 1, v->width, v->width / v->head_width,
                           (int)(v->width * v->mlp_ratio), NULL};
  L->txt = (cc_tower_dims){tc->layers, tc->context_length, tc->width, tc->heads, (int)(tc->width * tc->mlp_ratio),
                           NULL};
  L->vocab = tc->vocab_size;
  int64_t E = cfg->embed_dim, VW = v->width, TW = tc->width, p = v->patch_size;
  float vscale = powf((float)VW, -0.5f);
  clipcl_status s;
  /* open_clip's state_dict order */
  if ((s = add(&b, "positional_embedding", 2, SHAPE(L->txt.T, TW), CC_TOWER_TEXT, CC_INIT_NORMAL, 0.01f,
               &L->t_pos)) ||
      (s = add(&b, "text_projection", 2, SHAPE(TW, E), CC_TOWER_TEXT, CC_INIT_NORMAL, powf((float)TW, -0.5f),
               &L->t_proj)) ||
      (s = add(&b, "logit_scale", 0, NULL, CC_TOWER_SHARED, CC_INIT_CONST,
               cfg->init_logit_scale != 0 ? cfg->init_logit_scale : logf(1.0f / 0.07f), &L->logit_scale)) ||
      (cfg->logit_bias &&
       (s = add(&b, "logit_bias", 0, NULL, CC_TOWER_SHARED, CC_INIT_CONST, cfg->init_logit_bias, &L->logit_bias))) ||
      (s = add(&b, "visual.class_embedding", 1, SHAPE(VW), CC_TOWER_VISION, CC_INIT_NORMAL, vscale, &L->v_cls)) ||
      (s = add(&b, "visual.positional_embedding", 2, SHAPE(L->vis.T, VW), CC_TOWER_VISION, CC_INIT_NORMAL, vscale,
               &L->v_pos)) ||
      (s = add(&b, "visual.proj", 2, SHAPE(VW, E), CC_TOWER_VISION, CC_INIT_NORMAL, vscale, &L->v_proj)) ||
      (s = add(&b, "visual.conv1.weight", 4, SHAPE(VW, 3, p, p), CC_TOWER_VISION, CC_INIT_UNIFORM,
               1.0f / sqrtf((float)L->patch_dim), &L->v_conv)) ||
      (s = add(&b, "visual.ln_pre.weight", 1, SHAPE(VW), CC_TOWER_VISION, CC_INIT_ONE, 0, &L->v_lnpre_w)) ||
      (s = add(&b, "visual.ln_pre.bias", 1, SHAPE(VW), CC_TOWER_VISION, CC_INIT_ZERO, 0, &L->v_lnpre_b)) ||
      (s = add_blocks(&b, "visual.transformer.resblocks", &L->vis, CC_TOWER_VISION, 0)) ||
      (s = add(&b, "visual.ln_post.weight", 1, SHAPE(VW), CC_TOWER_VISION, CC_INIT_ONE, 0, &L->v_lnpost_w)) ||
      (s = add(&b, "visual.ln_post.bias", 1, SHAPE(VW), CC_TOWER_VISION, CC_INIT_ZERO, 0, &L->v_lnpost_b)) ||
      (s = add(&b, "token_embedding.weight", 2, SHAPE(L->vocab, TW), CC_TOWER_TEXT, CC_INIT_NORMAL, 0.02f,
               &L->t_tok)) ||
      (s = add_blocks(&b, "transformer.resblocks", &L->txt, CC_TOWER_TEXT, 1)) ||
      (s = add(&b, "ln_final.weight", 1, SHAPE(TW), CC_TOWER_TEXT, CC_INIT_ONE, 0, &L->t_lnf_w)) ||
      (s = add(&b, "ln_final.bias", 1, SHAPE(TW), CC_TOWER_TEXT, CC_INIT_ZERO, 0, &L->t_lnf_b))) {
    cc_layout_free(L);
    return s;
  }
  L->total = b.off;
  L->has_logit_bias = cfg->logit_bias != 0;
  return CLIPCL_OK;
}

void cc_layout_free(cc_layout *L) {
  free(L->t);
  free(L->vis.blk);
  free(L->txt.blk);
  memset(L, 0, sizeof *L);
}

const cc_tensor_info *cc_layout_find(const cc_layout *L, const char *name) {
  for (int i = 0; i < L->n; i++)
    if (!strcmp(L->t[i].name, name)) return &L->t[i];
  return NULL;
}

unsigned char *cc_layout_decay_mask(const cc_layout *L, int lock_vision) {
  unsigned char *m = calloc(L->total ? L->total : 1, 1);
  if (!m) return NULL;
  for (int i = 0; i < L->n; i++) {
    const cc_tensor_info *t = &L->t[i];
    unsigned char v = (lock_vision && t->tower == CC_TOWER_VISION) ? 2 : t->decay;
    memset(m + t->off, v, t->numel);
  }
  return m;
}

/* splitmix64 seeds one xoshiro256** stream per tensor, so a tensor's values
 * depend only on (seed, its index). */
typedef struct {
  uint64_t s[4];
} rng;
static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t next(rng *r) {
  uint64_t res = rotl(r->s[1] * 5, 7) * 9, t = r->s[1] << 17;
  r->s[2] ^= r->s[0];
  r->s[3] ^= r->s[1];
  r->s[1] ^= r->s[2];
  r->s[0] ^= r->s[3];
  r->s[2] ^= t;
  r->s[3] = rotl(r->s[3], 45);
  return res;
}
static double uniform01(rng *r) { return ((next(r) >> 11) + 0.5) / 9007199254740992.0; }

void cc_layout_init_params(const cc_layout *L, uint64_t seed, float *p) {
  memset(p, 0, L->total * sizeof *p);
  for (int i = 0; i < L->n; i++) {
    const cc_tensor_info *t = &L->t[i];
    uint64_t x = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1));
    rng r = {{splitmix(&x), splitmix(&x), splitmix(&x), splitmix(&x)}};
    float *d = p + t->off;
    for (size_t j = 0; j < t->numel; j++) {
      switch (t->init) {
        case CC_INIT_ONE: d[j] = 1.0f; break;
        case CC_INIT_CONST: d[j] = t->init_scale; break;
        case CC_INIT_UNIFORM: d[j] = (float)((2.0 * uniform01(&r) - 1.0) * t->init_scale); break;
        case CC_INIT_NORMAL: {
          double u = uniform01(&r), v = uniform01(&r);
          d[j] = (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v) * t->init_scale);
          break;
        }
        default: d[j] = 0.0f;
      }
    }
  }
}

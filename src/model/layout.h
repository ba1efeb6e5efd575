/* layout.h: where every parameter of a CLIP model lives in the flat parameter
 * buffer, derived from the config, with open_clip's tensor names and shapes,
 * weight-decay flags (open_clip: no decay for ndim < 2, gains, biases,
 * logit_scale) and which tower each belongs to. Gradients and AdamW moments
 * use the same offsets in their own buffers. Not here: device memory. */
#ifndef CC_LAYOUT_H
#define CC_LAYOUT_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

enum { CC_TOWER_VISION = 0, CC_TOWER_TEXT = 1, CC_TOWER_SHARED = 2 };
/* how a tensor is initialised (init.c) */
enum { CC_INIT_ZERO, CC_INIT_ONE, CC_INIT_NORMAL, CC_INIT_UNIFORM, CC_INIT_CONST };

typedef struct {
  char name[96];
  int ndim;
  int64_t shape[4];
  size_t off, numel; /* elements */
  unsigned char decay, tower, init;
  float init_scale; /* std (normal), bound (uniform) or value (const) */
} cc_tensor_info;

/* Offsets of one residual block's tensors. */
typedef struct {
  size_t ln1_w, ln1_b, qkv_w, qkv_b, out_w, out_b, ln2_w, ln2_b, fc_w, fc_b, proj_w, proj_b;
} cc_block_off;

typedef struct {
  int layers, T, C, H, M; /* depth, positions, width, heads, MLP width */
  cc_block_off *blk;
} cc_tower_dims;

typedef struct {
  clipcl_config cfg;
  int n;
  cc_tensor_info *t;
  size_t total; /* elements, including alignment gaps (always zero) */
  /* vision: G*G patches of 3*p*p values, T = G*G + 1 positions */
  cc_tower_dims vis;
  int grid, patch_dim;
  size_t v_cls, v_pos, v_conv, v_lnpre_w, v_lnpre_b, v_lnpost_w, v_lnpost_b, v_proj;
  /* text: T = context length */
  cc_tower_dims txt;
  int vocab;
  size_t t_tok, t_pos, t_lnf_w, t_lnf_b, t_proj;
  size_t logit_scale;
  int has_logit_bias;
  size_t logit_bias; /* when has_logit_bias (SigLIP) */
} cc_layout;

clipcl_status cc_layout_build(const clipcl_config *cfg, cc_layout *L);
void cc_layout_free(cc_layout *L);
const cc_tensor_info *cc_layout_find(const cc_layout *L, const char *name);
/* One byte per element for cc_adamw: 0 no decay, 1 decay, 2 frozen (tower
 * frozen by lock_vision). Gaps are 0. Caller frees. */
unsigned char *cc_layout_decay_mask(const cc_layout *L, int lock_vision);
/* Seeded initialisation as open_clip 2.20 / OpenAI's initialize_parameters
 * (host array of L->total floats). */
void cc_layout_init_params(const cc_layout *L, uint64_t seed, float *params);
#endif

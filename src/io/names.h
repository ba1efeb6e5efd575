/* names.h: weight names of a CLIP ViT model in the two conventions found in
 * checkpoints: OpenAI / open_clip ("visual.transformer.resblocks.3.attn.
 * in_proj_weight") and Hugging Face transformers ("vision_model.encoder.
 * layers.3.self_attn.q_proj.weight"), with the transform that turns a tensor
 * of one into the other.
 *
 * Pure string work: no tensors are touched. The model loader applies the
 * transforms:
 *   IDENTITY   same data and shape.
 *   TRANSPOSE  2-D transpose (visual.proj [W,E] <-> visual_projection.weight
 *              [E,W]; text_projection likewise).
 *   QKV_PART   the HF q/k/v projection `part` (0 q, 1 k, 2 v) is rows
 *              [part*W, (part+1)*W) of the OpenAI in_proj_weight [3W,W], or
 *              elements of in_proj_bias [3W].
 *   IGNORE     HF buffers with no OpenAI counterpart (*.position_ids).
 * Not here: ResNet towers, timm or custom text towers, "module." prefixes of
 * DDP checkpoints (strip them before mapping).
 */
#ifndef CC_IO_NAMES_H
#define CC_IO_NAMES_H
#include <stddef.h>

#include "clipcl.h"

#define CC_NAME_MAX 128 /* longest name handled, with its terminator */

typedef enum { CC_XF_IDENTITY = 0, CC_XF_TRANSPOSE, CC_XF_QKV_PART, CC_XF_IGNORE } cc_xf_op;

typedef struct {
  char name[CC_NAME_MAX];
  cc_xf_op op;
  int part; /* 0 q, 1 k, 2 v for CC_XF_QKV_PART; 0 otherwise */
} cc_name_map;

/* One HF name to its OpenAI name and transform. An unknown name is
 * CLIPCL_ERR_FORMAT with a message naming it. */
clipcl_status cc_name_hf_to_openai(const char *hf, cc_name_map *out);

/* One OpenAI name to the HF names holding it: one, or three (q, k, v in that
 * order) for in_proj_weight / in_proj_bias. out must hold 3 entries. */
clipcl_status cc_name_openai_to_hf(const char *openai, cc_name_map out[3], int *count);

typedef enum { CC_NAMING_UNKNOWN = 0, CC_NAMING_OPENAI, CC_NAMING_HF, CC_NAMING_MIXED } cc_naming;

/* Which convention one name belongs to: UNKNOWN when neither maps it or when
 * both spell it the same (logit_scale). */
cc_naming cc_name_kind(const char *name);
/* Which convention a set of names uses: OPENAI or HF when every name that
 * belongs to a convention belongs to that one, MIXED when both occur, UNKNOWN
 * when none does. Names of neither kind do not vote. */
cc_naming cc_names_detect(const char *const *names, size_t n);
const char *cc_naming_name(cc_naming k); /* "openai", "hf", "mixed", "unknown" */
#endif

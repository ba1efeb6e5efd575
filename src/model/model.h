/* model.h: the CLIP model on the device: parameters (one flat buffer laid out
 * by layout.h), gradients, per-tower activation workspaces, and the forward
 * and backward passes of both towers and of the contrastive head.
 *
 * A batch stays on the device from the input upload to the loss: nothing here
 * reads back to the host except the explicit download helpers.
 * Letters: B batch, T positions, C width, H heads, M MLP width, E embed dim,
 * P patches, S image side. */
#ifndef CC_MODEL_H
#define CC_MODEL_H

#include "cl/runtime.h"
#include "ops/ops.h"
#include "clipcl.h"
#include "model/layout.h"

/* Activations of one residual block (all (B*T, ...) row-major). */
typedef struct {
  cc_view ln1, mean1, rstd1; /* (B,T,C), (B*T), (B*T) */
  cc_view qkv;               /* (B,T,3C) */
  cc_view qkvr, att;         /* (3,B,H,T,D), (B,H,T,T) saved by attention */
  cc_view atty;              /* (B,T,C) attention output before out_proj */
  cc_view res_mid;           /* (B,T,C) x + attn */
  cc_view ln2, mean2, rstd2; /* (B,T,C), (B*T), (B*T) */
  cc_view fc, fca;           /* (B,T,M) before / after the activation */
  cc_view res_out;           /* (B,T,C) res_mid + mlp: the next block's input */
} cc_block_acts;

/* What a tower workspace keeps (cc_model_workspace's save). */
enum {
  CC_WS_INFER = 0, /* forward only: every block shares one set of buffers, the stream updated in place */
  CC_WS_FULL = 1,  /* every block's activations, for backward */
  CC_WS_CKPT = 2   /* activation checkpointing: each block's output (the next one's input) only, one shared
                      set for the rest; backward recomputes each block from its input first */
};

/* One tower's workspace for batches of up to `cap`. */
typedef struct {
  int cap, save, vision;
  cc_arena ar;
  cc_view x0;                          /* (B,T,C) input of the first block */
  cc_block_acts *blk;                  /* [layers] */
  cc_view pooled, lnf, lnf_mean, lnf_rstd; /* (B,C), (B,C), (B), (B) */
  cc_view feat;                        /* (B,E) projected, not normalised */
  /* vision only */
  cc_view pixels, cols, patches, emb, pre_mean, pre_rstd; /* (B,3,S,S) (B*P,3pp) (B,P,C) (B,T,C) (B*T) */
  /* text only */
  cc_view ids, eot;                    /* (B,T) int32, (B) int32 */
  /* backward scratch (save == 1) */
  cc_view dres, dln, dqkv, datty, dfc, dfca, dpooled, dlnf, dfeat;
} cc_tower_ws;

/* The contrastive head for N image rows against N text rows. */
typedef struct {
  int cap;
  cc_arena ar;
  cc_view img_n, txt_n, img_norm, txt_norm; /* (N,E), (N,E), (N), (N) */
  cc_view li, lt, pi, pt;                   /* logits and probabilities, (N,N) each */
  cc_view loss;                             /* (1) */
  cc_view dli, dlt, dimg_n, dtxt_n;         /* (N,N), (N,N), (N,E), (N,E) */
} cc_head_ws;

/* A linear weight (at params offset off) packed for the CPU GEMM kernels. */
typedef struct {
  size_t off;
  cc_packed p;
} cc_pk_entry;

struct clipcl_model {
  cc_rt *rt;
  cc_layout L;
  cc_arena par;
  cc_view params; /* (L.total) */
  cc_arena gar;
  cc_view grads;  /* (L.total) when gradients were enabled */
  int has_grads;
  cc_tower_ws vis, txt;
  cc_head_ws head;
  char tokenizer[96];
  int config_source; /* CC_CONFIG_* (weights.h) */
  /* loaded from a text-only file: no image tower (and maybe no projection) */
  int no_vision, no_text_proj;
  char path[1024];   /* the weights file, for messages */
  /* Inference on a CPU device: the blocks' linear weights packed once into
   * the GEMM kernels' panel layout (a second copy of them), so no forward
   * repacks them (at batch 1 that was most of the work). pk_state: 0 not
   * built or stale (parameters changed), 1 valid, -1 not used (GPU backend,
   * CLIPCL_PACK_WEIGHTS=0). Models with gradients never use it. */
  cc_arena pk;
  cc_pk_entry *pk_map;
  int npk, pk_state;
  /* called during backward once the kernels writing a residual block's
   * parameter gradients are enqueued (data-parallel training starts
   * summing them over the ranks while the rest runs); may be NULL */
  void (*on_block_grads)(void *user, int vision, int layer);
  void *on_block_user;
};

typedef struct clipcl_model cc_model;

static inline cc_view cc_P(const cc_model *m, size_t off) { return cc_at(m->params, off); }
static inline cc_view cc_G(const cc_model *m, size_t off) { return cc_at(m->grads, off); }

clipcl_status cc_model_create(cc_rt *rt, const clipcl_config *cfg, cc_model **out);
/* Allocates the gradient buffer (zeroed). */
clipcl_status cc_model_enable_grads(cc_model *m);
clipcl_status cc_model_zero_grads(cc_model *m);
/* (Re)allocates a tower workspace for batches up to cap; save is CC_WS_*
 * (1 = keep every block's activations for backward). A workspace that
 * already serves a larger batch, or keeps more (FULL > CKPT > INFER), stays. */
clipcl_status cc_model_workspace(cc_model *m, int vision, int cap, int save);
/* Bytes of device memory the two towers' workspaces hold (activations and
 * backward scratch). */
size_t cc_model_activation_bytes(const cc_model *m);
clipcl_status cc_model_head_workspace(cc_model *m, int cap);
/* The same layouts built into w / h: on the device rt, or (rt NULL) only
 * counted against a per-buffer limit, for planning (memory.h). */
clipcl_status cc_tower_ws_build(cc_tower_ws *w, const cc_layout *L, cc_rt *rt, uint64_t max_alloc, int vision,
                                int cap, int save);
void cc_tower_ws_free(cc_tower_ws *w);
clipcl_status cc_head_ws_build(cc_head_ws *h, const cc_layout *L, cc_rt *rt, uint64_t max_alloc, int cap);
/* Uploads host parameters (L.total floats) / downloads them. */
clipcl_status cc_model_set_params(cc_model *m, const float *host);
/* Marks the packed weights stale; anything that writes parameters calls it. */
void cc_model_params_changed(cc_model *m);
clipcl_status cc_model_get_params(cc_model *m, float *host);

/* Forward of a tower on the batch already in ws->pixels / ws->ids; the result
 * is ws->feat (B,E), unnormalised. */
clipcl_status cc_vision_forward(cc_model *m, int B);
clipcl_status cc_text_forward(cc_model *m, int B);
/* The text tower's per-token states (B,T,C): the output of all blocks but the
 * last `skip`, through ln_final (HF CLIPTextModel's last_hidden_state for
 * skip 0). *out views workspace memory valid until the next text forward. */
clipcl_status cc_text_hidden_forward(cc_model *m, int B, int skip, cc_view *out);
/* Backward from ws->dfeat (B,E) into the gradient buffer (adds). */
clipcl_status cc_vision_backward(cc_model *m, int B);
clipcl_status cc_text_backward(cc_model *m, int B);
/* Contrastive loss of image features (N,E) against text features (N,E):
 * 0.5*(CE(logits_per_image) + CE(logits_per_text)) into head.loss; with
 * grads, also d img_feat / d txt_feat (overwritten) and d logit_scale (added). */
clipcl_status cc_head_forward_backward(cc_model *m, cc_view img_feat, cc_view txt_feat, int N, int grads,
                                       cc_view dimg_feat, cc_view dtxt_feat);
#endif

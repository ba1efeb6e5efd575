/* ops.h: every tensor op a CLIP model needs, as forward/backward pairs that
 * enqueue OpenCL kernels on the runtime's in-order queue.
 *
 * Conventions (ARCHITECTURE.md)
 *  - Arguments: outputs and saved values first, then inputs and weights, then
 *    dimensions. All tensors are (buffer, element offset) views, row-major.
 *  - Backward passes ADD into gradients (`+=`); the caller zeroes them.
 *    An optional gradient is skipped when its view has buf == NULL.
 *  - Nothing here synchronises with the host unless it says so.
 *  - Reductions over the batch (bias, LayerNorm gains, embeddings, norms,
 *    losses) use a fixed partition and order: same inputs, same bits.
 *
 * Letters: B batch, T tokens per sequence, C channels (width), H heads,
 * D head width (C / H), V vocabulary, P patches per image, p patch size,
 * N rows (B*T or B), E embedding width, M,N,K GEMM sizes.
 */
#ifndef CC_OPS_H
#define CC_OPS_H

#include "cl/runtime.h"

static inline cc_view cc_none(void) { return (cc_view){NULL, 0}; }

/* ---- GEMM (gemm.c) ------------------------------------------------------
 * C = alpha * op(A) @ op(B) + beta * C (+ bias[j] on every row), batched with
 * element strides between matrices. op(A) is (M,K): A is stored (M,K) with row
 * stride lda, or (K,M) when transA. op(B) is (K,N): B stored (K,N), or (N,K)
 * when transB. beta == 0 never reads C. The backend (the project's CPU
 * kernels or CLBlast) is chosen per device; see gemm.c. */
/* op(B) packed ahead of time by cc_gemm_pack_b into column panels of nr
 * columns (the CPU kernels' layout); nr says which tile width it was made
 * for, so a change of GEMM parameters falls back to the unpacked B. */
typedef struct {
  cc_view v;
  int nr;
} cc_packed;

typedef struct {
  int transA, transB;
  int M, N, K;
  float alpha, beta;
  cc_view A, B, C;
  int lda, ldb, ldc;
  int batch;              /* 0 or 1: one matrix */
  cl_ulong sA, sB, sC;    /* batch strides in elements */
  cc_view bias;           /* optional (N) */
  /* Optional epilogue on the finished C = alpha*op(A)op(B) + beta*C + bias
   * (one matrix only, batch <= 1): C += resid (M,N with leading dimension
   * ldr; must not alias C), then the activation act. With act_out set, C
   * keeps the value before the activation and act_out (leading dimension
   * ldc) gets act(C); without it C gets act(...) itself. */
  cc_view resid;
  int ldr;
  int act;                /* CC_ACT_NONE, CC_ACT_GELU, CC_ACT_QUICKGELU */
  cc_view act_out;
  /* Optional: op(B) already packed (one matrix, A not transposed); used by
   * the CPU kernels when it matches their parameters, else B is read. */
  cc_packed Bp;
} cc_gemm_desc;
/* Packs op(B) (transB: B stored (N,K), else (K,N), leading dimension ldb)
 * for the CPU kernels into out; with out.buf NULL only sets *elems (the size
 * out needs) and out->nr. elems 0: this device's GEMM takes no packed B. */
clipcl_status cc_gemm_pack_b(cc_rt *rt, cc_packed *out, cc_view B, int ldb, int transB, int N, int K, size_t *elems);
enum { CC_ACT_NONE = 0, CC_ACT_GELU = 1, CC_ACT_QUICKGELU = 2 };
clipcl_status cc_gemm(cc_rt *rt, const cc_gemm_desc *g);

/* Which GEMM path cc_gemm uses on this device: "cpu-tiled" or "clblast". */
const char *cc_gemm_backend(cc_rt *rt);

/* out[j] (+)= sum_i x[i*ld + j]; deterministic. */
clipcl_status cc_colsum(cc_rt *rt, cc_view out, cc_view x, int rows, int cols, int ld, int accumulate);

/* Linear layer as PyTorch stores it: out (N,OC) = inp (N,IC) @ w(OC,IC)^T + b. */
clipcl_status cc_linear_fwd(cc_rt *rt, cc_view out, cc_view inp, cc_view w, cc_view bias, int N,
                            int IC, int OC);
/* The same with the GEMM epilogue: out = inp @ w^T + b + resid (resid may
 * be cc_none(): no residual), then act; act_out as in cc_gemm_desc. */
clipcl_status cc_linear_fwd_epi(cc_rt *rt, cc_view out, cc_view inp, cc_view w, cc_view bias, cc_view resid,
                                int act, cc_view act_out, cc_packed wp, int N, int IC, int OC);
/* dinp += dout @ w; dw += dout^T @ inp; dbias += colsum(dout). */
clipcl_status cc_linear_bwd(cc_rt *rt, cc_view dinp, cc_view dw, cc_view dbias, cc_view dout,
                            cc_view inp, cc_view w, int N, int IC, int OC);
/* The same, but dinp = dout @ w is overwritten (saves zeroing it first). */
clipcl_status cc_linear_bwd_set(cc_rt *rt, cc_view dinp, cc_view dw, cc_view dbias, cc_view dout,
                                cc_view inp, cc_view w, int N, int IC, int OC);

/* ---- elementwise (elementwise.c) ---------------------------------------- */
/* out = a + b (residual connection; out may alias a). */
clipcl_status cc_add_fwd(cc_rt *rt, cc_view out, cc_view a, cc_view b, size_t n);
/* y += alpha * x (residual backward: both inputs receive dout). */
clipcl_status cc_axpy(cc_rt *rt, cc_view y, cc_view x, float alpha, size_t n);
/* x *= alpha */
clipcl_status cc_scale(cc_rt *rt, cc_view x, float alpha, size_t n);
/* GELU: exact (erf) when quick == 0, else QuickGELU x*sigmoid(1.702x). */
clipcl_status cc_gelu_fwd(cc_rt *rt, cc_view out, cc_view inp, size_t n, int quick);
/* dinp += dout * gelu'(inp) */
clipcl_status cc_gelu_bwd(cc_rt *rt, cc_view dinp, cc_view inp, cc_view dout, size_t n, int quick);
/* dinp = dout * gelu'(inp) (overwritten) */
clipcl_status cc_gelu_bwd_set(cc_rt *rt, cc_view dinp, cc_view inp, cc_view dout, size_t n, int quick);

/* ---- LayerNorm (layernorm.c), eps 1e-5, over the last dimension ---------- */
/* out (N,C); mean, rstd (N) saved for backward. */
clipcl_status cc_layernorm_fwd(cc_rt *rt, cc_view out, cc_view mean, cc_view rstd, cc_view inp,
                               cc_view weight, cc_view bias, int N, int C);
clipcl_status cc_layernorm_bwd(cc_rt *rt, cc_view dinp, cc_view dweight, cc_view dbias,
                               cc_view dout, cc_view inp, cc_view weight, cc_view mean,
                               cc_view rstd, int N, int C);

/* ---- embeddings (embed.c) ----------------------------------------------- */
/* Patch embedding, a conv with stride = kernel = p and no bias.
 * img (B,3,S,S) with S = G*p; w (C,3,p,p); cols (B*G*G, 3*p*p) is saved
 * (im2col); out (B,G*G,C). */
clipcl_status cc_patch_embed_fwd(cc_rt *rt, cc_view out, cc_view cols, cc_view img, cc_view w,
                                 int B, int S, int p, int C);
/* dw += dout^T @ cols; dimg += col2im(dout @ w) when dimg.buf != NULL. */
clipcl_status cc_patch_embed_bwd(cc_rt *rt, cc_view dw, cc_view dimg, cc_view dout, cc_view cols,
                                 cc_view w, int B, int S, int p, int C);
/* Class-token prepend plus positional embedding:
 * out[b,0,:] = cls + pos[0]; out[b,1+i,:] = patches[b,i,:] + pos[1+i].
 * patches (B,P,C), cls (C), pos (P+1,C), out (B,P+1,C). */
clipcl_status cc_vit_embed_fwd(cc_rt *rt, cc_view out, cc_view patches, cc_view cls, cc_view pos,
                               int B, int P, int C);
clipcl_status cc_vit_embed_bwd(cc_rt *rt, cc_view dpatches, cc_view dcls, cc_view dpos,
                               cc_view dout, int B, int P, int C);
/* Token + positional embedding: out[b,t,:] = wte[ids[b,t]] + pos[t].
 * ids (B,T) int32 on the device, wte (V,C), pos (T,C). Ids outside [0,V)
 * read as zero rows (the caller validates ids; the kernel never reads out of
 * bounds). */
clipcl_status cc_tok_embed_fwd(cc_rt *rt, cc_view out, cc_view ids, cc_view wte, cc_view pos,
                               int B, int T, int C, int V);
/* dwte[ids[b,t]] += dout[b,t]; dpos[t] += sum_b dout[b,t]. Duplicate ids
 * accumulate in a fixed order (deterministic, no atomics). */
clipcl_status cc_tok_embed_bwd(cc_rt *rt, cc_view dwte, cc_view dpos, cc_view dout, cc_view ids,
                               int B, int T, int C, int V);

/* ---- pooling (pool.c) --------------------------------------------------- */
/* idx[b] = position of the largest id in ids[b,:] (first one on ties): the
 * EOT token in CLIP text. ids (B,T) int32, idx (B) int32. */
clipcl_status cc_argmax_rows(cc_rt *rt, cc_view idx, cc_view ids, int B, int T);
/* out[b,:] = x[b, idx[b], :]; idx == none means position 0 (class token). */
clipcl_status cc_gather_rows_fwd(cc_rt *rt, cc_view out, cc_view x, cc_view idx, int B, int T, int C);
clipcl_status cc_gather_rows_bwd(cc_rt *rt, cc_view dx, cc_view dout, cc_view idx, int B, int T, int C);

/* ---- attention (attention.c) -------------------------------------------- */
/* Multi-head scaled dot-product attention, scale 1/sqrt(D), softmax computed
 * stably (max subtracted), causal mask optional.
 * qkv (B,T,3C) holds q,k,v (the in_proj output, q|k|v along the last axis,
 * heads contiguous D-wide within each); out (B,T,C).
 * Saved: qkvr (3,B,H,T,D) the permuted q,k,v; att (B,H,T,T) probabilities. */
clipcl_status cc_attention_fwd(cc_rt *rt, cc_view out, cc_view qkvr, cc_view att, cc_view qkv,
                               int B, int T, int C, int H, int causal);
/* dqkv += d/dqkv. Uses runtime scratch slots 2..5. */
clipcl_status cc_attention_bwd(cc_rt *rt, cc_view dqkv, cc_view dout, cc_view qkvr, cc_view att,
                               int B, int T, int C, int H, int causal);

/* ---- CLIP head: normalisation, logits, loss (clip_head.c) ---------------- */
/* out (N,E) = inp / ||inp||; norm (N) saved. */
clipcl_status cc_l2norm_fwd(cc_rt *rt, cc_view out, cc_view norm, cc_view inp, int N, int E);
clipcl_status cc_l2norm_bwd(cc_rt *rt, cc_view dinp, cc_view dout, cc_view out, cc_view norm, int N,
                            int E);
/* logits (N,M) = exp(s) * a (N,E) @ b (M,E)^T, s = logit_scale[0] (device). */
clipcl_status cc_logits_fwd(cc_rt *rt, cc_view logits, cc_view a, cc_view b, cc_view logit_scale,
                            int N, int M, int E);
/* da += exp(s) dL @ b; db += exp(s) dL^T @ a; dscale[0] += sum(dL * logits). */
clipcl_status cc_logits_bwd(cc_rt *rt, cc_view da, cc_view db, cc_view dscale, cc_view dlogits,
                            cc_view a, cc_view b, cc_view logits, cc_view logit_scale, int N, int M,
                            int E);
/* Row cross-entropy with label(i) = i + label_offset:
 * loss[0] (+)= weight * mean_i (logsumexp(logits[i]) - logits[i,label(i)]);
 * probs (N,M) saved softmax rows. */
clipcl_status cc_ce_fwd(cc_rt *rt, cc_view loss, cc_view probs, cc_view logits, int N, int M,
                        int label_offset, float weight, int accumulate);
/* dlogits += weight/N * (probs - onehot(label)). */
clipcl_status cc_ce_bwd(cc_rt *rt, cc_view dlogits, cc_view probs, int N, int M, int label_offset,
                        float weight);
/* Transposes a (R,Cc) matrix into (Cc,R). */
clipcl_status cc_transpose(cc_rt *rt, cc_view out, cc_view inp, int R, int Cc);

/* ---- SigLIP loss (siglip.c) ---------------------------------------------- */
/* One block of SigLIP's sigmoid loss: z = logits + bias[0] (logits (N,M) =
 * exp(s) a b^T, bias on the device), labels +1 at (i, i + diag) and -1
 * elsewhere (diag < 0: all -1, another rank's texts).
 * loss[0] (+)= coef * sum log(1 + exp(-y z)); dlogits = coef * -y
 * sigmoid(-y z) (overwritten; skipped when dlogits.buf is NULL); dbias[0] +=
 * sum(dlogits) (when both are given). open_clip's per-process loss has coef
 * 1/N; the global-batch loss split over R ranks has coef 1/(R N). */
clipcl_status cc_siglip_fwd_bwd(cc_rt *rt, cc_view loss, cc_view dlogits, cc_view dbias, cc_view logits,
                                cc_view bias, int N, int M, int diag, float coef, int accumulate);

/* ---- optimiser (optim.c) ------------------------------------------------ */
/* out[0] = sqrt(sum x^2) over n elements, deterministic two-stage reduction. */
clipcl_status cc_global_norm(cc_rt *rt, cc_view out, cc_view x, size_t n);
/* scale[0] = min(1, max_norm / (norm[0] + 1e-6)): global gradient clipping
 * without a host round trip (feed `scale` to cc_adamw). */
clipcl_status cc_clip_factor(cc_rt *rt, cc_view scale, cc_view norm, float max_norm);
/* AdamW (decoupled decay, PyTorch's formula) over a flat buffer.
 * mask: one byte per parameter at byte offset mask_off: 0 no decay, 1 decay,
 * 2 frozen (not updated). grad_scale: optional device scalar multiplying the
 * gradients (clipping); none means 1. step counts from 1. */
typedef struct {
  float lr, beta1, beta2, eps, weight_decay;
  int step;
} cc_adamw_hparams;
clipcl_status cc_adamw(cc_rt *rt, cc_view params, cc_view grads, cc_view m, cc_view v, cl_mem mask,
                       cl_ulong mask_off, cc_view grad_scale, size_t n, const cc_adamw_hparams *h);
/* x = clamp(x, lo, hi) elementwise (logit_scale after each step). */
clipcl_status cc_clamp(cc_rt *rt, cc_view x, size_t n, float lo, float hi);

#endif

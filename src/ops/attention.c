/* attention.c: multi-head scaled dot-product attention, forward and backward,
 * as PyTorch's nn.MultiheadAttention computes it for open_clip (packed
 * in_proj output in, per-head softmax(q k^T / sqrt(D)) v out). The in_proj and
 * out_proj linear layers are not here (cc_linear_* in gemm.c).
 *
 * Structure: split the packed rows into per-head matrices, two batched
 * cc_gemm calls around a row softmax, merge back into rows
 * (kernels/attention.cl). Going through cc_gemm keeps one tuned matrix
 * product for the whole model (and CLBlast on GPUs); the split/merge passes
 * cost one read and write of q|k|v, small beside the products.
 *
 * Letters: B batch, T tokens, C width, H heads, D = C/H. Scratch: the
 * forward uses slot 2, the backward slots 2..4 (0 and 1 belong to cc_gemm).
 */
#include <math.h>
#include <stdint.h>

#include "ops/ops.h"

static clipcl_status attn_kernel(cc_rt *rt, const char *name, cc_kernel **k) {
  return cc_kernel_get(rt, "attention.cl", name, NULL, k);
}

/* Sizes that every buffer and launch below relies on; all products checked. */
typedef struct {
  size_t bhtd; /* B*H*T*D = B*T*C elements of one of q, k, v */
  size_t bhtt; /* B*H*T*T elements of att */
  int D, BH;
} attn_dims;

static clipcl_status check_dims(const char *op, int B, int T, int C, int H, attn_dims *d) {
  if (B < 1 || T < 1 || C < 1 || H < 1)
    return cc_fail(CLIPCL_ERR_ARG, "%s: sizes must be positive (B %d T %d C %d H %d)", op, B, T, C, H);
  if (C % H) return cc_fail(CLIPCL_ERR_ARG, "%s: width %d is not a multiple of %d heads", op, C, H);
  /* 3C is a row stride and B*H a GEMM batch count, both ints; T*T an int GEMM stride product */
  if (C > INT32_MAX / 3 || B > INT32_MAX / H || T > 46340 || B > INT32_MAX / 3)
    return cc_fail(CLIPCL_ERR_ARG, "%s: sizes too large (B %d T %d C %d H %d)", op, B, T, C, H);
  size_t bt = (size_t)B * (size_t)T;
  size_t limit = SIZE_MAX / 16; /* bytes of 3 parts still fit */
  if (bt > limit / (size_t)C || (size_t)B * H > limit / ((size_t)T * T))
    return cc_fail(CLIPCL_ERR_ARG, "%s: tensors too large (B %d T %d C %d H %d)", op, B, T, C, H);
  d->bhtd = bt * (size_t)C;
  d->bhtt = (size_t)B * H * (size_t)T * T;
  d->D = C / H;
  d->BH = B * H;
  return CLIPCL_OK;
}

static clipcl_status split(cc_rt *rt, cc_view dst, cc_view src, int ld, int S, int B, int T, int C, int H) {
  cc_kernel *k;
  CC_TRY(attn_kernel(rt, "heads_split", &k));
  size_t gws[3] = {(size_t)C, (size_t)T, (size_t)S * B};
  return CC_LAUNCH(rt, k, 3, gws, NULL, CC_VIEW(dst), CC_VIEW(src), CC_INT(ld), CC_INT(B), CC_INT(T), CC_INT(C),
                   CC_INT(H));
}

static clipcl_status merge(cc_rt *rt, cc_view dst, int ld, cc_view src, int S, int B, int T, int C, int H,
                           int accumulate) {
  cc_kernel *k;
  CC_TRY(attn_kernel(rt, "heads_merge", &k));
  size_t gws[3] = {(size_t)C, (size_t)T, (size_t)S * B};
  return CC_LAUNCH(rt, k, 3, gws, NULL, CC_VIEW(dst), CC_INT(ld), CC_VIEW(src), CC_INT(B), CC_INT(T), CC_INT(C),
                   CC_INT(H), CC_INT(accumulate));
}

/* Batched product over the B*H heads of T x ? matrices with contiguous storage. */
static clipcl_status head_gemm(cc_rt *rt, int transA, int transB, int M, int N, int K, float alpha, float beta,
                               cc_view A, int lda, cc_view Bm, int ldb, cc_view Cm, int ldc, int batch) {
  cc_gemm_desc g = {.transA = transA, .transB = transB, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
                    .A = A, .B = Bm, .C = Cm, .lda = lda, .ldb = ldb, .ldc = ldc, .batch = batch,
                    .sA = (cl_ulong)(transA ? K : M) * lda, .sB = (cl_ulong)(transB ? N : K) * ldb,
                    .sC = (cl_ulong)M * ldc};
  return cc_gemm(rt, &g);
}

clipcl_status cc_attention_fwd(cc_rt *rt, cc_view out, cc_view qkvr, cc_view att, cc_view qkv, int B, int T,
                               int C, int H, int causal) {
  attn_dims d = {0, 0, 0, 0};
  CC_TRY(check_dims("attention forward", B, T, C, H, &d));
  int D = d.D;
  float scale = (float)(1.0 / sqrt((double)D));
  cc_view q = qkvr, k = cc_at(qkvr, d.bhtd), v = cc_at(qkvr, 2 * d.bhtd);
  CC_TRY(split(rt, qkvr, qkv, 3 * C, 3, B, T, C, H));
  /* scores (BH,T,T) = scale * q k^T, straight into att */
  CC_TRY(head_gemm(rt, 0, 1, T, T, D, scale, 0.0f, q, D, k, D, att, T, d.BH));
  cc_kernel *ks;
  CC_TRY(attn_kernel(rt, "attn_softmax_fwd", &ks));
  size_t rows = (size_t)d.BH * T, gws = rows;
  CC_TRY(CC_LAUNCH(rt, ks, 1, &gws, NULL, CC_VIEW(att), CC_ULONG(rows), CC_INT(T), CC_INT(causal != 0)));
  /* y (BH,T,D) = att v, then rows */
  cl_mem ybuf;
  CC_TRY(cc_scratch(rt, 2, d.bhtd * 4, &ybuf));
  cc_view y = {ybuf, 0};
  CC_TRY(head_gemm(rt, 0, 0, T, D, T, 1.0f, 0.0f, att, T, v, D, y, D, d.BH));
  return merge(rt, out, C, y, 1, B, T, C, H, 0);
}

clipcl_status cc_attention_bwd(cc_rt *rt, cc_view dqkv, cc_view dout, cc_view qkvr, cc_view att, int B, int T,
                               int C, int H, int causal) {
  attn_dims d = {0, 0, 0, 0};
  CC_TRY(check_dims("attention backward", B, T, C, H, &d));
  int D = d.D;
  float scale = (float)(1.0 / sqrt((double)D));
  cc_view q = qkvr, k = cc_at(qkvr, d.bhtd), v = cc_at(qkvr, 2 * d.bhtd);
  cl_mem dybuf, dqkvrbuf, dattbuf;
  CC_TRY(cc_scratch(rt, 2, d.bhtd * 4, &dybuf));
  CC_TRY(cc_scratch(rt, 3, 3 * d.bhtd * 4, &dqkvrbuf));
  CC_TRY(cc_scratch(rt, 4, d.bhtt * 4, &dattbuf));
  cc_view dy = {dybuf, 0}, dq = {dqkvrbuf, 0}, dk = {dqkvrbuf, d.bhtd}, dv = {dqkvrbuf, 2 * d.bhtd};
  cc_view datt = {dattbuf, 0};
  CC_TRY(split(rt, dy, dout, C, 1, B, T, C, H));
  /* dv = att^T dy; datt = dy v^T */
  CC_TRY(head_gemm(rt, 1, 0, T, D, T, 1.0f, 0.0f, att, T, dy, D, dv, D, d.BH));
  CC_TRY(head_gemm(rt, 0, 1, T, T, D, 1.0f, 0.0f, dy, D, v, D, datt, T, d.BH));
  cc_kernel *ks;
  CC_TRY(attn_kernel(rt, "attn_softmax_bwd", &ks));
  size_t rows = (size_t)d.BH * T, gws = rows;
  CC_TRY(CC_LAUNCH(rt, ks, 1, &gws, NULL, CC_VIEW(datt), CC_VIEW(att), CC_ULONG(rows), CC_INT(T),
                   CC_INT(causal != 0)));
  /* scores were scale * q k^T: dq = scale dS k, dk = scale dS^T q */
  CC_TRY(head_gemm(rt, 0, 0, T, D, T, scale, 0.0f, datt, T, k, D, dq, D, d.BH));
  CC_TRY(head_gemm(rt, 1, 0, T, D, T, scale, 0.0f, datt, T, q, D, dk, D, d.BH));
  return merge(rt, dqkv, 3 * C, dq, 3, B, T, C, H, 1);
}

/* attention.c: multi-head scaled dot-product attention, forward and backward,
 * as PyTorch's nn.MultiheadAttention computes it for open_clip (packed
 * in_proj output in, per-head softmax(q k^T / sqrt(D)) v out). The in_proj and
 * out_proj linear layers are not here (cc_linear_* in gemm.c).
 *
 * Two paths, same results to float rounding (kernels/attention.cl):
 *  - cpu:  per-head kernels with floatv register tiles (the default on CPU
 *          devices, where per-element work-items and cc_gemm's packing of
 *          T x T x D products make the gemm path 4-7x slower: ViT-B/32 at
 *          batch 64 on 2 PoCL cores, 7 + 9 ms against 46 + 52 ms);
 *  - gemm: split the packed rows into per-head matrices, two batched cc_gemm
 *          calls around a row softmax, merge back into rows: one tuned
 *          product for the whole model, CLBlast on GPUs (the default there).
 * CLIPCL_ATTN=cpu|gemm overrides the choice (tests run both).
 *
 * Letters: B batch, T tokens, C width, H heads, D = C/H, TP = T rounded up
 * to 16. Scratch: the forward uses slot 2, the backward slots 2..4 (0 and 1
 * belong to cc_gemm).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

static clipcl_status use_cpu_path(cc_rt *rt, int *cpu) {
  const char *e = getenv("CLIPCL_ATTN");
  *cpu = cc_info(rt)->is_cpu;
  if (e && *e) {
    if (!strcmp(e, "cpu")) *cpu = 1;
    else if (!strcmp(e, "gemm")) *cpu = 0;
    else return cc_fail(CLIPCL_ERR_ARG, "CLIPCL_ATTN=%s: expected cpu or gemm", e);
  }
  return CLIPCL_OK;
}

/* Query rows per work-item: whole heads when there are enough heads to keep
 * every compute unit busy, else blocks of a multiple of 4 rows. */
static int rows_per_item(cc_rt *rt, int BH, int T) {
  int want = 8 * (cc_info(rt)->compute_units > 0 ? cc_info(rt)->compute_units : 1);
  int blocks = BH >= want ? 1 : (want + BH - 1) / BH;
  int qb = (T + blocks - 1) / blocks;
  qb = (qb + 3) / 4 * 4;
  return qb < 4 ? 4 : qb;
}

/* xt (BH, D, TP) = each head of x (BH, T, D) transposed */
static clipcl_status head_transpose(cc_rt *rt, cl_mem xt, cc_view x, int BH, int T, int D, int TP) {
  cc_kernel *k;
  CC_TRY(attn_kernel(rt, "head_transpose", &k));
  size_t gws[2] = {(size_t)T, (size_t)BH}, lws[2] = {1, 1};
  return CC_LAUNCH(rt, k, 2, gws, lws, CC_MEM(xt), CC_VIEW(x), CC_INT(T), CC_INT(D), CC_INT(TP));
}

static clipcl_status fwd_cpu(cc_rt *rt, cc_view out, cc_view qkvr, cc_view att, cc_view qkv, int B, int T, int C,
                             int H, int causal, const attn_dims *d) {
  int D = d->D, TP = (T + 15) / 16 * 16, QB = rows_per_item(rt, d->BH, T);
  cc_kernel *ks, *kf;
  CC_TRY(attn_kernel(rt, "heads_split_rows", &ks));
  CC_TRY(attn_kernel(rt, "attn_fwd_cpu", &kf));
  size_t gs[2] = {(size_t)T, 3 * (size_t)B}, one[3] = {1, 1, 1};
  CC_TRY(CC_LAUNCH(rt, ks, 2, gs, one, CC_VIEW(qkvr), CC_VIEW(qkv), CC_INT(3 * C), CC_INT(B), CC_INT(T), CC_INT(C),
                   CC_INT(H)));
  cl_mem kt;
  CC_TRY(cc_scratch(rt, 2, (size_t)d->BH * D * TP * 4, &kt));
  CC_TRY(head_transpose(rt, kt, cc_at(qkvr, d->bhtd), d->BH, T, D, TP));
  size_t gf[2] = {(size_t)((T + QB - 1) / QB), (size_t)d->BH};
  return CC_LAUNCH(rt, kf, 2, gf, one, CC_VIEW(out), CC_VIEW(att), CC_VIEW(qkvr), CC_MEM(kt), CC_INT(B), CC_INT(T),
                   CC_INT(C), CC_INT(H), CC_INT(TP), CC_INT(QB), CC_FLOAT((float)(1.0 / sqrt((double)D))),
                   CC_INT(causal != 0));
}

static clipcl_status bwd_cpu(cc_rt *rt, cc_view dqkv, cc_view dout, cc_view qkvr, cc_view att, int B, int T, int C,
                             int H, int causal, const attn_dims *d) {
  int D = d->D, TP = (T + 15) / 16 * 16, QB = rows_per_item(rt, d->BH, T);
  cl_mem vt, ds;
  CC_TRY(cc_scratch(rt, 2, (size_t)d->BH * D * TP * 4, &vt));
  CC_TRY(cc_scratch(rt, 3, d->bhtt * 4, &ds));
  CC_TRY(head_transpose(rt, vt, cc_at(qkvr, 2 * d->bhtd), d->BH, T, D, TP));
  cc_kernel *k1, *k2;
  CC_TRY(attn_kernel(rt, "attn_bwd_ds_cpu", &k1));
  CC_TRY(attn_kernel(rt, "attn_bwd_grads_cpu", &k2));
  size_t blocks = (size_t)((T + QB - 1) / QB), one[3] = {1, 1, 1};
  size_t g1[2] = {blocks, (size_t)d->BH};
  CC_TRY(CC_LAUNCH(rt, k1, 2, g1, one, CC_MEM(ds), CC_VIEW(dout), CC_VIEW(att), CC_MEM(vt), CC_INT(B), CC_INT(T),
                   CC_INT(C), CC_INT(H), CC_INT(TP), CC_INT(QB), CC_FLOAT((float)(1.0 / sqrt((double)D))),
                   CC_INT(causal != 0)));
  size_t g2[3] = {blocks, (size_t)d->BH, 3};
  return CC_LAUNCH(rt, k2, 3, g2, one, CC_VIEW(dqkv), CC_MEM(ds), CC_VIEW(dout), CC_VIEW(att), CC_VIEW(qkvr),
                   CC_INT(B), CC_INT(T), CC_INT(C), CC_INT(H), CC_INT(QB), CC_INT(causal != 0));
}

clipcl_status cc_attention_fwd(cc_rt *rt, cc_view out, cc_view qkvr, cc_view att, cc_view qkv, int B, int T,
                               int C, int H, int causal) {
  attn_dims d = {0, 0, 0, 0};
  CC_TRY(check_dims("attention forward", B, T, C, H, &d));
  int cpu;
  CC_TRY(use_cpu_path(rt, &cpu));
  if (cpu) return fwd_cpu(rt, out, qkvr, att, qkv, B, T, C, H, causal, &d);
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
  int cpu;
  CC_TRY(use_cpu_path(rt, &cpu));
  if (cpu) return bwd_cpu(rt, dqkv, dout, qkvr, att, B, T, C, H, causal, &d);
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

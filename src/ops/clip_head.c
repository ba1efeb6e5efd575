/* clip_head.c: the CLIP head: L2 normalisation of both embeddings, logits
 * exp(s) * a b^T with the logit scale s read on the device (no host round
 * trip), row cross-entropy with its saved softmax, and a transpose for the
 * text-side loss (kernels/clip_head.cl). Not here: gathering features across
 * processes and the logit-scale clamp (cc_clamp in elementwise.c).
 *
 * open_clip's loss is 0.5 * (CE(L, arange) + CE(L^T, arange)) with
 * L = exp(s) * normalize(I) @ normalize(T)^T; the model code composes it from
 * these ops (two cc_ce_fwd calls with weight 0.5, the second accumulating).
 *
 * Reductions over rows (loss, d(logit_scale)) are two-stage: one partial per
 * row, then one work-item sums the partials in index order: same inputs,
 * same bits. Scratch: slot 5 (the scaled copies and the per-row partials;
 * cc_gemm uses 0 and 1).
 * Letters: N rows, M columns, E embedding width.
 */
#include <stdint.h>

#include "ops/ops.h"

#define HEAD_SLOT 5
#define EW_GROUP 256

static clipcl_status head_kernel(cc_rt *rt, const char *name, cc_kernel **k) {
  return cc_kernel_get(rt, "clip_head.cl", name, NULL, k);
}

/* N rows of M columns: positive, and N*M elements addressable with room for
 * a few such tensors in one scratch slot. */
static clipcl_status check_rows(const char *op, int N, int M) {
  if (N < 1 || M < 1) return cc_fail(CLIPCL_ERR_ARG, "%s: sizes must be positive (%d x %d)", op, N, M);
  if ((size_t)N > SIZE_MAX / 64 / (size_t)M)
    return cc_fail(CLIPCL_ERR_ARG, "%s: %d x %d is too large", op, N, M);
  return CLIPCL_OK;
}

clipcl_status cc_l2norm_fwd(cc_rt *rt, cc_view out, cc_view norm, cc_view inp, int N, int E) {
  CC_TRY(check_rows("l2norm forward", N, E));
  cc_kernel *k;
  CC_TRY(head_kernel(rt, "l2norm_fwd", &k));
  size_t gws = (size_t)N;
  return CC_LAUNCH(rt, k, 1, &gws, NULL, CC_VIEW(out), CC_VIEW(norm), CC_VIEW(inp), CC_INT(N), CC_INT(E));
}

clipcl_status cc_l2norm_bwd(cc_rt *rt, cc_view dinp, cc_view dout, cc_view out, cc_view norm, int N, int E) {
  CC_TRY(check_rows("l2norm backward", N, E));
  if (!dinp.buf) return CLIPCL_OK;
  cc_kernel *k;
  CC_TRY(head_kernel(rt, "l2norm_bwd", &k));
  size_t gws = (size_t)N;
  return CC_LAUNCH(rt, k, 1, &gws, NULL, CC_VIEW(dinp), CC_VIEW(dout), CC_VIEW(out), CC_VIEW(norm), CC_INT(N),
                   CC_INT(E));
}

static clipcl_status scale_by_exp(cc_rt *rt, cc_view dst, cc_view src, cc_view logit_scale, size_t n) {
  cc_kernel *k;
  CC_TRY(head_kernel(rt, "scale_by_exp", &k));
  size_t gws = cc_round_up(n, EW_GROUP);
  return CC_LAUNCH(rt, k, 1, &gws, NULL, CC_VIEW(dst), CC_VIEW(src), CC_VIEW(logit_scale), CC_ULONG(n));
}

/* out[0] (+)= alpha * sum(part[0..n)) in index order */
static clipcl_status ordered_sum(cc_rt *rt, cc_view out, cl_mem part, int n, float alpha, int accumulate) {
  cc_kernel *k;
  CC_TRY(head_kernel(rt, "ordered_sum", &k));
  size_t one = 1;
  return CC_LAUNCH(rt, k, 1, &one, &one, CC_VIEW(out), CC_MEM(part), CC_INT(n), CC_FLOAT(alpha),
                   CC_INT(accumulate));
}

clipcl_status cc_logits_fwd(cc_rt *rt, cc_view logits, cc_view a, cc_view b, cc_view logit_scale, int N, int M,
                            int E) {
  CC_TRY(check_rows("logits forward", N, M));
  CC_TRY(check_rows("logits forward", N, E));
  CC_TRY(check_rows("logits forward", M, E));
  cl_mem s;
  size_t na = (size_t)N * E;
  CC_TRY(cc_scratch(rt, HEAD_SLOT, na * 4, &s));
  cc_view as = {s, 0};
  CC_TRY(scale_by_exp(rt, as, a, logit_scale, na));
  cc_gemm_desc g = {.transB = 1, .M = N, .N = M, .K = E, .alpha = 1.0f, .beta = 0.0f, .A = as, .B = b,
                    .C = logits, .lda = E, .ldb = E, .ldc = M};
  return cc_gemm(rt, &g);
}

clipcl_status cc_logits_bwd(cc_rt *rt, cc_view da, cc_view db, cc_view dscale, cc_view dlogits, cc_view a,
                            cc_view b, cc_view logits, cc_view logit_scale, int N, int M, int E) {
  CC_TRY(check_rows("logits backward", N, M));
  CC_TRY(check_rows("logits backward", N, E));
  CC_TRY(check_rows("logits backward", M, E));
  size_t na = (size_t)N * E, nb = (size_t)M * E;
  cl_mem s;
  CC_TRY(cc_scratch(rt, HEAD_SLOT, (na + nb) * 4, &s));
  cc_view as = {s, 0}, bs = {s, na}; /* then the N <= na row partials at 0: the queue is in order */
  if (da.buf) {
    /* da += dL @ (exp(s) b) */
    CC_TRY(scale_by_exp(rt, bs, b, logit_scale, nb));
    cc_gemm_desc g = {.M = N, .N = E, .K = M, .alpha = 1.0f, .beta = 1.0f, .A = dlogits, .B = bs, .C = da,
                      .lda = M, .ldb = E, .ldc = E};
    CC_TRY(cc_gemm(rt, &g));
  }
  if (db.buf) {
    /* db += dL^T @ (exp(s) a) */
    CC_TRY(scale_by_exp(rt, as, a, logit_scale, na));
    cc_gemm_desc g = {.transA = 1, .M = M, .N = E, .K = N, .alpha = 1.0f, .beta = 1.0f, .A = dlogits, .B = as,
                      .C = db, .lda = M, .ldb = E, .ldc = E};
    CC_TRY(cc_gemm(rt, &g));
  }
  if (dscale.buf) {
    /* d/ds of exp(s) X is exp(s) X = logits: dscale += sum(dL * logits) */
    cc_kernel *k;
    CC_TRY(head_kernel(rt, "row_dots", &k));
    size_t gws = (size_t)N;
    CC_TRY(CC_LAUNCH(rt, k, 1, &gws, NULL, CC_MEM(s), CC_VIEW(dlogits), CC_VIEW(logits), CC_INT(N), CC_INT(M)));
    CC_TRY(ordered_sum(rt, dscale, s, N, 1.0f, 1));
  }
  return CLIPCL_OK;
}

static clipcl_status check_labels(const char *op, int N, int M, int label_offset) {
  CC_TRY(check_rows(op, N, M));
  if (label_offset < 0 || label_offset > M - N)
    return cc_fail(CLIPCL_ERR_ARG, "%s: labels %d..%d fall outside %d columns", op, label_offset,
                   label_offset + N - 1, M);
  return CLIPCL_OK;
}

clipcl_status cc_ce_fwd(cc_rt *rt, cc_view loss, cc_view probs, cc_view logits, int N, int M, int label_offset,
                        float weight, int accumulate) {
  CC_TRY(check_labels("cross-entropy forward", N, M, label_offset));
  cl_mem part;
  CC_TRY(cc_scratch(rt, HEAD_SLOT, (size_t)N * 4, &part));
  cc_kernel *k;
  CC_TRY(head_kernel(rt, "ce_fwd", &k));
  size_t gws = (size_t)N;
  CC_TRY(CC_LAUNCH(rt, k, 1, &gws, NULL, CC_MEM(part), CC_VIEW(probs), CC_VIEW(logits), CC_INT(N), CC_INT(M),
                   CC_INT(label_offset)));
  return ordered_sum(rt, loss, part, N, (float)((double)weight / N), accumulate);
}

clipcl_status cc_ce_bwd(cc_rt *rt, cc_view dlogits, cc_view probs, int N, int M, int label_offset,
                        float weight) {
  CC_TRY(check_labels("cross-entropy backward", N, M, label_offset));
  cc_kernel *k;
  CC_TRY(head_kernel(rt, "ce_bwd", &k));
  size_t gws[2] = {cc_round_up((size_t)M, 16), (size_t)N};
  return CC_LAUNCH(rt, k, 2, gws, NULL, CC_VIEW(dlogits), CC_VIEW(probs), CC_INT(N), CC_INT(M),
                   CC_INT(label_offset), CC_FLOAT((float)((double)weight / N)));
}

clipcl_status cc_transpose(cc_rt *rt, cc_view out, cc_view inp, int R, int Cc) {
  CC_TRY(check_rows("transpose", R, Cc));
  cc_kernel *k;
  CC_TRY(head_kernel(rt, "transpose", &k));
  size_t gws[2] = {((size_t)Cc + 15) / 16, ((size_t)R + 15) / 16};
  return CC_LAUNCH(rt, k, 2, gws, NULL, CC_VIEW(out), CC_VIEW(inp), CC_INT(R), CC_INT(Cc));
}

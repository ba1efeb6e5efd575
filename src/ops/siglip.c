/* siglip.c: SigLIP's sigmoid loss over a block of logits
 * (kernels/siglip.cl): loss, d logits and d bias in one pass. The model's
 * SigLIP head (src/train/loss.c) composes it with cc_logits_fwd/bwd and the
 * L2 normalisation, one block per pair of feature sets, so that a rank
 * never holds more than its own rows against one block of columns.
 * Scratch: slot 5 (shared with clip_head.c; the queue is in order). */
#include <stdint.h>

#include "ops/ops.h"

#define SIGLIP_SLOT 5

clipcl_status cc_siglip_fwd_bwd(cc_rt *rt, cc_view loss, cc_view dlogits, cc_view dbias, cc_view logits,
                                cc_view bias, int N, int M, int diag, float coef, int accumulate) {
  if (N < 1 || M < 1 || (size_t)N > SIZE_MAX / 64 / (size_t)M)
    return cc_fail(CLIPCL_ERR_ARG, "siglip: bad block size %d x %d", N, M);
  if (diag >= 0 && diag > M - N)
    return cc_fail(CLIPCL_ERR_ARG, "siglip: positive pairs at offset %d fall outside %d columns", diag, M);
  cl_mem part;
  CC_TRY(cc_scratch(rt, SIGLIP_SLOT, (size_t)N * 2 * 4, &part));
  cc_kernel *rows, *sum;
  CC_TRY(cc_kernel_get(rt, "siglip.cl", "siglip_rows", NULL, &rows));
  CC_TRY(cc_kernel_get(rt, "siglip.cl", "siglip_sum", NULL, &sum));
  int grads = dlogits.buf != NULL;
  cc_view dl = grads ? dlogits : logits; /* never written without grads: a valid argument */
  size_t gws = (size_t)N, one = 1;
  CC_TRY(CC_LAUNCH(rt, rows, 1, &gws, NULL, CC_MEM(part), CC_VIEW(dl), CC_VIEW(logits), CC_VIEW(bias), CC_INT(N),
                   CC_INT(M), CC_INT(diag), CC_FLOAT(coef), CC_INT(grads)));
  CC_TRY(CC_LAUNCH(rt, sum, 1, &one, &one, CC_VIEW(loss), CC_MEM(part), CC_INT(0), CC_INT(N), CC_FLOAT(coef),
                   CC_INT(accumulate)));
  if (grads && dbias.buf)
    CC_TRY(CC_LAUNCH(rt, sum, 1, &one, &one, CC_VIEW(dbias), CC_MEM(part), CC_INT(N), CC_INT(N), CC_FLOAT(1.0f),
                     CC_INT(1)));
  return CLIPCL_OK;
}

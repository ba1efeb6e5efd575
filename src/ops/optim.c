/* optim.c: the optimiser step on the device: global gradient norm,
 * clipping factor, AdamW over the flat parameter buffer (kernels/optim.cl).
 * Not here: learning-rate schedules, parameter grouping (the byte mask is
 * built by the model code), the logit-scale clamp (cc_clamp).
 *
 * Global norm: fixed chunks of CHUNK elements -> one float partial each in
 * scratch slot 6 -> one work-item sums the partials in index order, in
 * double where the device has fp64, else in compensated float. The chunking
 * depends only on n, so the bits do not depend on the device's core count.
 * CLIPCL_OPTIM_FP64=0 forces the float path (tests use it on fp64 devices).
 *
 * AdamW: torch.optim.AdamW's single-tensor formula. Its scalar factors
 * (1 - lr*wd, lr/(1-beta1^t), sqrt(1-beta2^t), 1-beta) are computed here in
 * double, as Python computes them, from the decimal values the float
 * hyperparameters stand for (0.98f is taken as 0.98), so they round to the
 * same floats PyTorch passes to its kernels.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

#define OPT_SLOT 6
#define OPT_CHUNK 4096
#define EW_GROUP 256

static clipcl_status opt_kernel(cc_rt *rt, const char *name, cc_kernel **k) {
  const char *e = getenv("CLIPCL_OPTIM_FP64");
  int fp64 = cc_info(rt)->fp64 && !(e && !strcmp(e, "0"));
  char defines[64];
  snprintf(defines, sizeof defines, "-DUSE_FP64=%d -DCHUNK=%d", fp64, OPT_CHUNK);
  return cc_kernel_get(rt, "optim.cl", name, defines, k);
}

clipcl_status cc_global_norm(cc_rt *rt, cc_view out, cc_view x, size_t n) {
  size_t nparts = n / OPT_CHUNK + (n % OPT_CHUNK != 0);
  cl_mem part;
  CC_TRY(cc_scratch(rt, OPT_SLOT, (nparts ? nparts : 1) * 4, &part));
  cc_kernel *k1, *k2;
  CC_TRY(opt_kernel(rt, "sumsq_chunks", &k1));
  CC_TRY(opt_kernel(rt, "sumsq_finish", &k2));
  size_t gws = nparts;
  CC_TRY(CC_LAUNCH(rt, k1, 1, &gws, NULL, CC_MEM(part), CC_VIEW(x), CC_ULONG(n)));
  size_t one = 1;
  return CC_LAUNCH(rt, k2, 1, &one, &one, CC_VIEW(out), CC_MEM(part), CC_ULONG(nparts));
}

clipcl_status cc_clip_factor(cc_rt *rt, cc_view scale, cc_view norm, float max_norm) {
  if (!(max_norm > 0) || isinf(max_norm))
    return cc_fail(CLIPCL_ERR_ARG, "gradient clipping: max norm %g must be positive and finite", max_norm);
  cc_kernel *k;
  CC_TRY(opt_kernel(rt, "clip_factor", &k));
  size_t one = 1;
  return CC_LAUNCH(rt, k, 1, &one, &one, CC_VIEW(scale), CC_VIEW(norm), CC_FLOAT(max_norm));
}

/* The shortest decimal that reads back as f, as a double: the value a user
 * wrote (5e-4, 0.98) rather than the float's binary expansion. */
static double decimal_of(float f) {
  char s[32];
  for (int p = 1; p <= 9; p++) {
    snprintf(s, sizeof s, "%.*g", p, (double)f);
    if (strtof(s, NULL) == f) return strtod(s, NULL);
  }
  return (double)f;
}

clipcl_status cc_adamw(cc_rt *rt, cc_view params, cc_view grads, cc_view m, cc_view v, cl_mem mask,
                       cl_ulong mask_off, cc_view grad_scale, size_t n, const cc_adamw_hparams *h) {
  if (!h || !mask) return cc_fail(CLIPCL_ERR_ARG, "adamw: missing hyperparameters or parameter mask");
  /* PyTorch's own argument checks, plus a positive step */
  if (h->step < 1 || !(h->lr >= 0) || !(h->eps >= 0) || !(h->beta1 >= 0 && h->beta1 < 1) ||
      !(h->beta2 >= 0 && h->beta2 < 1) || !(h->weight_decay >= 0) || isinf(h->lr) || isinf(h->eps) ||
      isinf(h->weight_decay))
    return cc_fail(CLIPCL_ERR_ARG, "adamw: invalid hyperparameters (lr %g betas %g %g eps %g wd %g step %d)",
                   h->lr, h->beta1, h->beta2, h->eps, h->weight_decay, h->step);
  if (n == 0) return CLIPCL_OK;
  double lr = decimal_of(h->lr), b1 = decimal_of(h->beta1), b2 = decimal_of(h->beta2);
  double wd = decimal_of(h->weight_decay), eps = decimal_of(h->eps);
  double bc1 = 1.0 - pow(b1, (double)h->step), bc2 = 1.0 - pow(b2, (double)h->step);
  cc_kernel *k;
  CC_TRY(opt_kernel(rt, "adamw", &k));
  size_t vw = (size_t)cc_info(rt)->vector_width; /* elements per work-item */
  size_t gws = cc_round_up((n + vw - 1) / vw, EW_GROUP);
  int has_scale = grad_scale.buf != NULL;
  cl_mem gs = has_scale ? grad_scale.buf : grads.buf;
  return CC_LAUNCH(rt, k, 1, &gws, NULL, CC_VIEW(params), CC_VIEW(grads), CC_VIEW(m), CC_VIEW(v), CC_MEM(mask),
                   CC_ULONG(mask_off), CC_MEM(gs), CC_ULONG(grad_scale.off), CC_INT(has_scale), CC_ULONG(n),
                   CC_FLOAT(1.0 - lr * wd), CC_FLOAT(b1), CC_FLOAT(1.0 - b1), CC_FLOAT(b2), CC_FLOAT(1.0 - b2),
                   CC_FLOAT(-(lr / bc1)), CC_FLOAT(sqrt(bc2)), CC_FLOAT(eps));
}

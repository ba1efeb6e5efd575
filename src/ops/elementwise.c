/* elementwise.c: residual add, axpy, scale, clamp, GELU/QuickGELU (kernels/elementwise.cl). */
#include "ops/ops.h"

#define EW_GROUP 256

static clipcl_status ew_kernel(cc_rt *rt, const char *name, cc_kernel **k) {
  return cc_kernel_get(rt, "elementwise.cl", name, NULL, k);
}

clipcl_status cc_add_fwd(cc_rt *rt, cc_view out, cc_view a, cc_view b, size_t n) {
  cc_kernel *k;
  CC_TRY(ew_kernel(rt, "add_fwd", &k));
  size_t g = cc_round_up(n, EW_GROUP);
  return CC_LAUNCH(rt, k, 1, &g, NULL, CC_VIEW(out), CC_VIEW(a), CC_VIEW(b), CC_ULONG(n));
}

clipcl_status cc_axpy(cc_rt *rt, cc_view y, cc_view x, float alpha, size_t n) {
  cc_kernel *k;
  CC_TRY(ew_kernel(rt, "axpy", &k));
  size_t g = cc_round_up(n, EW_GROUP);
  return CC_LAUNCH(rt, k, 1, &g, NULL, CC_VIEW(y), CC_VIEW(x), CC_FLOAT(alpha), CC_ULONG(n));
}

clipcl_status cc_scale(cc_rt *rt, cc_view x, float alpha, size_t n) {
  cc_kernel *k;
  CC_TRY(ew_kernel(rt, "scale", &k));
  size_t g = cc_round_up(n, EW_GROUP);
  return CC_LAUNCH(rt, k, 1, &g, NULL, CC_VIEW(x), CC_FLOAT(alpha), CC_ULONG(n));
}

clipcl_status cc_clamp(cc_rt *rt, cc_view x, size_t n, float lo, float hi) {
  cc_kernel *k;
  CC_TRY(ew_kernel(rt, "clamp_vals", &k));
  size_t g = cc_round_up(n, EW_GROUP);
  return CC_LAUNCH(rt, k, 1, &g, NULL, CC_VIEW(x), CC_FLOAT(lo), CC_FLOAT(hi), CC_ULONG(n));
}

clipcl_status cc_gelu_fwd(cc_rt *rt, cc_view out, cc_view inp, size_t n, int quick) {
  cc_kernel *k;
  CC_TRY(ew_kernel(rt, "gelu_fwd", &k));
  size_t vw = (size_t)cc_info(rt)->vector_width, g = cc_round_up((n + vw - 1) / vw, EW_GROUP);
  return CC_LAUNCH(rt, k, 1, &g, NULL, CC_VIEW(out), CC_VIEW(inp), CC_ULONG(n), CC_INT(quick));
}

static clipcl_status gelu_bwd(cc_rt *rt, cc_view dinp, cc_view inp, cc_view dout, size_t n, int quick, int acc) {
  cc_kernel *k;
  CC_TRY(ew_kernel(rt, "gelu_bwd", &k));
  size_t vw = (size_t)cc_info(rt)->vector_width, g = cc_round_up((n + vw - 1) / vw, EW_GROUP);
  return CC_LAUNCH(rt, k, 1, &g, NULL, CC_VIEW(dinp), CC_VIEW(inp), CC_VIEW(dout), CC_ULONG(n),
                   CC_INT(quick), CC_INT(acc));
}

clipcl_status cc_gelu_bwd(cc_rt *rt, cc_view dinp, cc_view inp, cc_view dout, size_t n, int quick) {
  return gelu_bwd(rt, dinp, inp, dout, n, quick, 1);
}

clipcl_status cc_gelu_bwd_set(cc_rt *rt, cc_view dinp, cc_view inp, cc_view dout, size_t n, int quick) {
  return gelu_bwd(rt, dinp, inp, dout, n, quick, 0);
}

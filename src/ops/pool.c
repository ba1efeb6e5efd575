/* pool.c: cc_argmax_rows and cc_gather_rows_fwd/bwd (kernels/pool.cl): the
 * text tower's EOT pooling and the vision tower's class-token pooling. */
#include "ops/ops.h"

static clipcl_status pool_check(const char *what, int B, int T, int C) {
  if (B < 0 || T < 0 || C < 0) return cc_fail(CLIPCL_ERR_ARG, "%s: negative size B=%d T=%d C=%d", what, B, T, C);
  return CLIPCL_OK;
}

clipcl_status cc_argmax_rows(cc_rt *rt, cc_view idx, cc_view ids, int B, int T) {
  CC_TRY(pool_check("argmax_rows", B, T, 0));
  if (B == 0) return CLIPCL_OK;
  if (T < 1) return cc_fail(CLIPCL_ERR_ARG, "argmax_rows: empty rows (T=%d)", T);
  cc_kernel *k;
  CC_TRY(cc_kernel_get(rt, "pool.cl", "argmax_rows", NULL, &k));
  size_t gws = (size_t)B;
  return CC_LAUNCH(rt, k, 1, &gws, NULL, CC_VIEW(idx), CC_VIEW(ids), CC_INT(B), CC_INT(T));
}

static clipcl_status gather(cc_rt *rt, const char *name, cc_view dst, cc_view src, cc_view idx, int B, int T,
                            int C) {
  CC_TRY(pool_check(name, B, T, C));
  if (B == 0 || C == 0) return CLIPCL_OK;
  int has_idx = idx.buf != NULL;
  if (!has_idx) idx = (cc_view){src.buf, 0}; /* never read */
  cc_kernel *k;
  CC_TRY(cc_kernel_get(rt, "pool.cl", name, NULL, &k));
  size_t gws[2] = {(size_t)C, (size_t)B};
  return CC_LAUNCH(rt, k, 2, gws, NULL, CC_VIEW(dst), CC_VIEW(src), CC_VIEW(idx), CC_INT(has_idx), CC_INT(T),
                   CC_INT(C));
}

clipcl_status cc_gather_rows_fwd(cc_rt *rt, cc_view out, cc_view x, cc_view idx, int B, int T, int C) {
  return gather(rt, "gather_rows_fwd", out, x, idx, B, T, C);
}

clipcl_status cc_gather_rows_bwd(cc_rt *rt, cc_view dx, cc_view dout, cc_view idx, int B, int T, int C) {
  return gather(rt, "gather_rows_bwd", dx, dout, idx, B, T, C);
}

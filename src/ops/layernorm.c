/* layernorm.c: cc_layernorm_fwd / cc_layernorm_bwd (kernels/layernorm.cl).
 *
 * Shape per device: CPUs get one work-item per row (LANES=1, float16 vectors
 * along the row), other devices a work-group of 128 lanes per row. Override
 * with CLIPCL_LN_LANES=<power of two> (tests run both shapes on one device).
 * The rows of the backward pass are split into a number of chunks fixed by N
 * and the device, so the gain/bias gradients are the same bits on every run.
 * Not here: the arithmetic (see the kernel file's banner).
 */
#include <stdio.h>
#include <stdlib.h>

#include "ops/ops.h"

#define LN_SCRATCH_SLOT 6

static clipcl_status ln_lanes(cc_rt *rt, int *lanes) {
  const clipcl_device_info *in = cc_info(rt);
  int l = in->is_cpu ? 1 : 128;
  const char *e = getenv("CLIPCL_LN_LANES");
  if (e && *e) {
    char *end;
    long v = strtol(e, &end, 10);
    if (*end || v < 1 || v > 1024 || (v & (v - 1)))
      return cc_fail(CLIPCL_ERR_ARG, "CLIPCL_LN_LANES=%s: expected a power of two in 1..1024", e);
    l = (int)v;
  }
  while (l > 1 && (size_t)l > in->max_work_group) l >>= 1;
  *lanes = l;
  return CLIPCL_OK;
}

static clipcl_status ln_kernel(cc_rt *rt, const char *name, int lanes, cc_kernel **k) {
  char defs[32];
  snprintf(defs, sizeof defs, "-DLANES=%d", lanes);
  return cc_kernel_get(rt, "layernorm.cl", name, defs, k);
}

static clipcl_status ln_check(const char *what, int N, int C) {
  if (N < 0 || C < 0) return cc_fail(CLIPCL_ERR_ARG, "%s: negative size N=%d C=%d", what, N, C);
  return CLIPCL_OK;
}

clipcl_status cc_layernorm_fwd(cc_rt *rt, cc_view out, cc_view mean, cc_view rstd, cc_view inp,
                               cc_view weight, cc_view bias, int N, int C) {
  CC_TRY(ln_check("layernorm_fwd", N, C));
  if (N == 0 || C == 0) return CLIPCL_OK;
  int lanes;
  cc_kernel *k;
  CC_TRY(ln_lanes(rt, &lanes));
  CC_TRY(ln_kernel(rt, "ln_fwd", lanes, &k));
  size_t gws = (size_t)N * lanes, lws = (size_t)lanes;
  return CC_LAUNCH(rt, k, 1, &gws, &lws, CC_VIEW(out), CC_VIEW(mean), CC_VIEW(rstd), CC_VIEW(inp),
                   CC_VIEW(weight), CC_VIEW(bias), CC_INT(N), CC_INT(C));
}

/* The fixed partition of rows: enough chunks to fill the device several
 * times over, few enough that the partials stay small. Depends only on N and
 * the device, never on timing. */
static int ln_chunks(cc_rt *rt, int N) {
  int cu = cc_info(rt)->compute_units;
  int want = 8 * (cu > 0 ? cu : 1);
  if (want < 32) want = 32;
  if (want > 1024) want = 1024;
  return N < want ? N : want;
}

clipcl_status cc_layernorm_bwd(cc_rt *rt, cc_view dinp, cc_view dweight, cc_view dbias,
                               cc_view dout, cc_view inp, cc_view weight, cc_view mean,
                               cc_view rstd, int N, int C) {
  CC_TRY(ln_check("layernorm_bwd", N, C));
  int want_dinp = dinp.buf != NULL, want_dw = dweight.buf != NULL, want_db = dbias.buf != NULL;
  int want_dwb = want_dw || want_db;
  if (N == 0 || C == 0 || !(want_dinp || want_dwb)) return CLIPCL_OK;
  int lanes;
  CC_TRY(ln_lanes(rt, &lanes));
  int nch = ln_chunks(rt, N);
  int rpc = (N + nch - 1) / nch;
  nch = (N + rpc - 1) / rpc; /* no empty chunk */
  cl_mem part = NULL;
  if (want_dwb) CC_TRY(cc_scratch(rt, LN_SCRATCH_SLOT, (size_t)nch * 2 * (size_t)C * 4, &part));
  else CC_TRY(cc_scratch(rt, LN_SCRATCH_SLOT, 16, &part)); /* never written: a valid argument */
  if (!want_dinp) dinp = dout;                              /* likewise */
  cc_kernel *k;
  CC_TRY(ln_kernel(rt, "ln_bwd", lanes, &k));
  size_t gws = (size_t)nch * lanes, lws = (size_t)lanes;
  CC_TRY(CC_LAUNCH(rt, k, 1, &gws, &lws, CC_VIEW(dinp), CC_MEM(part), CC_VIEW(dout), CC_VIEW(inp),
                   CC_VIEW(weight), CC_VIEW(mean), CC_VIEW(rstd), CC_INT(N), CC_INT(C), CC_INT(rpc),
                   CC_INT(want_dinp), CC_INT(want_dwb)));
  if (!want_dwb) return CLIPCL_OK;
  cc_kernel *kr;
  CC_TRY(ln_kernel(rt, "ln_bwd_reduce", lanes, &kr));
  if (!want_dw) dweight = dbias;
  if (!want_db) dbias = dweight;
  size_t rl = cc_info(rt)->max_work_group < 64 ? 1 : 64, rg = cc_round_up((size_t)C, rl);
  return CC_LAUNCH(rt, kr, 1, &rg, &rl, CC_VIEW(dweight), CC_VIEW(dbias), CC_MEM(part), CC_INT(nch),
                   CC_INT(C), CC_INT(want_dw), CC_INT(want_db));
}

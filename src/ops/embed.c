/* embed.c: patch embedding (im2col + GEMM), ViT class token + positional
 * embedding, token + positional embedding, forward and backward
 * (kernels/embed.cl). The patch conv's weight (C,3,p,p) is used as a (C, K)
 * matrix with K = 3*p*p, so the conv is cols (B*P, K) @ w^T.
 * Not here: the GEMM itself (gemm.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

#define EMBED_DCOLS_SLOT 7 /* dcols = dout @ w, before col2im */

/* Channels per work-item in the batch-reduction kernels: the device's vector
 * width on CPUs (a work-item is a loop body there), one channel on GPUs
 * (coalesced). CLIPCL_EMBED_VEC=1|4|8|16 overrides (the tests run them). */
static clipcl_status embed_vec(cc_rt *rt, int *vec) {
  *vec = cc_info(rt)->is_cpu ? cc_info(rt)->vector_width : 1;
  const char *e = getenv("CLIPCL_EMBED_VEC");
  if (e && *e) {
    if (strcmp(e, "1") && strcmp(e, "4") && strcmp(e, "8") && strcmp(e, "16"))
      return cc_fail(CLIPCL_ERR_ARG, "CLIPCL_EMBED_VEC=%s: expected 1, 4, 8 or 16", e);
    *vec = atoi(e);
    if (*vec > cc_info(rt)->vector_width) /* wider vectors than the registers break the call ABI */
      return cc_fail(CLIPCL_ERR_ARG, "CLIPCL_EMBED_VEC=%s: wider than this device's vector width %d", e,
                     cc_info(rt)->vector_width);
  }
  return CLIPCL_OK;
}

static clipcl_status ek_vec(cc_rt *rt, const char *name, cc_kernel **k, int *vec) {
  CC_TRY(embed_vec(rt, vec));
  char defs[32];
  snprintf(defs, sizeof defs, "-DVEC=%d", *vec);
  return cc_kernel_get(rt, "embed.cl", name, defs, k);
}

static clipcl_status ek(cc_rt *rt, const char *name, cc_kernel **k) {
  int vec;
  return ek_vec(rt, name, k, &vec);
}

static clipcl_status patch_geometry(const char *what, int B, int S, int p, int C, int *G) {
  if (B < 0 || S < 0 || p <= 0 || C < 0)
    return cc_fail(CLIPCL_ERR_ARG, "%s: bad size B=%d S=%d p=%d C=%d", what, B, S, p, C);
  if (S % p)
    return cc_fail(CLIPCL_ERR_ARG, "%s: image side %d is not a multiple of the patch size %d", what, S, p);
  /* every index the kernels form must fit: B*3*S*S elements, P*B rows */
  if ((uint64_t)B * 3 * (uint64_t)S * (uint64_t)S > ((uint64_t)1 << 46) || (int64_t)p * p * 3 > INT32_MAX / 2)
    return cc_fail(CLIPCL_ERR_ARG, "%s: images too large (B=%d S=%d p=%d)", what, B, S, p);
  *G = S / p;
  if ((int64_t)B * *G * *G > INT32_MAX)
    return cc_fail(CLIPCL_ERR_ARG, "%s: too many patches (B=%d, %lld per image)", what, B,
                   (long long)*G * *G);
  return CLIPCL_OK;
}

static clipcl_status patch_cols(cc_rt *rt, cc_view cols, cc_view img, int B, int S, int p, int G, int dir) {
  cc_kernel *k;
  CC_TRY(ek(rt, "patch_cols", &k));
  size_t gws[2] = {(size_t)3 * p, (size_t)B * G * G};
  return CC_LAUNCH(rt, k, 2, gws, NULL, CC_VIEW(cols), CC_VIEW(img), CC_INT(S), CC_INT(p),
                   CC_INT(G), CC_INT(dir));
}

clipcl_status cc_patch_embed_fwd(cc_rt *rt, cc_view out, cc_view cols, cc_view img, cc_view w, int B,
                                 int S, int p, int C) {
  int G = 0;
  CC_TRY(patch_geometry("patch_embed_fwd", B, S, p, C, &G));
  if (B == 0 || G == 0 || C == 0) return CLIPCL_OK;
  CC_TRY(patch_cols(rt, cols, img, B, S, p, G, 0));
  return cc_linear_fwd(rt, out, cols, w, cc_none(), B * G * G, 3 * p * p, C);
}

clipcl_status cc_patch_embed_bwd(cc_rt *rt, cc_view dw, cc_view dimg, cc_view dout, cc_view cols,
                                 cc_view w, int B, int S, int p, int C) {
  int G = 0;
  CC_TRY(patch_geometry("patch_embed_bwd", B, S, p, C, &G));
  if (B == 0 || G == 0 || C == 0) return CLIPCL_OK;
  int rows = B * G * G, K = 3 * p * p;
  if (dw.buf) {
    /* dw (C,K) += dout^T (C,rows) @ cols (rows,K) */
    cc_gemm_desc g = {.transA = 1, .M = C, .N = K, .K = rows, .alpha = 1.0f, .beta = 1.0f, .A = dout,
                      .B = cols, .C = dw, .lda = C, .ldb = K, .ldc = K};
    CC_TRY(cc_gemm(rt, &g));
  }
  if (dimg.buf) {
    /* dcols (rows,K) = dout (rows,C) @ w (C,K), then scattered onto dimg */
    cl_mem dc;
    CC_TRY(cc_scratch(rt, EMBED_DCOLS_SLOT, (size_t)rows * (size_t)K * 4, &dc));
    cc_view dcols = {dc, 0};
    cc_gemm_desc g = {.M = rows, .N = K, .K = C, .alpha = 1.0f, .beta = 0.0f, .A = dout, .B = w,
                      .C = dcols, .lda = C, .ldb = K, .ldc = K};
    CC_TRY(cc_gemm(rt, &g));
    CC_TRY(patch_cols(rt, dcols, dimg, B, S, p, G, 1));
  }
  return CLIPCL_OK;
}

static clipcl_status seq_check(const char *what, int B, int T, int C) {
  if (B < 0 || T < 0 || C < 0) return cc_fail(CLIPCL_ERR_ARG, "%s: negative size B=%d T=%d C=%d", what, B, T, C);
  return CLIPCL_OK;
}

clipcl_status cc_vit_embed_fwd(cc_rt *rt, cc_view out, cc_view patches, cc_view cls, cc_view pos, int B,
                               int P, int C) {
  CC_TRY(seq_check("vit_embed_fwd", B, P, C));
  if (B == 0 || C == 0) return CLIPCL_OK;
  if (P == 0) patches = cls; /* never read */
  cc_kernel *k;
  int vec;
  CC_TRY(ek_vec(rt, "vit_embed_fwd", &k, &vec));
  size_t gws[3] = {((size_t)C + vec - 1) / vec, (size_t)P + 1, (size_t)B};
  return CC_LAUNCH(rt, k, 3, gws, NULL, CC_VIEW(out), CC_VIEW(patches), CC_VIEW(cls), CC_VIEW(pos),
                   CC_INT(P), CC_INT(C));
}

clipcl_status cc_vit_embed_bwd(cc_rt *rt, cc_view dpatches, cc_view dcls, cc_view dpos, cc_view dout,
                               int B, int P, int C) {
  CC_TRY(seq_check("vit_embed_bwd", B, P, C));
  int wp = dpatches.buf != NULL, wc = dcls.buf != NULL, wq = dpos.buf != NULL;
  if (B == 0 || C == 0 || !(wp || wc || wq)) return CLIPCL_OK;
  /* unwanted gradients get a harmless stand-in argument; the flags keep the
   * kernel from touching them */
  if (!wp) dpatches = dout;
  if (!wc) dcls = dout;
  if (!wq) dpos = dout;
  cc_kernel *k;
  int vec;
  CC_TRY(ek_vec(rt, "vit_embed_bwd", &k, &vec));
  size_t gws[2] = {((size_t)C + vec - 1) / vec, (size_t)P + 1};
  return CC_LAUNCH(rt, k, 2, gws, NULL, CC_VIEW(dpatches), CC_VIEW(dcls), CC_VIEW(dpos), CC_VIEW(dout),
                   CC_INT(B), CC_INT(P), CC_INT(C), CC_INT(wp), CC_INT(wc), CC_INT(wq));
}

clipcl_status cc_tok_embed_fwd(cc_rt *rt, cc_view out, cc_view ids, cc_view wte, cc_view pos, int B, int T,
                               int C, int V) {
  CC_TRY(seq_check("tok_embed_fwd", B, T, C));
  if (V < 0) return cc_fail(CLIPCL_ERR_ARG, "tok_embed_fwd: negative vocabulary %d", V);
  if (B == 0 || T == 0 || C == 0) return CLIPCL_OK;
  cc_kernel *k;
  int vec;
  CC_TRY(ek_vec(rt, "tok_embed_fwd", &k, &vec));
  size_t gws[3] = {((size_t)C + vec - 1) / vec, (size_t)T, (size_t)B};
  return CC_LAUNCH(rt, k, 3, gws, NULL, CC_VIEW(out), CC_VIEW(ids), CC_VIEW(wte), CC_VIEW(pos), CC_INT(T),
                   CC_INT(C), CC_INT(V));
}

clipcl_status cc_tok_embed_bwd(cc_rt *rt, cc_view dwte, cc_view dpos, cc_view dout, cc_view ids, int B,
                               int T, int C, int V) {
  CC_TRY(seq_check("tok_embed_bwd", B, T, C));
  if (V < 0) return cc_fail(CLIPCL_ERR_ARG, "tok_embed_bwd: negative vocabulary %d", V);
  int ww = dwte.buf != NULL, wq = dpos.buf != NULL;
  if (B == 0 || T == 0 || C == 0 || !(ww || wq)) return CLIPCL_OK;
  if (!ww) dwte = dout;
  if (!wq) dpos = dout;
  cc_kernel *k;
  int vec;
  CC_TRY(ek_vec(rt, "tok_embed_bwd", &k, &vec));
  /* few work-items (one per channel block): small groups so that every
   * core gets some */
  size_t lws = vec == 1 ? 32 : 1, gws = cc_round_up(((size_t)C + vec - 1) / vec, lws);
  return CC_LAUNCH(rt, k, 1, &gws, &lws, CC_VIEW(dwte), CC_VIEW(dpos), CC_VIEW(dout), CC_VIEW(ids),
                   CC_INT(B), CC_INT(T), CC_INT(C), CC_INT(V), CC_INT(ww), CC_INT(wq));
}

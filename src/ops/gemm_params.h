/* gemm_params.h: tile parameters of the CPU GEMM kernels (kernels/gemm.cl)
 * and the plumbing `clipcl tune` uses to search and store them. */
#ifndef CC_GEMM_PARAMS_H
#define CC_GEMM_PARAMS_H
#include <stddef.h>

#include "cl/runtime.h"

typedef struct {
  int MR; /* rows per tile */
  int NV; /* float16 vectors per row: NR = 16 * NV columns */
  int KU; /* k-loop unroll */
  int MB; /* row tiles per scheduling block (cache reuse of A panels) */
  int PA; /* 1: pack A into MR-row panels first; 0: read A in place */
  int KC; /* k block: the product is accumulated in K slices of KC (0: one slice) */
} cc_gemm_params;

/* "MR=6 NV=3 KU=4 MB=16 PA=0 KC=0" (any subset, any order); 0 on success. */
int cc_gemm_params_parse(const char *s, cc_gemm_params *p);
void cc_gemm_params_defines(const cc_gemm_params *p, char *out, size_t n);
/* Where `clipcl tune` stores results: CLIPCL_TUNE_FILE, else the cache dir. */
void cc_gemm_tune_path(char *out, size_t n);
/* Both parameter sets (A stored (M,K), and A transposed); _set_params sets
 * both to p, _set_params2 each (pt NULL: p). */
clipcl_status cc_gemm_set_params(cc_rt *rt, const cc_gemm_params *p);
clipcl_status cc_gemm_set_params2(cc_rt *rt, const cc_gemm_params *p, const cc_gemm_params *pt);
clipcl_status cc_gemm_get_params(cc_rt *rt, cc_gemm_params *p);
clipcl_status cc_gemm_get_params2(cc_rt *rt, cc_gemm_params *p, cc_gemm_params *pt);
#endif

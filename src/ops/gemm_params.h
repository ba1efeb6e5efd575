/* gemm_params.h: tile parameters of the CPU GEMM kernels (kernels/gemm.cl),
 * the tune file that stores them per device, and the tuner (gemm_tune.c)
 * that `clipcl tune` and the automatic first-use tuning run. */
#ifndef CC_GEMM_PARAMS_H
#define CC_GEMM_PARAMS_H
#include <stddef.h>

#include "cl/runtime.h"

typedef struct {
  int MR; /* rows per tile */
  int NV; /* floatv vectors per row: NR = VW * NV columns */
  int KU; /* k-loop unroll */
  int MB; /* row tiles per scheduling block (cache reuse of A panels) */
  int PA; /* 1: pack A into MR-row panels first; 0: read A in place */
  int KC; /* k block: the product is accumulated in K slices of KC (0: one slice) */
  int KI; /* k block inside a work-item, B panel slice kept in L1 (0: none; MB <= 32 then) */
  int VW; /* vector width the row was tuned for (tune file rows; 0: unset) */
  int PF; /* 1: gemm_tile prefetches the next column panel of B into L2 */
} cc_gemm_params;

/* "MR=6 NV=3 KU=4 MB=16 PA=0 KC=0 PF=1" (any subset, any order, VW=n too); 0 on
 * success. */
int cc_gemm_params_parse(const char *s, cc_gemm_params *p);
/* Where `clipcl tune` stores results: CLIPCL_TUNE_FILE, else the cache dir. */
void cc_gemm_tune_path(char *out, size_t n);
/* Both parameter sets (A stored (M,K), and A transposed); _set_params sets
 * both to p, _set_params2 each (pt NULL: p). */
clipcl_status cc_gemm_set_params(cc_rt *rt, const cc_gemm_params *p);
clipcl_status cc_gemm_set_params2(cc_rt *rt, const cc_gemm_params *p, const cc_gemm_params *pt);
clipcl_status cc_gemm_get_params(cc_rt *rt, cc_gemm_params *p);
clipcl_status cc_gemm_get_params2(cc_rt *rt, cc_gemm_params *p, cc_gemm_params *pt);

/* The tune file row for this device (name, driver and vector width): 1 and
 * the two sets when there is one, else 0. */
int cc_gemm_tune_lookup(const clipcl_device_info *in, cc_gemm_params *p, cc_gemm_params *pt);
/* Replaces this device's row in the tune file (atomically; other rows kept). */
clipcl_status cc_gemm_tune_save(const clipcl_device_info *in, const cc_gemm_params *p, const cc_gemm_params *pt);

/* Searches tile parameters on the device (its GEMM state must be the CPU
 * backend), leaves the best applied, and returns them.
 *   CC_TUNE_AUTO   a few candidates around the built-in row on small shapes,
 *                  within a few seconds (first use of a device)
 *   CC_TUNE_QUICK  two tile shapes and the runtime parameters (`clipcl tune --quick`)
 *   CC_TUNE_FULL   the whole grid on the ViT-B/32 shapes (`clipcl tune`)
 * log (may be NULL) receives one line per candidate. */
typedef enum { CC_TUNE_AUTO, CC_TUNE_QUICK, CC_TUNE_FULL } cc_tune_level;
clipcl_status cc_gemm_tune(cc_rt *rt, cc_tune_level level, cc_gemm_params *p, cc_gemm_params *pt,
                           void (*log)(void *user, const char *line), void *user);
#endif

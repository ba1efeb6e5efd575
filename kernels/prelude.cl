/* prelude.cl: prepended to every other kernel file when it is built (see
 * kernel_source in src/cl/runtime.c); holds the vector type the CPU-shaped
 * kernels are written in, and nothing else.
 *
 * VW is the device's float vector width, chosen by the host (src/cl/runtime.c:
 * CLIPCL_VW, else CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT): 16 on AVX-512, 8 on
 * AVX2, 4 on SSE/NEON and GPUs. A floatv is then exactly one machine
 * register on a CPU, so a tile of floatv accumulators sized for the register
 * file stays in registers (a float16 is two ymm registers on AVX2: tiles
 * written in float16 spill there).
 *   floatv, intv      the vector types
 *   VLOAD, VSTORE     vloadN / vstoreN of that width
 *   CONVERT_INTV      convert_intN
 *   hsumv, hmaxv      horizontal sum / maximum (pairwise halves, fixed order)
 *   erf_rv, erf_rs    a fast erf for floatv / float (GELU in elementwise.cl
 *                     and in the GEMM epilogue of gemm.cl)
 */
#ifndef VW
#define VW 16
#endif

#if VW == 16
#define floatv float16
#define intv int16
#define VLOAD vload16
#define VSTORE vstore16
#define CONVERT_INTV convert_int16
#elif VW == 8
#define floatv float8
#define intv int8
#define VLOAD vload8
#define VSTORE vstore8
#define CONVERT_INTV convert_int8
#elif VW == 4
#define floatv float4
#define intv int4
#define VLOAD vload4
#define VSTORE vstore4
#define CONVERT_INTV convert_int4
#else
#error "VW must be 4, 8 or 16"
#endif

static inline float hsumv(floatv v) {
#if VW == 16
  float8 a = v.lo + v.hi;
  float4 b = a.lo + a.hi;
#elif VW == 8
  float4 b = v.lo + v.hi;
#else
  float4 b = v;
#endif
  float2 c = b.lo + b.hi;
  return c.x + c.y;
}

static inline float hmaxv(floatv v) {
#if VW == 16
  float8 a = fmax(v.lo, v.hi);
  float4 b = fmax(a.lo, a.hi);
#elif VW == 8
  float4 b = fmax(v.lo, v.hi);
#else
  float4 b = v;
#endif
  float2 c = fmax(b.lo, b.hi);
  return fmax(c.x, c.y);
}

/* erf(x) ~ x P(x^2) / Q(x^2) for |x| <= 4, +-1 beyond (erf(4) = 1 - 1.5e-8):
 * a rational fit (tests/tools/fit_erf.py) with |error| <= 3.3e-7 in float,
 * ~15 vector operations where PoCL's erf costs about ten times as much; one
 * function per type (erf_rv floatv, erf_rs float). */
#define DEFINE_ERF_RATIONAL(NAME, T)                                                              \
  static inline T NAME(T x) {                                                                     \
    T xc = clamp(x, -4.0f, 4.0f), t = xc * xc;                                                    \
    T p = fma(fma(fma(fma(fma(fma(1.921697169e-08f, t, -1.990590676e-06f), t, 1.555944216e-04f), t, \
                          4.295367670e-03f), t, 5.244089666e-02f), t, 2.139980315e-01f), t,         \
              1.128378677e+00f);                                                                  \
    T q = fma(fma(fma(fma(1.098603398e-03f, t, 1.555581994e-02f), t, 1.208219860e-01f), t,          \
                  5.229784676e-01f), t, 1.0f);                                                    \
    return clamp(xc * p / q, -1.0f, 1.0f);                                                        \
  }
DEFINE_ERF_RATIONAL(erf_rv, floatv)
DEFINE_ERF_RATIONAL(erf_rs, float)

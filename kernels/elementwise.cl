/* elementwise.cl: residual add, axpy, scale, clamp, GELU (erf) and QuickGELU,
 * forward and backward. One work-item per element; n is passed as ulong. */

__kernel void add_fwd(__global float *out, ulong out_off, __global const float *a, ulong a_off,
                      __global const float *b, ulong b_off, ulong n) {
  size_t i = get_global_id(0);
  if (i < n) out[out_off + i] = a[a_off + i] + b[b_off + i];
}

__kernel void axpy(__global float *y, ulong y_off, __global const float *x, ulong x_off,
                   float alpha, ulong n) {
  size_t i = get_global_id(0);
  if (i < n) y[y_off + i] += alpha * x[x_off + i];
}

__kernel void scale(__global float *x, ulong x_off, float alpha, ulong n) {
  size_t i = get_global_id(0);
  if (i < n) x[x_off + i] *= alpha;
}

__kernel void clamp_vals(__global float *x, ulong x_off, float lo, float hi, ulong n) {
  size_t i = get_global_id(0);
  if (i < n) x[x_off + i] = fmin(fmax(x[x_off + i], lo), hi);
}

/* GELU(x) = x * Phi(x), Phi(x) = 0.5 * (1 + erf(x / sqrt(2))).
 * VW elements per work-item through floatv vectors (kernels/prelude.cl):
 * PoCL then calls its vectorised (SLEEF) erf/exp, about 20x faster than one
 * element per item. */
#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

#define GELU_F(x, ERF) (quick ? (x) / (1.0f + exp(-1.702f * (x))) : 0.5f * (x) * (1.0f + ERF((x) * INV_SQRT2)))

__kernel void gelu_fwd(__global float *out, ulong out_off, __global const float *inp, ulong in_off,
                       ulong n, int quick) {
  ulong i = get_global_id(0) * VW;
  if (i + VW <= n) {
    floatv x = VLOAD(0, inp + in_off + i);
    VSTORE(GELU_F(x, erf_rv), 0, out + out_off + i);
  } else {
    for (; i < n; i++) {
      float x = inp[in_off + i];
      out[out_off + i] = GELU_F(x, erf_rs);
    }
  }
}

#define GELU_G(x, s, ERF)                                                                 \
  (quick ? ((s) = 1.0f / (1.0f + exp(-1.702f * (x))), (s) + 1.702f * (x) * (s) * (1.0f - (s))) \
         : 0.5f * (1.0f + ERF((x) * INV_SQRT2)) + (x) * INV_SQRT_2PI * exp(-0.5f * (x) * (x)))

/* dinp (+)= dout * gelu'(inp); accumulate = 0 overwrites dinp. */
__kernel void gelu_bwd(__global float *dinp, ulong din_off, __global const float *inp, ulong in_off,
                       __global const float *dout, ulong dout_off, ulong n, int quick, int accumulate) {
  ulong i = get_global_id(0) * VW;
  if (i + VW <= n) {
    floatv x = VLOAD(0, inp + in_off + i), s;
    floatv g = GELU_G(x, s, erf_rv);
    floatv d = VLOAD(0, dout + dout_off + i) * g;
    if (accumulate) d += VLOAD(0, dinp + din_off + i);
    VSTORE(d, 0, dinp + din_off + i);
  } else {
    for (; i < n; i++) {
      float x = inp[in_off + i], s;
      float d = dout[dout_off + i] * GELU_G(x, s, erf_rs);
      dinp[din_off + i] = accumulate ? dinp[din_off + i] + d : d;
    }
  }
}

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

/* GELU(x) = x * Phi(x), Phi(x) = 0.5 * (1 + erf(x / sqrt(2))). */
#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

__kernel void gelu_fwd(__global float *out, ulong out_off, __global const float *inp, ulong in_off,
                       ulong n, int quick) {
  size_t i = get_global_id(0);
  if (i >= n) return;
  float x = inp[in_off + i];
  float y;
  if (quick) y = x / (1.0f + exp(-1.702f * x));
  else y = 0.5f * x * (1.0f + erf(x * INV_SQRT2));
  out[out_off + i] = y;
}

__kernel void gelu_bwd(__global float *dinp, ulong din_off, __global const float *inp, ulong in_off,
                       __global const float *dout, ulong dout_off, ulong n, int quick) {
  size_t i = get_global_id(0);
  if (i >= n) return;
  float x = inp[in_off + i];
  float g;
  if (quick) {
    float s = 1.0f / (1.0f + exp(-1.702f * x));
    g = s + 1.702f * x * s * (1.0f - s);
  } else {
    g = 0.5f * (1.0f + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * exp(-0.5f * x * x);
  }
  dinp[din_off + i] += dout[dout_off + i] * g;
}

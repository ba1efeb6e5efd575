/* optim.cl: the optimiser step over the flat parameter buffer: the global
 * gradient norm (two stages, deterministic), the clipping factor, and AdamW
 * as torch.optim.AdamW computes it (single-tensor path). The clamp of the
 * logit scale is elementwise.cl's clamp_vals. Schedules live on the host.
 *
 * Defines: CHUNK elements per stage-one partial (a multiple of 16);
 * USE_FP64 when the device has doubles (stage two then sums in double,
 * otherwise in compensated float).
 */
#ifndef CHUNK
#define CHUNK 4096
#endif
#if USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
/* Each operation rounds on its own, as PyTorch's separate tensor ops do;
 * the one fused multiply-add is written out where ATen uses one. */
#pragma OPENCL FP_CONTRACT OFF

/* Stage one: part[c] = sum of x^2 over chunk c, in 16 float lanes (256 terms
 * each for CHUNK 4096, so float keeps ~1e-6 relative), lanes added in a
 * fixed tree. One work-item per chunk; neither the chunking nor the 16 lanes
 * (held as 16/VW floatv) depend on the device, so the norm has the same bits
 * on every run and every vector width. */
__kernel void sumsq_chunks(__global float *part, __global const float *x, ulong x_off, ulong n) {
  ulong c = get_global_id(0);
  ulong start = c * CHUNK;
  if (start >= n) return;
  __global const float *p = x + x_off + start;
  ulong len = min((ulong)CHUNK, n - start);
  floatv acc[16 / VW]; /* the 16 lanes as 16/VW machine vectors */
#pragma unroll
  for (int s = 0; s < 16 / VW; s++) acc[s] = (floatv)(0.0f);
  ulong j = 0;
  for (; j + 16 <= len; j += 16) {
#pragma unroll
    for (int s = 0; s < 16 / VW; s++) {
      floatv v = VLOAD(s, p + j);
      acc[s] = fma(v, v, acc[s]);
    }
  }
  /* lanes l and l+8 first, then l and l+4, ...: the same tree at every width */
#if VW == 16
  float8 a8 = acc[0].lo + acc[0].hi;
#elif VW == 8
  float8 a8 = acc[0] + acc[1];
#else
  float8 a8 = (float8)(acc[0] + acc[2], acc[1] + acc[3]);
#endif
  float4 a4 = a8.lo + a8.hi;
  float2 a2 = a4.lo + a4.hi;
  float s = a2.x + a2.y;
  for (; j < len; j++) s = fma(p[j], p[j], s);
  part[c] = s;
}

/* Stage two: out[0] = sqrt(sum part[0..nparts)) by one work-item in index order. */
__kernel void sumsq_finish(__global float *out, ulong out_off, __global const float *part, ulong nparts) {
  if (get_global_id(0) != 0) return;
#if USE_FP64
  double s = 0.0;
  for (ulong i = 0; i < nparts; i++) s += (double)part[i];
  out[out_off] = (float)sqrt(s);
#else
  float s = 0.0f, comp = 0.0f; /* Kahan */
  for (ulong i = 0; i < nparts; i++) {
    float y = part[i] - comp;
    float t = s + y;
    comp = (t - s) - y;
    s = t;
  }
  out[out_off] = sqrt(s);
#endif
}

/* scale[0] = min(1, max_norm / (norm[0] + 1e-6)), clip_grad_norm_'s factor. */
__kernel void clip_factor(__global float *scale, ulong scale_off, __global const float *norm, ulong norm_off,
                          float max_norm) {
  if (get_global_id(0) != 0) return;
  float coef = max_norm / (norm[norm_off] + 1e-6f);
  scale[scale_off] = fmin(coef, 1.0f);
}

/* One AdamW step, in torch.optim.AdamW's order of operations:
 *   p *= 1 - lr*wd                       (mask 1 only)
 *   m  = m*beta1 + (1-beta1)*g
 *   v  = v*beta2 + (1-beta2)*g*g
 *   p += -step_size * m / (sqrt(v)/bc2_sqrt + eps)
 * with step_size = lr/(1-beta1^t), bc2_sqrt = sqrt(1-beta2^t) computed on the
 * host in double, as Python does. Mask 2 (frozen) leaves p, m, v as they
 * were. g is scaled by gscale[0] first when has_gscale (gradient clipping).
 * Each work-item takes VW consecutive elements as floatv vectors: 3.5x the
 * speed of one element per work-item on PoCL; the tail goes one by one. */
static void adamw_one(__global float *p, __global const float *g, __global float *m, __global float *v, uchar k,
                      float gs, float decay, float beta1, float one_minus_beta1, float beta2,
                      float one_minus_beta2, float neg_step_size, float bc2_sqrt, float eps) {
  if (k == 2) return;
  float gi = *g * gs;
  float pi = *p;
  if (k == 1) pi *= decay;
  float mi = fma(gi, one_minus_beta1, *m * beta1); /* ATen's add(alpha) is a fused multiply-add */
  float vi = *v * beta2 + one_minus_beta2 * gi * gi;
  *m = mi;
  *v = vi;
  float denom = sqrt(vi) / bc2_sqrt + eps;
  *p = pi + neg_step_size * (mi / denom);
}

__kernel void adamw(__global float *p, ulong p_off, __global const float *g, ulong g_off, __global float *m,
                    ulong m_off, __global float *v, ulong v_off, __global const uchar *mask, ulong mask_off,
                    __global const float *gscale, ulong gscale_off, int has_gscale, ulong n, float decay,
                    float beta1, float one_minus_beta1, float beta2, float one_minus_beta2, float neg_step_size,
                    float bc2_sqrt, float eps) {
  ulong i = get_global_id(0) * VW;
  if (i >= n) return;
  /* multiplying by 1.0f is exact, so the unclipped path is unchanged */
  float gs = has_gscale ? gscale[gscale_off] : 1.0f;
  p += p_off + i, g += g_off + i, m += m_off + i, v += v_off + i, mask += mask_off + i;
  if (i + VW > n) {
    for (ulong l = 0; l < n - i; l++)
      adamw_one(p + l, g + l, m + l, v + l, mask[l], gs, decay, beta1, one_minus_beta1, beta2, one_minus_beta2,
                neg_step_size, bc2_sqrt, eps);
    return;
  }
  intv k = CONVERT_INTV(VLOAD(0, mask));
  floatv gi = VLOAD(0, g) * gs;
  floatv p0 = VLOAD(0, p), m0 = VLOAD(0, m), v0 = VLOAD(0, v);
  floatv pi = select(p0, p0 * decay, k == 1);
  floatv mi = fma(gi, one_minus_beta1, m0 * beta1);
  floatv vi = v0 * beta2 + one_minus_beta2 * gi * gi;
  floatv denom = sqrt(vi) / bc2_sqrt + eps;
  floatv pn = pi + neg_step_size * (mi / denom);
  intv frozen = k == 2;
  VSTORE(select(mi, m0, frozen), 0, m);
  VSTORE(select(vi, v0, frozen), 0, v);
  VSTORE(select(pn, p0, frozen), 0, p);
}

/* layernorm.cl: LayerNorm over the last dimension (eps 1e-5, biased variance,
 * as torch.nn.LayerNorm), forward and backward, with deterministic gain and
 * bias gradients. Not here: the choice of shape parameters (src/ops/layernorm.c).
 *
 * Two shapes of the same arithmetic, chosen by -DLANES:
 *  LANES == 1  CPU devices (PoCL): one work-item owns a whole row and walks
 *              it in floatv vectors (kernels/prelude.cl: one machine
 *              register); no local memory, no barriers (both cost on a CPU).
 *  LANES > 1   GPUs: a work-group of LANES work-items per row, each taking
 *              every LANES-th channel (coalesced), row sums reduced in local
 *              memory. LANES must be a power of two.
 * Statistics are two-pass (mean, then the mean of squared deviations), which
 * stays accurate when |mean| >> std, unlike E[x^2] - E[x]^2; the mean itself
 * is summed relative to the row's first element for the same reason.
 *
 * Backward: with xh = (x - mean) * rstd and g = dout * w,
 *   dinp += rstd * (g - mean(g) - xh * mean(g * xh))
 *   dw   += sum_rows dout * xh,   db += sum_rows dout.
 * The row sums for dw/db use a fixed partition of rows into chunks: each
 * chunk writes its partial sums to `part` (nchunks, 2, C), and ln_bwd_reduce
 * adds the partials chunk by chunk in order: no atomics, same bits every run.
 * Letters: N rows, C channels. */

#ifndef LANES
#define LANES 1
#endif
#define LN_EPS 1e-5f

#if LANES == 1

/* One work-item per row; gws = N. */
__kernel void ln_fwd(__global float *out, ulong out_off, __global float *mean, ulong mean_off,
                     __global float *rstd, ulong rstd_off, __global const float *inp, ulong in_off,
                     __global const float *w, ulong w_off, __global const float *b, ulong b_off,
                     int N, int C) {
  int r = get_global_id(0);
  if (r >= N) return;
  __global const float *x = inp + in_off + (ulong)r * C;
  __global float *y = out + out_off + (ulong)r * C;
  __global const float *wp = w + w_off;
  __global const float *bp = b + b_off;
  int CV = C & ~(VW - 1);

  /* Sum x - x[0], not x: when |mean| >> std the terms stay small and the
   * float sum keeps its precision. Two accumulators hide the add latency. */
  float piv = x[0];
  floatv a0 = 0.0f, a1 = 0.0f;
  int c = 0;
  for (; c + 2 * VW <= CV; c += 2 * VW) {
    a0 += VLOAD(0, x + c) - piv;
    a1 += VLOAD(0, x + c + VW) - piv;
  }
  if (c < CV) a0 += VLOAD(0, x + c) - piv;
  float s = hsumv(a0 + a1);
  for (c = CV; c < C; c++) s += x[c] - piv;
  float m = piv + s / (float)C;

  floatv v0 = 0.0f;
  for (c = 0; c < CV; c += VW) {
    floatv d = VLOAD(0, x + c) - m;
    v0 = mad(d, d, v0);
  }
  float v = hsumv(v0);
  for (c = CV; c < C; c++) {
    float d = x[c] - m;
    v = mad(d, d, v);
  }
  float rs = 1.0f / sqrt(v / (float)C + LN_EPS);

  for (c = 0; c < CV; c += VW) {
    floatv xh = (VLOAD(0, x + c) - m) * rs;
    VSTORE(mad(xh, VLOAD(0, wp + c), VLOAD(0, bp + c)), 0, y + c);
  }
  for (c = CV; c < C; c++) y[c] = mad((x[c] - m) * rs, wp[c], bp[c]);
  mean[mean_off + r] = m;
  rstd[rstd_off + r] = rs;
}

/* One work-item per chunk of `rpc` rows; gws = nchunks. */
__kernel void ln_bwd(__global float *dinp, ulong din_off, __global float *part,
                     __global const float *dout, ulong dout_off, __global const float *inp,
                     ulong in_off, __global const float *w, ulong w_off,
                     __global const float *mean, ulong mean_off, __global const float *rstd,
                     ulong rstd_off, int N, int C, int rpc, int want_dinp, int want_dwb) {
  int k = get_global_id(0);
  int r0 = k * rpc, r1 = min(N, r0 + rpc);
  if (r0 >= N) return;
  __global const float *wp = w + w_off;
  __global float *pw = part + (ulong)k * 2 * C, *pb = pw + C;
  int CV = C & ~(VW - 1);
  int c;
  if (want_dwb) {
    for (c = 0; c < CV; c += VW) {
      VSTORE((floatv)0.0f, 0, pw + c);
      VSTORE((floatv)0.0f, 0, pb + c);
    }
    for (c = CV; c < C; c++) pw[c] = pb[c] = 0.0f;
  }
  float invC = 1.0f / (float)C;
  for (int r = r0; r < r1; r++) {
    __global const float *x = inp + in_off + (ulong)r * C;
    __global const float *dy = dout + dout_off + (ulong)r * C;
    float m = mean[mean_off + r], rs = rstd[rstd_off + r];
    if (want_dinp) {
      floatv sg = 0.0f, sgx = 0.0f;
      for (c = 0; c < CV; c += VW) {
        floatv g = VLOAD(0, dy + c) * VLOAD(0, wp + c);
        sg += g;
        sgx = mad(g, (VLOAD(0, x + c) - m) * rs, sgx);
      }
      float s1 = hsumv(sg), s2 = hsumv(sgx);
      for (c = CV; c < C; c++) {
        float g = dy[c] * wp[c];
        s1 += g;
        s2 = mad(g, (x[c] - m) * rs, s2);
      }
      s1 *= invC;
      s2 *= invC;
      __global float *dx = dinp + din_off + (ulong)r * C;
      for (c = 0; c < CV; c += VW) {
        floatv d = VLOAD(0, dy + c);
        floatv xh = (VLOAD(0, x + c) - m) * rs;
        floatv g = d * VLOAD(0, wp + c);
        VSTORE(mad(rs, g - s1 - xh * s2, VLOAD(0, dx + c)), 0, dx + c);
        if (want_dwb) {
          VSTORE(mad(d, xh, VLOAD(0, pw + c)), 0, pw + c);
          VSTORE(VLOAD(0, pb + c) + d, 0, pb + c);
        }
      }
      for (c = CV; c < C; c++) {
        float d = dy[c], xh = (x[c] - m) * rs;
        dx[c] += rs * (d * wp[c] - s1 - xh * s2);
        if (want_dwb) {
          pw[c] = mad(d, xh, pw[c]);
          pb[c] += d;
        }
      }
    } else {
      for (c = 0; c < CV; c += VW) {
        floatv d = VLOAD(0, dy + c);
        floatv xh = (VLOAD(0, x + c) - m) * rs;
        VSTORE(mad(d, xh, VLOAD(0, pw + c)), 0, pw + c);
        VSTORE(VLOAD(0, pb + c) + d, 0, pb + c);
      }
      for (c = CV; c < C; c++) {
        float d = dy[c];
        pw[c] = mad(d, (x[c] - m) * rs, pw[c]);
        pb[c] += d;
      }
    }
  }
}

#else /* LANES > 1 */

/* Sum over the work-group; every lane gets the total. `red` holds LANES. */
static inline float2 group_sum2(__local float2 *red, float2 v, int l) {
  red[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int o = LANES / 2; o > 0; o >>= 1) {
    if (l < o) red[l] += red[l + o];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float2 t = red[0];
  barrier(CLK_LOCAL_MEM_FENCE); /* red is reused by the next call */
  return t;
}

/* One work-group per row; gws = N * LANES. */
__kernel __attribute__((reqd_work_group_size(LANES, 1, 1))) void ln_fwd(
    __global float *out, ulong out_off, __global float *mean, ulong mean_off,
    __global float *rstd, ulong rstd_off, __global const float *inp, ulong in_off,
    __global const float *w, ulong w_off, __global const float *b, ulong b_off, int N, int C) {
  __local float2 red[LANES];
  int r = get_group_id(0), l = get_local_id(0);
  __global const float *x = inp + in_off + (ulong)r * C;
  __global float *y = out + out_off + (ulong)r * C;
  float piv = x[0], s = 0.0f; /* pivot: see the LANES == 1 kernel */
  for (int c = l; c < C; c += LANES) s += x[c] - piv;
  float m = piv + group_sum2(red, (float2)(s, 0.0f), l).x / (float)C;
  float v = 0.0f;
  for (int c = l; c < C; c += LANES) {
    float d = x[c] - m;
    v = mad(d, d, v);
  }
  float rs = 1.0f / sqrt(group_sum2(red, (float2)(v, 0.0f), l).x / (float)C + LN_EPS);
  for (int c = l; c < C; c += LANES) y[c] = mad((x[c] - m) * rs, w[w_off + c], b[b_off + c]);
  if (l == 0) {
    mean[mean_off + r] = m;
    rstd[rstd_off + r] = rs;
  }
}

/* One work-group per chunk of `rpc` rows; gws = nchunks * LANES. Lane l owns
 * channels l, l+LANES, ... of the partials, so lanes never share a word. */
__kernel __attribute__((reqd_work_group_size(LANES, 1, 1))) void ln_bwd(
    __global float *dinp, ulong din_off, __global float *part, __global const float *dout,
    ulong dout_off, __global const float *inp, ulong in_off, __global const float *w,
    ulong w_off, __global const float *mean, ulong mean_off, __global const float *rstd,
    ulong rstd_off, int N, int C, int rpc, int want_dinp, int want_dwb) {
  __local float2 red[LANES];
  int k = get_group_id(0), l = get_local_id(0);
  int r0 = k * rpc, r1 = min(N, r0 + rpc);
  __global float *pw = part + (ulong)k * 2 * C, *pb = pw + C;
  if (want_dwb)
    for (int c = l; c < C; c += LANES) pw[c] = pb[c] = 0.0f;
  float invC = 1.0f / (float)C;
  for (int r = r0; r < r1; r++) { /* uniform across the group: barriers are safe */
    __global const float *x = inp + in_off + (ulong)r * C;
    __global const float *dy = dout + dout_off + (ulong)r * C;
    float m = mean[mean_off + r], rs = rstd[rstd_off + r];
    float2 s = (float2)(0.0f, 0.0f);
    if (want_dinp) {
      for (int c = l; c < C; c += LANES) {
        float g = dy[c] * w[w_off + c];
        s.x += g;
        s.y = mad(g, (x[c] - m) * rs, s.y);
      }
      s = group_sum2(red, s, l) * invC;
    }
    __global float *dx = dinp + din_off + (ulong)r * C;
    for (int c = l; c < C; c += LANES) {
      float d = dy[c], xh = (x[c] - m) * rs;
      if (want_dinp) dx[c] += rs * (d * w[w_off + c] - s.x - xh * s.y);
      if (want_dwb) {
        pw[c] = mad(d, xh, pw[c]);
        pb[c] += d;
      }
    }
  }
}

#endif

/* dw[c] += sum_k part[k][0][c], db[c] += sum_k part[k][1][c], k in order.
 * One work-item per channel; gws >= C. */
__kernel void ln_bwd_reduce(__global float *dw, ulong dw_off, __global float *db, ulong db_off,
                            __global const float *part, int nchunks, int C, int want_dw,
                            int want_db) {
  int c = get_global_id(0);
  if (c >= C) return;
  float sw = 0.0f, sb = 0.0f;
  for (int k = 0; k < nchunks; k++) {
    sw += part[(ulong)k * 2 * C + c];
    sb += part[(ulong)k * 2 * C + C + c];
  }
  if (want_dw) dw[dw_off + c] += sw;
  if (want_db) db[db_off + c] += sb;
}

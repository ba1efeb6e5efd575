/* attention.cl: the non-GEMM parts of multi-head attention: splitting the
 * packed q|k|v rows into per-head matrices, merging per-head results back
 * into rows, and the row softmax (forward with causal mask, backward).
 * The two batched matrix products per direction are cc_gemm calls made by
 * src/ops/attention.c; nothing here multiplies matrices.
 *
 * Letters: B batch, T tokens, C width, H heads, D = C/H head width,
 * S number of packed parts (3 for q|k|v, 1 for a single tensor).
 * Dimension 0 of every launch walks the fastest-moving index of both source
 * and destination, so PoCL's work-group vectoriser sees unit strides.
 */

/* dst (S,B,H,T,D) = src rows (B,T,ld) whose columns s*C + h*D + d hold part s,
 * head h. One work-item per (c in [0,C), t, s*B+b). */
__kernel void heads_split(__global float *dst, ulong dst_off, __global const float *src, ulong src_off,
                          int ld, int B, int T, int C, int H) {
  int c = get_global_id(0), t = get_global_id(1), sb = get_global_id(2);
  if (c >= C) return;
  int D = C / H, h = c / D, d = c - h * D;
  int s = sb / B, b = sb - s * B;
  float x = src[src_off + ((ulong)b * T + t) * ld + (ulong)s * C + c];
  dst[dst_off + (((ulong)sb * H + h) * T + t) * D + d] = x;
}

/* dst rows (B,T,ld), columns s*C + h*D + d, (+)= src (S,B,H,T,D).
 * One work-item per (c, t, s*B+b). */
__kernel void heads_merge(__global float *dst, ulong dst_off, int ld, __global const float *src,
                          ulong src_off, int B, int T, int C, int H, int accumulate) {
  int c = get_global_id(0), t = get_global_id(1), sb = get_global_id(2);
  if (c >= C) return;
  int D = C / H, h = c / D, d = c - h * D;
  int s = sb / B, b = sb - s * B;
  float x = src[src_off + (((ulong)sb * H + h) * T + t) * D + d];
  ulong o = dst_off + ((ulong)b * T + t) * ld + (ulong)s * C + c;
  if (accumulate) dst[o] += x;
  else dst[o] = x;
}

/* In place over rows of length T: att = softmax(att), entries j > i masked
 * with -inf when causal (i = row index modulo T, the query position). The
 * scale 1/sqrt(D) is already in the scores (GEMM alpha). Row maximum
 * subtracted first, as PyTorch's softmax does. One work-item per row. */
__kernel void attn_softmax_fwd(__global float *att, ulong att_off, ulong rows, int T, int causal) {
  ulong r = get_global_id(0);
  if (r >= rows) return;
  __global float *a = att + att_off + r * (ulong)T;
  int n = causal ? (int)(r % (ulong)T) + 1 : T; /* unmasked prefix */
  float m = -INFINITY;
  for (int j = 0; j < n; j++) m = fmax(m, a[j]);
  float s = 0.0f;
  for (int j = 0; j < n; j++) {
    float e = exp(a[j] - m);
    a[j] = e;
    s += e;
  }
  for (int j = 0; j < n; j++) a[j] /= s; /* divide, as PyTorch does */
  for (int j = n; j < T; j++) a[j] = 0.0f;
}

/* In place: datt becomes dS = att * (datt - sum_j att_j * datt_j), the
 * gradient with respect to the (scaled, masked) scores; masked entries have
 * att = 0 and get 0. One work-item per row. */
__kernel void attn_softmax_bwd(__global float *datt, ulong datt_off, __global const float *att,
                               ulong att_off, ulong rows, int T, int causal) {
  ulong r = get_global_id(0);
  if (r >= rows) return;
  __global float *g = datt + datt_off + r * (ulong)T;
  __global const float *a = att + att_off + r * (ulong)T;
  int n = causal ? (int)(r % (ulong)T) + 1 : T;
  float dot = 0.0f;
  for (int j = 0; j < n; j++) dot += a[j] * g[j];
  for (int j = 0; j < n; j++) g[j] = a[j] * (g[j] - dot);
  for (int j = n; j < T; j++) g[j] = 0.0f;
}

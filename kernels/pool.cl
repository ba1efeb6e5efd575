/* pool.cl: picking one row per sequence: argmax of token ids (the EOT
 * position in CLIP text), gather of that row (or of the class token) and its
 * backward scatter. Every sequence owns its rows, so the scatter needs no
 * atomics. Indices outside [0,T) gather zeros and scatter nothing: the kernels
 * never read or write out of bounds, whatever the index buffer holds.
 * Letters: B sequences, T positions, C channels. */

/* idx[b] = first t with the largest ids[b,t] (strict > keeps the first, as
 * torch.argmax does). gws >= B; T >= 1. */
__kernel void argmax_rows(__global int *idx, ulong idx_off, __global const int *ids, ulong ids_off,
                          int B, int T) {
  int b = get_global_id(0);
  if (b >= B) return;
  __global const int *row = ids + ids_off + (ulong)b * T;
  int best = row[0], at = 0;
  for (int t = 1; t < T; t++) {
    int v = row[t];
    if (v > best) {
      best = v;
      at = t;
    }
  }
  idx[idx_off + b] = at;
}

/* out[b,c] = x[b, i, c], i = has_idx ? idx[b] : 0. gws = (C, B). */
__kernel void gather_rows_fwd(__global float *out, ulong out_off, __global const float *x,
                              ulong x_off, __global const int *idx, ulong idx_off, int has_idx,
                              int T, int C) {
  int c = get_global_id(0), b = get_global_id(1);
  if (c >= C) return;
  int i = has_idx ? idx[idx_off + b] : 0;
  float v = 0.0f;
  if (i >= 0 && i < T) v = x[x_off + ((ulong)b * T + i) * C + c];
  out[out_off + (ulong)b * C + c] = v;
}

/* dx[b, i, c] += dout[b, c]. gws = (C, B). */
__kernel void gather_rows_bwd(__global float *dx, ulong dx_off, __global const float *dout,
                              ulong dout_off, __global const int *idx, ulong idx_off, int has_idx,
                              int T, int C) {
  int c = get_global_id(0), b = get_global_id(1);
  if (c >= C) return;
  int i = has_idx ? idx[idx_off + b] : 0;
  if (i >= 0 && i < T) dx[dx_off + ((ulong)b * T + i) * C + c] += dout[dout_off + (ulong)b * C + c];
}

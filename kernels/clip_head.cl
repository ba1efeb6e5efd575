/* clip_head.cl: the CLIP head after the towers: L2 normalisation of the
 * embeddings, the logit-scale multiply, row cross-entropy (forward saves the
 * softmax, backward turns it into the gradient), the ordered final sums that
 * make the loss and d(logit_scale) deterministic, and a blocked transpose.
 * The logits GEMM itself is a cc_gemm call (src/ops/clip_head.c).
 *
 * Row kernels (one work-item per row) walk their row with floatv vectors
 * (kernels/prelude.cl): a row is contiguous, so the vectors load unit-stride
 * into whole machine registers. Their lane order is fixed for a vector
 * width, so results do not depend on how work-groups are scheduled. Elementwise kernels put the column index in
 * dimension 0.
 * Letters: N rows, E embedding width, M logits columns.
 */

#define L2_EPS 1e-12f /* F.normalize's default eps: divide by max(norm, eps) */

static float row_sumsq(__global const float *x, int n) {
  floatv acc = (floatv)(0.0f);
  int j = 0;
  for (; j + VW <= n; j += VW) {
    floatv v = VLOAD(0, x + j);
    acc = fma(v, v, acc);
  }
  float s = hsumv(acc);
  for (; j < n; j++) s = fma(x[j], x[j], s);
  return s;
}

static float row_dot(__global const float *x, __global const float *y, int n) {
  floatv acc = (floatv)(0.0f);
  int j = 0;
  for (; j + VW <= n; j += VW) acc = fma(VLOAD(0, x + j), VLOAD(0, y + j), acc);
  float s = hsumv(acc);
  for (; j < n; j++) s = fma(x[j], y[j], s);
  return s;
}

/* out = inp / max(||inp||, eps) per row; norm saves the unclamped norm. */
__kernel void l2norm_fwd(__global float *out, ulong out_off, __global float *norm, ulong norm_off,
                         __global const float *inp, ulong inp_off, int N, int E) {
  int r = get_global_id(0);
  if (r >= N) return;
  __global const float *x = inp + inp_off + (ulong)r * E;
  __global float *y = out + out_off + (ulong)r * E;
  float nrm = sqrt(row_sumsq(x, E));
  norm[norm_off + r] = nrm;
  float den = fmax(nrm, L2_EPS);
  int j = 0;
  for (; j + VW <= E; j += VW) VSTORE(VLOAD(0, x + j) / den, 0, y + j);
  for (; j < E; j++) y[j] = x[j] / den;
}

/* dinp += (dout - out * (out . dout)) / norm, or dout / eps where the norm
 * was clamped (then the denominator is a constant). */
__kernel void l2norm_bwd(__global float *dinp, ulong dinp_off, __global const float *dout, ulong dout_off,
                         __global const float *out, ulong out_off, __global const float *norm,
                         ulong norm_off, int N, int E) {
  int r = get_global_id(0);
  if (r >= N) return;
  __global const float *dy = dout + dout_off + (ulong)r * E;
  __global const float *y = out + out_off + (ulong)r * E;
  __global float *dx = dinp + dinp_off + (ulong)r * E;
  float nrm = norm[norm_off + r];
  float dot = nrm >= L2_EPS ? row_dot(y, dy, E) : 0.0f;
  float den = fmax(nrm, L2_EPS);
  int j = 0;
  for (; j + VW <= E; j += VW) {
    floatv g = (VLOAD(0, dy + j) - VLOAD(0, y + j) * dot) / den;
    VSTORE(VLOAD(0, dx + j) + g, 0, dx + j);
  }
  for (; j < E; j++) dx[j] += (dy[j] - y[j] * dot) / den;
}

/* out = exp(s) * inp elementwise (n elements), s = scale[0] read on the
 * device: the scaled copy is what PyTorch multiplies, `logit_scale.exp() *
 * features`, before the matrix product. */
__kernel void scale_by_exp(__global float *out, ulong out_off, __global const float *inp, ulong inp_off,
                           __global const float *scale, ulong scale_off, ulong n) {
  ulong i = get_global_id(0);
  if (i >= n) return;
  out[out_off + i] = exp(scale[scale_off]) * inp[inp_off + i];
}

/* part[r] = sum_j a[r,j] * b[r,j] over rows of length M: stage one of
 * sum(dlogits * logits). */
__kernel void row_dots(__global float *part, __global const float *a, ulong a_off, __global const float *b,
                       ulong b_off, int N, int M) {
  int r = get_global_id(0);
  if (r >= N) return;
  part[r] = row_dot(a + a_off + (ulong)r * M, b + b_off + (ulong)r * M, M);
}

/* out[0] = alpha * sum(part[0..n)) (+ out[0] when accumulate), summed in
 * index order by one work-item: stage two of every head reduction. */
__kernel void ordered_sum(__global float *out, ulong out_off, __global const float *part, int n, float alpha,
                          int accumulate) {
  if (get_global_id(0) != 0) return;
  float s = 0.0f, c = 0.0f; /* Kahan: n is up to the batch size */
  for (int i = 0; i < n; i++) {
    float y = part[i] - c;
    float t = s + y;
    c = (t - s) - y;
    s = t;
  }
  float r = alpha * s;
  if (accumulate) out[out_off] += r;
  else out[out_off] = r;
}

/* Row cross-entropy: lse = max + log(sum exp(x - max)); part[r] = lse -
 * x[label]; probs = exp(x - lse) (PyTorch's exp(log_softmax)). */
__kernel void ce_fwd(__global float *part, __global float *probs, ulong probs_off, __global const float *logits,
                     ulong logits_off, int N, int M, int label_offset) {
  int r = get_global_id(0);
  if (r >= N) return;
  __global const float *x = logits + logits_off + (ulong)r * M;
  __global float *p = probs + probs_off + (ulong)r * M;
  floatv mv = (floatv)(-INFINITY);
  int j = 0;
  for (; j + VW <= M; j += VW) mv = fmax(mv, VLOAD(0, x + j));
  float m = hmaxv(mv);
  for (; j < M; j++) m = fmax(m, x[j]);
  floatv acc = (floatv)(0.0f);
  for (j = 0; j + VW <= M; j += VW) acc += exp(VLOAD(0, x + j) - m);
  float s = hsumv(acc);
  for (; j < M; j++) s += exp(x[j] - m);
  float lse = m + log(s);
  for (j = 0; j + VW <= M; j += VW) VSTORE(exp(VLOAD(0, x + j) - lse), 0, p + j);
  for (; j < M; j++) p[j] = exp(x[j] - lse);
  part[r] = lse - x[r + label_offset];
}

/* dlogits[r,j] += coef * (probs[r,j] - (j == r + label_offset)), coef =
 * weight / N. One work-item per element, j in dimension 0. */
__kernel void ce_bwd(__global float *dlogits, ulong dl_off, __global const float *probs, ulong probs_off, int N,
                     int M, int label_offset, float coef) {
  int j = get_global_id(0), r = get_global_id(1);
  if (j >= M || r >= N) return;
  ulong o = (ulong)r * M + j;
  float t = j == r + label_offset ? 1.0f : 0.0f;
  dlogits[dl_off + o] += coef * (probs[probs_off + o] - t);
}

/* out (Cc,R) = inp (R,Cc)^T in 16 x 16 blocks: each work-item reads 16 row
 * pieces and writes 16 row pieces, all contiguous. */
#define TB 16
__kernel void transpose(__global float *out, ulong out_off, __global const float *inp, ulong inp_off, int R,
                        int Cc) {
  int bj = get_global_id(0), bi = get_global_id(1);
  int i0 = bi * TB, j0 = bj * TB;
  if (i0 >= R || j0 >= Cc) return;
  float tile[TB][TB];
  int ni = min(TB, R - i0), nj = min(TB, Cc - j0);
  for (int i = 0; i < ni; i++)
    for (int j = 0; j < nj; j++) tile[i][j] = inp[inp_off + (ulong)(i0 + i) * Cc + j0 + j];
  for (int j = 0; j < nj; j++)
    for (int i = 0; i < ni; i++) out[out_off + (ulong)(j0 + j) * R + i0 + i] = tile[i][j];
}

/* siglip.cl: SigLIP's sigmoid loss over one block of logits (Zhai et al.,
 * open_clip's SigLipLoss): with z = logits + bias and labels y = +1 on the
 * positive pairs, -1 elsewhere, the loss is coef * sum softplus(-y z) and
 * its gradient dz = coef * (-y) sigmoid(-y z), per row in one work-item, the
 * row sums (loss and d bias) left as partials for an ordered final sum. The
 * logits arrive without the bias (exp(s) a b^T, what d/ds needs); the bias
 * is read on the device. The logits GEMMs and d/ds are clip_head.c's.
 * Letters: N rows (images), M columns (texts). */

/* softplus(t) = log(1 + exp(t)), without overflow for large |t| */
static float softplus(float t) { return fmax(t, 0.0f) + log1p(exp(-fabs(t))); }

/* part[r] = sum_j softplus(-y z), part[N + r] = sum_j dz (both Kahan-summed
 * in column order); dlogits (when grads) = dz. Positive pairs are (r, r +
 * diag); diag < 0: every pair is negative (another rank's texts). */
__kernel void siglip_rows(__global float *part, __global float *dlogits, ulong dl_off,
                          __global const float *logits, ulong lg_off, __global const float *bias, ulong bias_off,
                          int N, int M, int diag, float coef, int grads) {
  int r = get_global_id(0);
  if (r >= N) return;
  float b = bias[bias_off];
  __global const float *x = logits + lg_off + (ulong)r * M;
  __global float *dx = dlogits + dl_off + (ulong)r * M;
  int pos = diag >= 0 ? r + diag : -1;
  float ls = 0.0f, lc = 0.0f, gs = 0.0f, gc = 0.0f;
  for (int j = 0; j < M; j++) {
    float y = j == pos ? 1.0f : -1.0f;
    float t = -y * (x[j] + b);
    float sp = softplus(t) - lc;
    float ns = ls + sp;
    lc = (ns - ls) - sp;
    ls = ns;
    float g = coef * (-y) / (1.0f + exp(-t)); /* d softplus(t)/dz = sigmoid(t) * (-y) */
    if (grads) dx[j] = g;
    float gy = g - gc;
    float ng = gs + gy;
    gc = (ng - gs) - gy;
    gs = ng;
  }
  part[r] = ls;
  part[N + r] = gs;
}

/* out[0] (+)= alpha * sum(part[off .. off+n)) in index order, one work-item */
__kernel void siglip_sum(__global float *out, ulong out_off, __global const float *part, int off, int n,
                         float alpha, int accumulate) {
  if (get_global_id(0) != 0) return;
  float s = 0.0f, c = 0.0f;
  for (int i = 0; i < n; i++) {
    float y = part[off + i] - c;
    float t = s + y;
    c = (t - s) - y;
    s = t;
  }
  float v = alpha * s;
  if (accumulate) out[out_off] += v;
  else out[out_off] = v;
}

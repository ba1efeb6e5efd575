/* attention.cl: multi-head attention kernels, in two sets (the host code in
 * src/ops/attention.c picks one per device):
 *  - GEMM path: splitting the packed q|k|v rows into per-head matrices,
 *    merging per-head results back into rows, and the row softmax (forward
 *    with causal mask, backward); the two batched products per direction are
 *    cc_gemm calls. One work-item per element or row: the GPU shape.
 *  - CPU path (below the second banner): whole attention per head with
 *    floatv register tiles, no per-element work-items.
 *
 * Letters: B batch, T tokens, C width, H heads, D = C/H head width,
 * S number of packed parts (3 for q|k|v, 1 for a single tensor), z = b*H + h.
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

/* ==== CPU path ============================================================
 * On a CPU device one work-item per element costs ~10 ns (PoCL's work-group
 * loop does not vectorise these index patterns), and cc_gemm's packing
 * dominates products as small as T x T x D. So on CPUs attention runs as a
 * few kernels whose work-items each own one head (or a block of its query
 * rows) and walk contiguous rows with floatv vectors (kernels/prelude.cl):
 * the score tile is an MR x 16 register tile over k^T (transposed into
 * scratch so that 16 keys load as 16/VW vectors), softmax and its backward
 * go along contiguous rows,
 * and every product with a T-long coefficient row or column is a broadcast
 * multiply-add over D-wide rows. Work-group size 1: a work-item is one call.
 * Layouts as above; Xt (B*H, D, TP) is a head transposed, rows padded to TP
 * (a multiple of 16) so that tiles never load past a row. */

#define MR 4 /* query rows per score tile */

/* dst (S,B,H,T,D) from rows (B,T,ld): one work-item per row (t, s*B+b),
 * copying its H pieces of D contiguous floats. */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void heads_split_rows(
    __global float *dst, ulong dst_off, __global const float *src, ulong src_off, int ld, int B, int T, int C,
    int H) {
  int t = get_global_id(0), sb = get_global_id(1);
  int D = C / H, s = sb / B, b = sb - s * B;
  __global const float *in = src + src_off + ((ulong)b * T + t) * ld + (ulong)s * C;
  for (int h = 0; h < H; h++) {
    __global float *out = dst + dst_off + (((ulong)sb * H + h) * T + t) * D;
    __global const float *ih = in + h * D;
    int d = 0;
    for (; d + VW <= D; d += VW) VSTORE(VLOAD(0, ih + d), 0, out + d);
    for (; d < D; d++) out[d] = ih[d];
  }
}

/* xt[z][d][t] = x[z][t][d] for heads x (Z,T,D); one work-item per (t, z). */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void head_transpose(
    __global float *xt, __global const float *x, ulong x_off, int T, int D, int TP) {
  int t = get_global_id(0), z = get_global_id(1);
  __global const float *row = x + x_off + ((ulong)z * T + t) * D;
  __global float *col = xt + (ulong)z * D * TP + t;
  for (int d = 0; d < D; d++) col[(ulong)d * TP] = row[d];
}

#define SV (16 / VW) /* floatv vectors in the 16 columns of a score tile */

/* Stores the first n lanes (any n; at most 16 are stored) of the 16-column
 * row piece v[0..SV) at p. */
static void store_part(__global float *p, int n, const floatv *v) {
  if (n >= 16) {
    for (int s = 0; s < SV; s++) VSTORE(v[s], s, p);
    return;
  }
  float t[16];
  for (int s = 0; s < SV; s++) VSTORE(v[s], s, t);
  for (int l = 0; l < n; l++) p[l] = t[l];
}

/* out rows r < nr, columns j0..j0+15 (only those < ncols stored) =
 * alpha * a_r . bt[:, j]: a rows of K floats with stride lda, bt (K, ldb). */
static void tile_abt(__global float *out, int ldo, __global const float *a, int lda, int nr,
                     __global const float *bt, int ldb, int K, int j0, int ncols, float alpha) {
  /* rows past nr repeat the last real row: loads stay in bounds, stores skip them */
  __global const float *a0 = a;
  __global const float *a1 = a + (ulong)min(1, nr - 1) * lda;
  __global const float *a2 = a + (ulong)min(2, nr - 1) * lda;
  __global const float *a3 = a + (ulong)min(3, nr - 1) * lda;
  floatv c0[SV], c1[SV], c2[SV], c3[SV];
#pragma unroll
  for (int s = 0; s < SV; s++) c0[s] = c1[s] = c2[s] = c3[s] = (floatv)(0.0f);
  __global const float *b = bt + j0;
  for (int k = 0; k < K; k++) {
    floatv x0 = (floatv)(a0[k]), x1 = (floatv)(a1[k]), x2 = (floatv)(a2[k]), x3 = (floatv)(a3[k]);
#pragma unroll
    for (int s = 0; s < SV; s++) {
      floatv bv = VLOAD(s, b + (ulong)k * ldb);
      c0[s] = fma(x0, bv, c0[s]);
      c1[s] = fma(x1, bv, c1[s]);
      c2[s] = fma(x2, bv, c2[s]);
      c3[s] = fma(x3, bv, c3[s]);
    }
  }
#pragma unroll
  for (int s = 0; s < SV; s++) c0[s] *= alpha, c1[s] *= alpha, c2[s] *= alpha, c3[s] *= alpha;
  int n = ncols - j0;
  store_part(out + j0, n, c0);
  if (nr > 1) store_part(out + (ulong)ldo + j0, n, c1);
  if (nr > 2) store_part(out + 2 * (ulong)ldo + j0, n, c2);
  if (nr > 3) store_part(out + 3 * (ulong)ldo + j0, n, c3);
}

/* Softmax in place over the first n entries of a row of T; entries n..T-1
 * (masked) become 0. */
static void softmax_row(__global float *a, int n, int T) {
  floatv mv = (floatv)(-INFINITY);
  int j = 0;
  for (; j + VW <= n; j += VW) mv = fmax(mv, VLOAD(0, a + j));
  float m = hmaxv(mv);
  for (; j < n; j++) m = fmax(m, a[j]);
  floatv sv = (floatv)(0.0f);
  for (j = 0; j + VW <= n; j += VW) {
    floatv e = exp(VLOAD(0, a + j) - m);
    VSTORE(e, 0, a + j);
    sv += e;
  }
  float s = hsumv(sv);
  for (; j < n; j++) {
    float e = exp(a[j] - m);
    a[j] = e;
    s += e;
  }
  for (j = 0; j + VW <= n; j += VW) VSTORE(VLOAD(0, a + j) / s, 0, a + j);
  for (; j < n; j++) a[j] /= s;
  for (j = n; j < T; j++) a[j] = 0.0f;
}

/* For output rows r < nr (up to 4, stride ldy):
 *   y_r[d] (+)= sum_{l0 <= l < l1} coef[r*crs + l*cs] * rows[l*ldr + d],  d < D.
 * The rows are loaded once for all outputs. Callers pass the union of the
 * outputs' ranges; coefficients outside a row's own range are exact zeros
 * (masked probabilities), so the extra terms add nothing. */
static void combine_rows(__global float *y, int ldy, int nr, int accumulate, __global const float *coef, int crs,
                         int cs, __global const float *rows, int ldr, int l0, int l1, int D) {
  __global const float *c0 = coef;
  __global const float *c1 = coef + (ulong)min(1, nr - 1) * crs;
  __global const float *c2 = coef + (ulong)min(2, nr - 1) * crs;
  __global const float *c3 = coef + (ulong)min(3, nr - 1) * crs;
  int d = 0;
  for (; d + 2 * VW <= D; d += 2 * VW) {
    floatv y00 = (floatv)(0.0f), y01 = y00, y10 = y00, y11 = y00, y20 = y00, y21 = y00, y30 = y00, y31 = y00;
    for (int l = l0; l < l1; l++) {
      __global const float *rp = rows + (ulong)l * ldr + d;
      floatv v0 = VLOAD(0, rp), v1 = VLOAD(1, rp);
      ulong o = (ulong)l * cs;
      floatv a0 = (floatv)(c0[o]), a1 = (floatv)(c1[o]), a2 = (floatv)(c2[o]), a3 = (floatv)(c3[o]);
      y00 = fma(a0, v0, y00), y01 = fma(a0, v1, y01);
      y10 = fma(a1, v0, y10), y11 = fma(a1, v1, y11);
      y20 = fma(a2, v0, y20), y21 = fma(a2, v1, y21);
      y30 = fma(a3, v0, y30), y31 = fma(a3, v1, y31);
    }
    floatv out0[4] = {y00, y10, y20, y30}, out1[4] = {y01, y11, y21, y31};
    for (int r = 0; r < nr; r++) {
      __global float *yr = y + (ulong)r * ldy + d;
      floatv u0 = out0[r], u1 = out1[r];
      if (accumulate) u0 += VLOAD(0, yr), u1 += VLOAD(1, yr);
      VSTORE(u0, 0, yr), VSTORE(u1, 1, yr);
    }
  }
  for (; d + VW <= D; d += VW) {
    floatv y0 = (floatv)(0.0f), y1 = y0, y2 = y0, y3 = y0;
    for (int l = l0; l < l1; l++) {
      floatv v0 = VLOAD(0, rows + (ulong)l * ldr + d);
      ulong o = (ulong)l * cs;
      y0 = fma((floatv)(c0[o]), v0, y0), y1 = fma((floatv)(c1[o]), v0, y1);
      y2 = fma((floatv)(c2[o]), v0, y2), y3 = fma((floatv)(c3[o]), v0, y3);
    }
    floatv out[4] = {y0, y1, y2, y3};
    for (int r = 0; r < nr; r++) {
      __global float *yr = y + (ulong)r * ldy + d;
      VSTORE(accumulate ? out[r] + VLOAD(0, yr) : out[r], 0, yr);
    }
  }
  for (; d < D; d++)
    for (int r = 0; r < nr; r++) {
      float s = 0.0f;
      __global const float *cr = coef + (ulong)r * crs;
      for (int l = l0; l < l1; l++) s = fma(cr[(ulong)l * cs], rows[(ulong)l * ldr + d], s);
      __global float *yr = y + (ulong)r * ldy + d;
      *yr = accumulate ? *yr + s : s;
    }
}

/* Forward for query rows [rb*QB, rb*QB+QB) of head z = b*H+h:
 * att rows = softmax(scale q k^T) (masked), out rows = att v. kt is the
 * head's k transposed (D, TP). One work-item per (rb, z). */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void attn_fwd_cpu(
    __global float *out, ulong out_off, __global float *att, ulong att_off, __global const float *qkvr,
    ulong qkvr_off, __global const float *kt, int B, int T, int C, int H, int TP, int QB, float scale,
    int causal) {
  int rb = get_global_id(0), z = get_global_id(1);
  int D = C / H, b = z / H, h = z - b * H;
  int i0 = rb * QB, i1 = min(T, i0 + QB);
  if (i0 >= T) return;
  ulong part = (ulong)B * H * T * D;
  __global const float *q = qkvr + qkvr_off + (ulong)z * T * D;
  __global const float *v = q + 2 * part;
  __global const float *ktz = kt + (ulong)z * D * TP;
  __global float *a = att + att_off + (ulong)z * T * T;
  for (int i = i0; i < i1; i += MR) {
    int nr = min(MR, i1 - i);
    /* causal: keys past the tile's last row are masked for all its rows */
    int ncols = causal ? min(T, i + nr) : T;
    for (int j0 = 0; j0 < ncols; j0 += 16)
      tile_abt(a + (ulong)i * T, T, q + (ulong)i * D, D, nr, ktz, TP, D, j0, ncols, scale);
  }
  for (int i = i0; i < i1; i++) softmax_row(a + (ulong)i * T, causal ? i + 1 : T, T);
  for (int i = i0; i < i1; i += 4) {
    int nr = min(4, i1 - i);
    combine_rows(out + out_off + ((ulong)b * T + i) * C + (ulong)h * D, C, nr, 0, a + (ulong)i * T, T, 1, v, D, 0,
                 causal ? i + nr : T, D);
  }
}

/* Backward, stage one, for query rows of block rb of head z:
 * ds = scale * att .* (dp - rowsum(att .* dp)), dp = dy v^T, with dy read
 * from dout rows and vt the head's v transposed (D, TP). */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void attn_bwd_ds_cpu(
    __global float *ds, __global const float *dout, ulong dout_off, __global const float *att, ulong att_off,
    __global const float *vt, int B, int T, int C, int H, int TP, int QB, float scale, int causal) {
  int rb = get_global_id(0), z = get_global_id(1);
  int D = C / H, b = z / H, h = z - b * H;
  int i0 = rb * QB, i1 = min(T, i0 + QB);
  if (i0 >= T) return;
  __global const float *dy = dout + dout_off + (ulong)b * T * C + (ulong)h * D;
  __global const float *vtz = vt + (ulong)z * D * TP;
  __global const float *p = att + att_off + (ulong)z * T * T;
  __global float *g = ds + (ulong)z * T * T;
  for (int i = i0; i < i1; i += MR) {
    int nr = min(MR, i1 - i);
    int ncols = causal ? min(T, i + nr) : T;
    for (int j0 = 0; j0 < ncols; j0 += 16)
      tile_abt(g + (ulong)i * T, T, dy + (ulong)i * C, C, nr, vtz, TP, D, j0, ncols, 1.0f);
  }
  for (int i = i0; i < i1; i++) {
    int n = causal ? i + 1 : T;
    __global float *grow = g + (ulong)i * T;
    __global const float *prow = p + (ulong)i * T;
    floatv acc = (floatv)(0.0f);
    int j = 0;
    for (; j + VW <= n; j += VW) acc = fma(VLOAD(0, prow + j), VLOAD(0, grow + j), acc);
    float dot = hsumv(acc);
    for (; j < n; j++) dot = fma(prow[j], grow[j], dot);
    for (j = 0; j + VW <= n; j += VW)
      VSTORE(scale * VLOAD(0, prow + j) * (VLOAD(0, grow + j) - dot), 0, grow + j);
    for (; j < n; j++) grow[j] = scale * prow[j] * (grow[j] - dot);
    for (j = n; j < T; j++) grow[j] = 0.0f;
  }
}

/* Backward, stage two: for rows r of block rb of head z and part w
 * (0: dq_r = ds[r,:] k, 1: dk_r = ds[:,r]^T q, 2: dv_r = att[:,r]^T dy),
 * added into dqkv (B,T,3C). One work-item per (rb, z, w). */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void attn_bwd_grads_cpu(
    __global float *dqkv, ulong dqkv_off, __global const float *ds, __global const float *dout, ulong dout_off,
    __global const float *att, ulong att_off, __global const float *qkvr, ulong qkvr_off, int B, int T, int C,
    int H, int QB, int causal) {
  int rb = get_global_id(0), z = get_global_id(1), w = get_global_id(2);
  int D = C / H, b = z / H, h = z - b * H;
  int r0 = rb * QB, r1 = min(T, r0 + QB);
  if (r0 >= T) return;
  ulong part = (ulong)B * H * T * D;
  __global const float *q = qkvr + qkvr_off + (ulong)z * T * D;
  __global const float *k = q + part;
  __global const float *g = ds + (ulong)z * T * T;
  __global const float *p = att + att_off + (ulong)z * T * T;
  __global const float *dy = dout + dout_off + (ulong)b * T * C + (ulong)h * D;
  for (int r = r0; r < r1; r += 4) {
    int nr = min(4, r1 - r);
    __global float *y = dqkv + dqkv_off + ((ulong)b * T + r) * 3 * C + (ulong)w * C + (ulong)h * D;
    if (w == 0) combine_rows(y, 3 * C, nr, 1, g + (ulong)r * T, T, 1, k, D, 0, causal ? r + nr : T, D);
    else if (w == 1) combine_rows(y, 3 * C, nr, 1, g + r, 1, T, q, D, causal ? r : 0, T, D);
    else combine_rows(y, 3 * C, nr, 1, p + r, 1, T, dy, C, causal ? r : 0, T, D);
  }
}

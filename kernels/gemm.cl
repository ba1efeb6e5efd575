/* gemm.cl: GEMM kernels for CPU OpenCL devices (PoCL), plus helpers used by
 * every GEMM backend.
 *
 * The CPU path packs op(A) into MR-row panels and op(B) into NR-column panels
 * (zero padded, so the inner kernel never branches on edges), then runs one
 * work-item per MR x NR tile of C with work-group size 1: PoCL runs a
 * work-group as one function call, so a work-item is a plain loop body and
 * its float16 accumulators live in AVX-512 registers. No local memory: on a
 * CPU it is ordinary memory and the barriers cost more than they buy.
 * Tunables arrive as -D defines (see src/ops/gemm.c and `clipcl tune`):
 *   MR  rows per tile (scalar broadcasts of A)
 *   NV  float16 vectors per tile row (NR = 16 * NV columns)
 *   KU  unroll of the k loop
 * Layout letters: M,N,K GEMM sizes, z batch index. Row-major throughout.
 */

#ifndef MR
#define MR 12
#endif
#ifndef NV
#define NV 2
#endif
#ifndef KU
#define KU 4
#endif
#define NR (16 * NV)

/* op(A)(i,k) packed as Ap[z][tm][k][ii], i = tm*MR + ii; zero beyond M.
 * One work-item per (k, tm, z). */
__kernel void pack_a(__global float *Ap, ulong ap_batch, __global const float *A, ulong a_off,
                     int lda, ulong sA, int transA, int M, int K) {
  int k = get_global_id(0), tm = get_global_id(1), z = get_global_id(2);
  if (k >= K) return;
  __global const float *a = A + a_off + (ulong)z * sA;
  __global float *dst = Ap + (ulong)z * ap_batch + ((ulong)tm * K + k) * MR;
  for (int ii = 0; ii < MR; ii++) {
    int i = tm * MR + ii;
    float v = 0.0f;
    if (i < M) v = transA ? a[(ulong)k * lda + i] : a[(ulong)i * lda + k];
    dst[ii] = v;
  }
}

/* op(B)(k,j) packed as Bp[z][tn][k][jj], j = tn*NR + jj; zero beyond N.
 * One work-item per (k, tn, z). */
__kernel void pack_b(__global float *Bp, ulong bp_batch, __global const float *B, ulong b_off,
                     int ldb, ulong sB, int transB, int N, int K) {
  int k = get_global_id(0), tn = get_global_id(1), z = get_global_id(2);
  if (k >= K) return;
  __global const float *b = B + b_off + (ulong)z * sB;
  __global float *dst = Bp + (ulong)z * bp_batch + ((ulong)tn * K + k) * NR;
  int j0 = tn * NR;
  if (!transB && j0 + NR <= N) {
    for (int v = 0; v < NV; v++) vstore16(vload16(0, b + (ulong)k * ldb + j0 + 16 * v), v, dst);
    return;
  }
  for (int jj = 0; jj < NR; jj++) {
    int j = j0 + jj;
    float x = 0.0f;
    if (j < N) x = transB ? b[(ulong)j * ldb + k] : b[(ulong)k * ldb + j];
    dst[jj] = x;
  }
}

/* C tile = alpha * Ap_panel . Bp_panel + beta * C + bias. Tiles are visited in
 * blocks of MB row-tiles so a block's A panels stay in cache while the B
 * panels stream past. One work-item per (tile, z). */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void gemm_tile(
    __global const float *Ap, ulong ap_batch, __global const float *Bp, ulong bp_batch,
    __global float *C, ulong c_off, int ldc, ulong sC, __global const float *bias, ulong bias_off,
    int has_bias, int M, int N, int K, float alpha, float beta, int mtiles, int ntiles, int MB) {
  int g = get_global_id(0), z = get_global_id(1);
  int per_block = MB * ntiles;
  int blk = g / per_block, r = g - blk * per_block;
  int rows_here = min(MB, mtiles - blk * MB);
  int tn = r / rows_here, tm = blk * MB + (r - (r / rows_here) * rows_here);
  __global const float *a = Ap + (ulong)z * ap_batch + (ulong)tm * K * MR;
  __global const float *b = Bp + (ulong)z * bp_batch + (ulong)tn * K * NR;

  float16 acc[MR][NV];
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++) acc[i][v] = (float16)(0.0f);

  int k = 0;
  for (; k + KU <= K; k += KU) {
    for (int u = 0; u < KU; u++) {
      float16 bv[NV];
      for (int v = 0; v < NV; v++) bv[v] = vload16(v, b + (k + u) * NR);
      for (int i = 0; i < MR; i++) {
        float ai = a[(k + u) * MR + i];
        for (int v = 0; v < NV; v++) acc[i][v] = fma((float16)(ai), bv[v], acc[i][v]);
      }
    }
  }
  for (; k < K; k++) {
    float16 bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = vload16(v, b + k * NR);
    for (int i = 0; i < MR; i++) {
      float ai = a[k * MR + i];
      for (int v = 0; v < NV; v++) acc[i][v] = fma((float16)(ai), bv[v], acc[i][v]);
    }
  }

  __global float *c = C + c_off + (ulong)z * sC;
  int i0 = tm * MR, j0 = tn * NR;
  for (int i = 0; i < MR; i++) {
    int row = i0 + i;
    if (row >= M) break;
    __global float *crow = c + (ulong)row * ldc;
    for (int v = 0; v < NV; v++) {
      int j = j0 + 16 * v;
      if (j >= N) break;
      float16 res = alpha * acc[i][v];
      if (j + 16 <= N) {
        if (beta != 0.0f) res += beta * vload16(0, crow + j);
        if (has_bias) res += vload16(0, bias + bias_off + j);
        vstore16(res, 0, crow + j);
      } else {
        float tmp[16];
        vstore16(res, 0, tmp);
        for (int l = 0; j + l < N; l++) {
          float x = tmp[l];
          if (beta != 0.0f) x += beta * crow[j + l];
          if (has_bias) x += bias[bias_off + j + l];
          crow[j + l] = x;
        }
      }
    }
  }
}

/* Plain GEMM, one work-item per element of C: the reference-simple fallback
 * (CLIPCL_GEMM=naive) and a check for the fast paths. */
__kernel void gemm_naive(__global const float *A, ulong a_off, int lda, ulong sA, int transA,
                         __global const float *B, ulong b_off, int ldb, ulong sB, int transB,
                         __global float *C, ulong c_off, int ldc, ulong sC,
                         __global const float *bias, ulong bias_off, int has_bias, int M, int N,
                         int K, float alpha, float beta) {
  int j = get_global_id(0), i = get_global_id(1), z = get_global_id(2);
  if (i >= M || j >= N) return;
  __global const float *a = A + a_off + (ulong)z * sA;
  __global const float *b = B + b_off + (ulong)z * sB;
  float s = 0.0f;
  for (int k = 0; k < K; k++) {
    float x = transA ? a[(ulong)k * lda + i] : a[(ulong)i * lda + k];
    float y = transB ? b[(ulong)j * ldb + k] : b[(ulong)k * ldb + j];
    s = fma(x, y, s);
  }
  __global float *c = C + c_off + (ulong)z * sC + (ulong)i * ldc + j;
  float r = alpha * s;
  if (beta != 0.0f) r += beta * *c;
  if (has_bias) r += bias[bias_off + j];
  *c = r;
}

/* C[i,j] += bias[j] (after a backend without a bias epilogue). */
__kernel void add_bias(__global float *C, ulong c_off, int ldc, ulong sC, __global const float *bias,
                       ulong bias_off, int M, int N) {
  int j = get_global_id(0), i = get_global_id(1), z = get_global_id(2);
  if (i >= M || j >= N) return;
  C[c_off + (ulong)z * sC + (ulong)i * ldc + j] += bias[bias_off + j];
}

/* out[j] (+)= sum_i x[i*ld + j], rows summed in order: deterministic. */
__kernel void colsum(__global float *out, ulong out_off, __global const float *x, ulong x_off,
                     int rows, int cols, int ld, int accumulate) {
  int j = get_global_id(0);
  if (j >= cols) return;
  __global const float *p = x + x_off + j;
  float s = 0.0f;
  for (int i = 0; i < rows; i++) s += p[(ulong)i * ld];
  if (accumulate) out[out_off + j] += s;
  else out[out_off + j] = s;
}

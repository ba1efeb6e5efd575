/* gemm.cl: GEMM kernels for CPU OpenCL devices (PoCL), plus helpers used by
 * every GEMM backend.
 *
 * The CPU path runs one work-item per MR x NR tile of C with work-group size 1
 * (gemm_tile). A is read in place (edge rows clamped) or packed first
 * (pack_a). B is packed into column panels first (pack_b_rows, pack_bt;
 * inference packs its weights once) when many row tiles share them, else
 * each work-item copies its panel into a cache-resident buffer
 * (gemm_tile_packed). PoCL runs a work-group as
 * one function call, so a work-item is a plain loop body and its floatv
 * accumulators (kernels/prelude.cl: one machine register each) stay in
 * registers when MR*NV + NV + 1 fits the register file (32 on AVX-512, 16 on
 * AVX2). No local memory: on a CPU it is ordinary memory and the barriers
 * cost more than they buy.
 * Tunables arrive as -D defines (see src/ops/gemm.c and `clipcl tune`):
 *   MR  rows per tile (scalar broadcasts of A)
 *   NV  floatv vectors per tile row (NR = VW * NV columns)
 *   KU  unroll of the k loop
 *   KCL longest K slice gemm_tile_packed takes (its local panel is KCL x NR)
 *   AT  layout of op(A): 0 A (M,K) in place, 1 A (K,M) in place, 2 packed
 *       by pack_a / pack_at; see TILE below
 *   KI  k block inside gemm_tile's work-item (0: none), see there
 *   PF  1: gemm_tile prefetches the next column panel of B (see PF_STEP)
 * Layout letters: M,N,K GEMM sizes, z batch index. Row-major throughout.
 */

#ifndef MR
#define MR 6
#endif
#ifndef NV
#define NV 2
#endif
#ifndef KU
#define KU 4
#endif
#ifndef AT
#define AT 0
#endif
#ifndef KI
#define KI 0
#endif
#define MB_KEEP 32 /* most row tiles per work-item when KI > 0 */
#define NR (VW * NV)

/* op(A)(i,k) packed as Ap[z][tm][k][ii], i = tm*MR + ii, zero beyond M: MR
 * values per k contiguous, so a tile's A reads are one short stream.
 * A stored (M,K) (pack_a): one work-item per (VW-wide chunk of k, tm, z)
 * reads MR row pieces and writes them interleaved.
 * A stored (K,M), op(A) = A^T (pack_at): one work-item per (PK rows of k,
 * PT row tiles, z) reads each of its k rows as one contiguous run of PT*MR
 * floats and deals it out to PT panels. (Reading MR floats per row instead,
 * rows a multiple of 4 KiB apart as CLIP's widths are, fetched every cache
 * line again for each tile it held.) */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void pack_a(
    __global float *Ap, ulong ap_batch, __global const float *A, ulong a_off, int lda, ulong sA, int M, int K) {
  int k0 = get_global_id(0) * VW, tm = get_global_id(1), z = get_global_id(2);
  __global const float *a = A + a_off + (ulong)z * sA;
  __global float *dst = Ap + (ulong)z * ap_batch + (ulong)tm * K * MR;
  int i0 = tm * MR, kn = min(VW, K - k0);
  for (int ii = 0; ii < MR; ii++) {
    int i = i0 + ii;
    float t[VW];
    if (i < M && kn == VW) {
      VSTORE(VLOAD(0, a + (ulong)i * lda + k0), 0, t);
    } else {
      for (int kk = 0; kk < VW; kk++) t[kk] = (i < M && kk < kn) ? a[(ulong)i * lda + k0 + kk] : 0.0f;
    }
    for (int kk = 0; kk < kn; kk++) dst[(k0 + kk) * MR + ii] = t[kk];
  }
}

#define PK 16 /* k rows per pack_at work-item */
#define PT 16 /* row tiles per pack_at work-item */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void pack_at(
    __global float *Ap, ulong ap_batch, __global const float *A, ulong a_off, int lda, ulong sA, int M, int K,
    int mtiles) {
  int k0 = get_global_id(0) * PK, t0 = get_global_id(1) * PT, z = get_global_id(2);
  __global const float *a = A + a_off + (ulong)z * sA;
  __global float *ap = Ap + (ulong)z * ap_batch;
  int k1 = min(K, k0 + PK), t1 = min(mtiles, t0 + PT);
  for (int k = k0; k < k1; k++) {
    __global const float *row = a + (ulong)k * lda;
#if PF
    /* the same columns PK rows down, which the next work-item (this
     * thread's, usually) copies: short runs rows apart are invisible to the
     * hardware prefetcher, and each waited on DRAM */
    if (k + PK < K)
      for (int f = t0 * MR; f < t1 * MR && f < M; f += 16)
        __builtin_prefetch((const void *)(uintptr_t)(row + (ulong)PK * lda + f), 0, 2);
#endif
    for (int t = t0; t < t1; t++) {
      __global float *dst = ap + ((ulong)t * K + k) * MR;
      int i0 = t * MR;
      if (i0 + MR <= M) { /* MR floats in vector moves (scalar copies ran at a quarter of the bandwidth) */
        __global const float *src = row + i0;
        int ii = 0;
#pragma unroll
        for (; ii + 4 <= MR; ii += 4) vstore4(vload4(0, src + ii), 0, dst + ii);
        if (ii + 2 <= MR) vstore2(vload2(0, src + ii), 0, dst + ii), ii += 2;
        if (ii < MR) dst[ii] = src[ii];
      } else {
        for (int ii = 0; ii < MR; ii++) dst[ii] = i0 + ii < M ? row[i0 + ii] : 0.0f;
      }
    }
  }
}

/* Zeroed accumulators acc[MR][NV] of one tile. */
#define TILE_ZERO()                                                                \
  floatv acc[MR][NV];                                                              \
  _Pragma("unroll") for (int i = 0; i < MR; i++)                                   \
  _Pragma("unroll") for (int v = 0; v < NV; v++) acc[i][v] = (floatv)(0.0f)

/* Row pointers arow[i] = A0 + min(i, IMAX)*a_rs (rows past M clamped to a
 * valid row; their results are never stored). */
#define ROW_POINTERS(A0, IMAX)                                                     \
  __global const float *arow[MR];                                                  \
  _Pragma("unroll") for (int i = 0; i < MR; i++) arow[i] = (A0) + (ulong)min(i, (IMAX)) * a_rs

/* How a tile reads op(A)(i, k_+u). The layout is fixed at compile time so
 * that LLVM needs few address registers (a runtime stride inside the
 * unrolled loop made it keep one pointer per row and unroll step, and spill
 * them):
 *   AT == 0: A stored (M,K) in place, a_cs == 1: MR row pointers, k index
 *   AT == 1: a_rs == 1 (A stored (K,M) in place): one pointer ak_ walking
 *            k by a_cs, rows at constant offsets
 *   AT == 2: A packed by pack_a/pack_at: as AT 1 with a_cs == MR, a
 *            compile-time step (with a runtime one the unrolled loop kept
 *            one register per step multiple, and ran at 0.5x on AVX2)
 *   AEL_GEN: any strides (the clamped edge tile of an in-place A^T) */
#define AEL_ROWS(i, u) arow[i][k_ + (u)]
#if AT == 2
#define A_STEP MR
#else
#define A_STEP a_cs
#endif
#define AEL_COLS(i, u) ak_[(u) * A_STEP + (i)]
#define AEL_GEN(i, u) arow[i][(k_ + (u)) * a_cs]
#define ADV_NONE(n)
#define ADV_COLS(n) ak_ += (n) * A_STEP

/* acc += the register-tile product of op(A) rows (read through AEL) with NR
 * columns of B (row k at BPTR + k*BRS), k in [0, KLEN). */
#define TILE_PRODUCT(AEL, ADV, BPTR, BRS, KLEN)                                    \
  do {                                                                             \
    __typeof__(&(BPTR)[0]) bk_ = &(BPTR)[0];                                      \
    int k_ = 0;                                                                    \
    for (; k_ + KU <= (KLEN); k_ += KU) {                                          \
      _Pragma("unroll") for (int u = 0; u < KU; u++) {                             \
        floatv bv[NV];                                                             \
        _Pragma("unroll") for (int v = 0; v < NV; v++) bv[v] = VLOAD(v, bk_ + u * (BRS)); \
        _Pragma("unroll") for (int i = 0; i < MR; i++) {                           \
          float ai = AEL(i, u);                                                    \
          _Pragma("unroll") for (int v = 0; v < NV; v++) acc[i][v] = fma((floatv)(ai), bv[v], acc[i][v]); \
        }                                                                          \
      }                                                                            \
      bk_ += KU * (BRS);                                                           \
      ADV(KU);                                                                     \
      PF_STEP();                                                                   \
    }                                                                              \
    for (; k_ < (KLEN); k_++) {                                                    \
      floatv bv[NV];                                                               \
      _Pragma("unroll") for (int v = 0; v < NV; v++) bv[v] = VLOAD(v, bk_);        \
      _Pragma("unroll") for (int i = 0; i < MR; i++) {                             \
        float ai = AEL(i, 0);                                                      \
        _Pragma("unroll") for (int v = 0; v < NV; v++) acc[i][v] = fma((floatv)(ai), bv[v], acc[i][v]); \
      }                                                                            \
      bk_ += (BRS);                                                                \
      ADV(1);                                                                      \
    }                                                                              \
  } while (0)

#ifndef PF
#define PF 0
#endif
/* PF_STEP: once per unrolled k step, gemm_tile prefetches one cache line of
 * the next column panel into L2 (pf_, walking 16 floats a step), so the
 * next work-item finds its B panel there rather than in L3 or DRAM, where
 * its first row tile would wait on each line. Row tile t of a work-item
 * starts t * (K / KU) lines in, so the tiles together cover a packed
 * panel (K * NR floats) once when MB >= NR * KU / 16. No branch and no
 * counter: with either, LLVM spilled the accumulators. */
#if PF && KI == 0
#define PF_STEP()                                                                  \
  do {                                                                             \
    __builtin_prefetch((const void *)(uintptr_t)pf_, 0, 2);                        \
    pf_ += 16;                                                                     \
  } while (0)
#else
#define PF_STEP()
#endif

/* acc = op(A) tile (rows from A0) x B panel, in the layout AT selects; B rows
 * BRS apart. */
#if AT == 2 /* packed: zero rows past M, no edge case */
#define TILE(A0, IMAX, EDGE, BPTR, BRS, KLEN)                                      \
  do {                                                                             \
    __global const float *ak_ = (A0);                                              \
    TILE_PRODUCT(AEL_COLS, ADV_COLS, BPTR, BRS, KLEN);                             \
  } while (0)
#elif AT == 1
#define TILE(A0, IMAX, EDGE, BPTR, BRS, KLEN)                                      \
  do {                                                                             \
    if (EDGE) {                                                                    \
      ROW_POINTERS(A0, IMAX);                                                      \
      TILE_PRODUCT(AEL_GEN, ADV_NONE, BPTR, BRS, KLEN);                            \
    } else {                                                                       \
      __global const float *ak_ = (A0);                                            \
      TILE_PRODUCT(AEL_COLS, ADV_COLS, BPTR, BRS, KLEN);                           \
    }                                                                              \
  } while (0)
#else
#define TILE(A0, IMAX, EDGE, BPTR, BRS, KLEN)                                      \
  do {                                                                             \
    ROW_POINTERS(A0, IMAX);                                                        \
    TILE_PRODUCT(AEL_ROWS, ADV_NONE, BPTR, BRS, KLEN);                             \
  } while (0)
#endif

/* The epilogue applied once to a finished sum (src/ops/gemm.c
 * epilogue_flags): EPI_RESID adds the matching element of R (row stride
 * ldr); EPI_GELU / EPI_QUICK apply GELU / QuickGELU, the same formulas as
 * elementwise.cl's gelu_fwd; with EPI_KEEP_PRE, C keeps the value before
 * the activation and C2 (row stride ldc) gets the activated one (training
 * saves both), otherwise C gets the activated value. */
#define EPI_RESID 1
#define EPI_GELU 2
#define EPI_QUICK 4
#define EPI_KEEP_PRE 8
#define GEMM_INV_SQRT2 0.70710678118654752f

typedef struct {
  __global const float *r;
  int ldr;
  __global float *c2;
  int flags;
} epilogue;

static inline floatv act_v(floatv x, int flags) {
  return (flags & EPI_QUICK) ? x / (1.0f + exp(-1.702f * x)) : 0.5f * x * (1.0f + erf_rv(x * GEMM_INV_SQRT2));
}
static inline float act_s(float x, int flags) {
  return (flags & EPI_QUICK) ? x / (1.0f + exp(-1.702f * x)) : 0.5f * x * (1.0f + erf_rs(x * GEMM_INV_SQRT2));
}

/* c_tile = epilogue(alpha*acc + beta*c_tile + bias) for the rows < M and
 * columns < N. The accumulators go through a private tile first so that the
 * epilogue's code (erf, exp) is emitted once, in a loop, rather than once
 * per accumulator (MR*NV copies made the kernels slow to compile). */
static inline void store_tile(floatv acc[MR][NV], __global float *c, int ldc, int i0, int j0, int M, int N,
                              float alpha, float beta, __global const float *bias, int has_bias, epilogue e) {
  int act = e.flags & (EPI_GELU | EPI_QUICK), keep = act && (e.flags & EPI_KEEP_PRE);
  floatv tile[MR * NV];
#pragma unroll
  for (int i = 0; i < MR; i++)
#pragma unroll
    for (int v = 0; v < NV; v++) tile[i * NV + v] = alpha * acc[i][v];
  int rows = min(MR, M - i0);
  for (int i = 0; i < rows; i++) {
    int row = i0 + i;
    __global float *crow = c + (ulong)row * ldc;
    __global float *c2row = e.c2 + (ulong)row * ldc;
    __global const float *rrow = e.r + (ulong)row * e.ldr;
    for (int v = 0; v < NV; v++) {
      int j = j0 + VW * v;
      if (j >= N) break;
      floatv res = tile[i * NV + v];
      if (j + VW <= N) {
        if (beta != 0.0f) res += beta * VLOAD(0, crow + j);
        if (has_bias) res += VLOAD(0, bias + j);
        if (e.flags & EPI_RESID) res += VLOAD(0, rrow + j);
        if (act) {
          floatv y = act_v(res, e.flags);
          if (keep) VSTORE(y, 0, c2row + j);
          else res = y;
        }
        VSTORE(res, 0, crow + j);
      } else {
        float tmp[VW];
        VSTORE(res, 0, tmp);
        for (int l = 0; j + l < N; l++) {
          float x = tmp[l];
          if (beta != 0.0f) x += beta * crow[j + l];
          if (has_bias) x += bias[j + l];
          if (e.flags & EPI_RESID) x += rrow[j + l];
          if (act) {
            float y = act_s(x, e.flags);
            if (keep) c2row[j + l] = y;
            else x = y;
          }
          crow[j + l] = x;
        }
      }
    }
  }
}

/* C tiles (MR x NR) = alpha * op(A) op(B) + beta * C + bias, work-group
 * size 1, B in column panels (pack_b_rows, pack_bt, or weights packed
 * ahead of time; the strides would also take a row-major B in place).
 * Operands are read through strides, so packed and unpacked A share the
 * kernel:
 *   op(A)(i,k) = A[a_off + z*sA + tm*a_ts + min(i, imax)*a_rs + k*a_cs]
 *       (unpacked rows past M are clamped to a valid row; their results
 *        are never stored)
 *   op(B)(k,jj) = B[b_off + z*sB + tn*b_ts + k*b_rs + jj]   (NR contiguous)
 * One work-item per (block of MB row tiles, column panel): it walks the
 * block's row tiles down one B panel, which stays in cache, and a work-item
 * is long enough that PoCL's per-work-group cost (a few microseconds, as
 * long as one small tile's arithmetic) disappears. Consecutive work-items
 * share the block's A rows. */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void gemm_tile(
    __global const float *A, ulong a_off, ulong sA, ulong a_ts, int a_rs, int a_cs, int a_clamp,
    __global const float *B, ulong b_off, ulong sB, ulong b_ts, int b_rs,
    __global float *C, ulong c_off, int ldc, ulong sC, __global const float *bias, ulong bias_off,
    int has_bias, __global const float *R, ulong r_off, int ldr, __global float *C2, ulong c2_off, int epi,
    int M, int N, int K, float alpha, float beta, int mtiles, int ntiles, int MB) {
  epilogue e = {R + r_off, ldr, C2 + c2_off, epi};
  int g = get_global_id(0), z = get_global_id(1);
  int blk = g / ntiles, tn = g - blk * ntiles;
  int j0 = tn * NR;
  __global const float *b = B + b_off + (ulong)z * sB + (ulong)tn * b_ts;
  int tm0 = blk * MB, tm_end = min(mtiles, tm0 + MB);
#if KI > 0
  /* k blocked inside the work-item: for each KI slice of k, every row tile
   * of the block, so the slice of the B panel (KI x NR) stays in L1 while
   * the tiles pass; the partial sums wait in keep[] (private memory), so
   * each element is still one in-order chain of fma: the same bits as
   * without blocking. The host keeps MB <= MB_KEEP. */
  floatv keep[MB_KEEP][MR][NV];
  for (int kb = 0; kb < K; kb += KI) {
    int kn = min(KI, K - kb), last = kb + kn == K;
    for (int tm = tm0; tm < tm_end; tm++) {
      int i0 = tm * MR;
      int imax = a_clamp ? min(MR - 1, M - 1 - i0) : MR - 1;
      __global const float *a = A + a_off + (ulong)z * sA + (ulong)tm * a_ts + (ulong)kb * a_cs;
      int edge = a_clamp && i0 + MR > M;
      floatv acc[MR][NV];
#pragma unroll
      for (int i = 0; i < MR; i++)
#pragma unroll
        for (int v = 0; v < NV; v++) acc[i][v] = kb ? keep[tm - tm0][i][v] : (floatv)(0.0f);
      TILE(a, imax, edge, b + (ulong)kb * b_rs, b_rs, kn);
      if (last)
        store_tile(acc, C + c_off + (ulong)z * sC, ldc, i0, j0, M, N, alpha, beta, bias + bias_off, has_bias, e);
      else
#pragma unroll
        for (int i = 0; i < MR; i++)
#pragma unroll
          for (int v = 0; v < NV; v++) keep[tm - tm0][i][v] = acc[i][v];
    }
  }
#else
#if PF
  /* see PF_STEP: the next panel of this work-item's successor */
  __global const float *pf_next = B + b_off + (ulong)z * sB + (ulong)(tn + 1 < ntiles ? tn + 1 : 0) * b_ts;
#endif
  for (int tm = tm0; tm < tm_end; tm++) {
    int i0 = tm * MR;
    int imax = a_clamp ? min(MR - 1, M - 1 - i0) : MR - 1;
    __global const float *a = A + a_off + (ulong)z * sA + (ulong)tm * a_ts;
    int edge = a_clamp && i0 + MR > M; /* AT: rows past M would read past A */
#if PF
    __global const float *pf_ = pf_next + (ulong)(tm - tm0) * (K / KU) * 16;
#endif
    TILE_ZERO();
    TILE(a, imax, edge, b, b_rs, K); /* a constant b_rs for packed panels measured no faster */
    store_tile(acc, C + c_off + (ulong)z * sC, ldc, i0, j0, M, N, alpha, beta, bias + bias_off, has_bias, e);
  }
#endif
}

/* Transposes VW floatv rows in place (r[i].s[c] <-> r[c].s[i]) with log2(VW)
 * butterfly stages of constant shuffles, which LLVM turns into register
 * shuffles on a private array it keeps in registers. Generated by
 * tests/tools/gen_transpose.py VW (do not edit by hand). */
#if VW == 16
#define TRANSPOSEV(r) do { floatv lo_, hi_; \
  lo_ = (floatv)(r[0].s0, r[1].s0, r[0].s2, r[1].s2, r[0].s4, r[1].s4, r[0].s6, r[1].s6, r[0].s8, r[1].s8, r[0].sa, r[1].sa, r[0].sc, r[1].sc, r[0].se, r[1].se); \
  hi_ = (floatv)(r[0].s1, r[1].s1, r[0].s3, r[1].s3, r[0].s5, r[1].s5, r[0].s7, r[1].s7, r[0].s9, r[1].s9, r[0].sb, r[1].sb, r[0].sd, r[1].sd, r[0].sf, r[1].sf); \
  r[0] = lo_; r[1] = hi_; \
  lo_ = (floatv)(r[2].s0, r[3].s0, r[2].s2, r[3].s2, r[2].s4, r[3].s4, r[2].s6, r[3].s6, r[2].s8, r[3].s8, r[2].sa, r[3].sa, r[2].sc, r[3].sc, r[2].se, r[3].se); \
  hi_ = (floatv)(r[2].s1, r[3].s1, r[2].s3, r[3].s3, r[2].s5, r[3].s5, r[2].s7, r[3].s7, r[2].s9, r[3].s9, r[2].sb, r[3].sb, r[2].sd, r[3].sd, r[2].sf, r[3].sf); \
  r[2] = lo_; r[3] = hi_; \
  lo_ = (floatv)(r[4].s0, r[5].s0, r[4].s2, r[5].s2, r[4].s4, r[5].s4, r[4].s6, r[5].s6, r[4].s8, r[5].s8, r[4].sa, r[5].sa, r[4].sc, r[5].sc, r[4].se, r[5].se); \
  hi_ = (floatv)(r[4].s1, r[5].s1, r[4].s3, r[5].s3, r[4].s5, r[5].s5, r[4].s7, r[5].s7, r[4].s9, r[5].s9, r[4].sb, r[5].sb, r[4].sd, r[5].sd, r[4].sf, r[5].sf); \
  r[4] = lo_; r[5] = hi_; \
  lo_ = (floatv)(r[6].s0, r[7].s0, r[6].s2, r[7].s2, r[6].s4, r[7].s4, r[6].s6, r[7].s6, r[6].s8, r[7].s8, r[6].sa, r[7].sa, r[6].sc, r[7].sc, r[6].se, r[7].se); \
  hi_ = (floatv)(r[6].s1, r[7].s1, r[6].s3, r[7].s3, r[6].s5, r[7].s5, r[6].s7, r[7].s7, r[6].s9, r[7].s9, r[6].sb, r[7].sb, r[6].sd, r[7].sd, r[6].sf, r[7].sf); \
  r[6] = lo_; r[7] = hi_; \
  lo_ = (floatv)(r[8].s0, r[9].s0, r[8].s2, r[9].s2, r[8].s4, r[9].s4, r[8].s6, r[9].s6, r[8].s8, r[9].s8, r[8].sa, r[9].sa, r[8].sc, r[9].sc, r[8].se, r[9].se); \
  hi_ = (floatv)(r[8].s1, r[9].s1, r[8].s3, r[9].s3, r[8].s5, r[9].s5, r[8].s7, r[9].s7, r[8].s9, r[9].s9, r[8].sb, r[9].sb, r[8].sd, r[9].sd, r[8].sf, r[9].sf); \
  r[8] = lo_; r[9] = hi_; \
  lo_ = (floatv)(r[10].s0, r[11].s0, r[10].s2, r[11].s2, r[10].s4, r[11].s4, r[10].s6, r[11].s6, r[10].s8, r[11].s8, r[10].sa, r[11].sa, r[10].sc, r[11].sc, r[10].se, r[11].se); \
  hi_ = (floatv)(r[10].s1, r[11].s1, r[10].s3, r[11].s3, r[10].s5, r[11].s5, r[10].s7, r[11].s7, r[10].s9, r[11].s9, r[10].sb, r[11].sb, r[10].sd, r[11].sd, r[10].sf, r[11].sf); \
  r[10] = lo_; r[11] = hi_; \
  lo_ = (floatv)(r[12].s0, r[13].s0, r[12].s2, r[13].s2, r[12].s4, r[13].s4, r[12].s6, r[13].s6, r[12].s8, r[13].s8, r[12].sa, r[13].sa, r[12].sc, r[13].sc, r[12].se, r[13].se); \
  hi_ = (floatv)(r[12].s1, r[13].s1, r[12].s3, r[13].s3, r[12].s5, r[13].s5, r[12].s7, r[13].s7, r[12].s9, r[13].s9, r[12].sb, r[13].sb, r[12].sd, r[13].sd, r[12].sf, r[13].sf); \
  r[12] = lo_; r[13] = hi_; \
  lo_ = (floatv)(r[14].s0, r[15].s0, r[14].s2, r[15].s2, r[14].s4, r[15].s4, r[14].s6, r[15].s6, r[14].s8, r[15].s8, r[14].sa, r[15].sa, r[14].sc, r[15].sc, r[14].se, r[15].se); \
  hi_ = (floatv)(r[14].s1, r[15].s1, r[14].s3, r[15].s3, r[14].s5, r[15].s5, r[14].s7, r[15].s7, r[14].s9, r[15].s9, r[14].sb, r[15].sb, r[14].sd, r[15].sd, r[14].sf, r[15].sf); \
  r[14] = lo_; r[15] = hi_; \
  lo_ = (floatv)(r[0].s0, r[0].s1, r[2].s0, r[2].s1, r[0].s4, r[0].s5, r[2].s4, r[2].s5, r[0].s8, r[0].s9, r[2].s8, r[2].s9, r[0].sc, r[0].sd, r[2].sc, r[2].sd); \
  hi_ = (floatv)(r[0].s2, r[0].s3, r[2].s2, r[2].s3, r[0].s6, r[0].s7, r[2].s6, r[2].s7, r[0].sa, r[0].sb, r[2].sa, r[2].sb, r[0].se, r[0].sf, r[2].se, r[2].sf); \
  r[0] = lo_; r[2] = hi_; \
  lo_ = (floatv)(r[1].s0, r[1].s1, r[3].s0, r[3].s1, r[1].s4, r[1].s5, r[3].s4, r[3].s5, r[1].s8, r[1].s9, r[3].s8, r[3].s9, r[1].sc, r[1].sd, r[3].sc, r[3].sd); \
  hi_ = (floatv)(r[1].s2, r[1].s3, r[3].s2, r[3].s3, r[1].s6, r[1].s7, r[3].s6, r[3].s7, r[1].sa, r[1].sb, r[3].sa, r[3].sb, r[1].se, r[1].sf, r[3].se, r[3].sf); \
  r[1] = lo_; r[3] = hi_; \
  lo_ = (floatv)(r[4].s0, r[4].s1, r[6].s0, r[6].s1, r[4].s4, r[4].s5, r[6].s4, r[6].s5, r[4].s8, r[4].s9, r[6].s8, r[6].s9, r[4].sc, r[4].sd, r[6].sc, r[6].sd); \
  hi_ = (floatv)(r[4].s2, r[4].s3, r[6].s2, r[6].s3, r[4].s6, r[4].s7, r[6].s6, r[6].s7, r[4].sa, r[4].sb, r[6].sa, r[6].sb, r[4].se, r[4].sf, r[6].se, r[6].sf); \
  r[4] = lo_; r[6] = hi_; \
  lo_ = (floatv)(r[5].s0, r[5].s1, r[7].s0, r[7].s1, r[5].s4, r[5].s5, r[7].s4, r[7].s5, r[5].s8, r[5].s9, r[7].s8, r[7].s9, r[5].sc, r[5].sd, r[7].sc, r[7].sd); \
  hi_ = (floatv)(r[5].s2, r[5].s3, r[7].s2, r[7].s3, r[5].s6, r[5].s7, r[7].s6, r[7].s7, r[5].sa, r[5].sb, r[7].sa, r[7].sb, r[5].se, r[5].sf, r[7].se, r[7].sf); \
  r[5] = lo_; r[7] = hi_; \
  lo_ = (floatv)(r[8].s0, r[8].s1, r[10].s0, r[10].s1, r[8].s4, r[8].s5, r[10].s4, r[10].s5, r[8].s8, r[8].s9, r[10].s8, r[10].s9, r[8].sc, r[8].sd, r[10].sc, r[10].sd); \
  hi_ = (floatv)(r[8].s2, r[8].s3, r[10].s2, r[10].s3, r[8].s6, r[8].s7, r[10].s6, r[10].s7, r[8].sa, r[8].sb, r[10].sa, r[10].sb, r[8].se, r[8].sf, r[10].se, r[10].sf); \
  r[8] = lo_; r[10] = hi_; \
  lo_ = (floatv)(r[9].s0, r[9].s1, r[11].s0, r[11].s1, r[9].s4, r[9].s5, r[11].s4, r[11].s5, r[9].s8, r[9].s9, r[11].s8, r[11].s9, r[9].sc, r[9].sd, r[11].sc, r[11].sd); \
  hi_ = (floatv)(r[9].s2, r[9].s3, r[11].s2, r[11].s3, r[9].s6, r[9].s7, r[11].s6, r[11].s7, r[9].sa, r[9].sb, r[11].sa, r[11].sb, r[9].se, r[9].sf, r[11].se, r[11].sf); \
  r[9] = lo_; r[11] = hi_; \
  lo_ = (floatv)(r[12].s0, r[12].s1, r[14].s0, r[14].s1, r[12].s4, r[12].s5, r[14].s4, r[14].s5, r[12].s8, r[12].s9, r[14].s8, r[14].s9, r[12].sc, r[12].sd, r[14].sc, r[14].sd); \
  hi_ = (floatv)(r[12].s2, r[12].s3, r[14].s2, r[14].s3, r[12].s6, r[12].s7, r[14].s6, r[14].s7, r[12].sa, r[12].sb, r[14].sa, r[14].sb, r[12].se, r[12].sf, r[14].se, r[14].sf); \
  r[12] = lo_; r[14] = hi_; \
  lo_ = (floatv)(r[13].s0, r[13].s1, r[15].s0, r[15].s1, r[13].s4, r[13].s5, r[15].s4, r[15].s5, r[13].s8, r[13].s9, r[15].s8, r[15].s9, r[13].sc, r[13].sd, r[15].sc, r[15].sd); \
  hi_ = (floatv)(r[13].s2, r[13].s3, r[15].s2, r[15].s3, r[13].s6, r[13].s7, r[15].s6, r[15].s7, r[13].sa, r[13].sb, r[15].sa, r[15].sb, r[13].se, r[13].sf, r[15].se, r[15].sf); \
  r[13] = lo_; r[15] = hi_; \
  lo_ = (floatv)(r[0].s0, r[0].s1, r[0].s2, r[0].s3, r[4].s0, r[4].s1, r[4].s2, r[4].s3, r[0].s8, r[0].s9, r[0].sa, r[0].sb, r[4].s8, r[4].s9, r[4].sa, r[4].sb); \
  hi_ = (floatv)(r[0].s4, r[0].s5, r[0].s6, r[0].s7, r[4].s4, r[4].s5, r[4].s6, r[4].s7, r[0].sc, r[0].sd, r[0].se, r[0].sf, r[4].sc, r[4].sd, r[4].se, r[4].sf); \
  r[0] = lo_; r[4] = hi_; \
  lo_ = (floatv)(r[1].s0, r[1].s1, r[1].s2, r[1].s3, r[5].s0, r[5].s1, r[5].s2, r[5].s3, r[1].s8, r[1].s9, r[1].sa, r[1].sb, r[5].s8, r[5].s9, r[5].sa, r[5].sb); \
  hi_ = (floatv)(r[1].s4, r[1].s5, r[1].s6, r[1].s7, r[5].s4, r[5].s5, r[5].s6, r[5].s7, r[1].sc, r[1].sd, r[1].se, r[1].sf, r[5].sc, r[5].sd, r[5].se, r[5].sf); \
  r[1] = lo_; r[5] = hi_; \
  lo_ = (floatv)(r[2].s0, r[2].s1, r[2].s2, r[2].s3, r[6].s0, r[6].s1, r[6].s2, r[6].s3, r[2].s8, r[2].s9, r[2].sa, r[2].sb, r[6].s8, r[6].s9, r[6].sa, r[6].sb); \
  hi_ = (floatv)(r[2].s4, r[2].s5, r[2].s6, r[2].s7, r[6].s4, r[6].s5, r[6].s6, r[6].s7, r[2].sc, r[2].sd, r[2].se, r[2].sf, r[6].sc, r[6].sd, r[6].se, r[6].sf); \
  r[2] = lo_; r[6] = hi_; \
  lo_ = (floatv)(r[3].s0, r[3].s1, r[3].s2, r[3].s3, r[7].s0, r[7].s1, r[7].s2, r[7].s3, r[3].s8, r[3].s9, r[3].sa, r[3].sb, r[7].s8, r[7].s9, r[7].sa, r[7].sb); \
  hi_ = (floatv)(r[3].s4, r[3].s5, r[3].s6, r[3].s7, r[7].s4, r[7].s5, r[7].s6, r[7].s7, r[3].sc, r[3].sd, r[3].se, r[3].sf, r[7].sc, r[7].sd, r[7].se, r[7].sf); \
  r[3] = lo_; r[7] = hi_; \
  lo_ = (floatv)(r[8].s0, r[8].s1, r[8].s2, r[8].s3, r[12].s0, r[12].s1, r[12].s2, r[12].s3, r[8].s8, r[8].s9, r[8].sa, r[8].sb, r[12].s8, r[12].s9, r[12].sa, r[12].sb); \
  hi_ = (floatv)(r[8].s4, r[8].s5, r[8].s6, r[8].s7, r[12].s4, r[12].s5, r[12].s6, r[12].s7, r[8].sc, r[8].sd, r[8].se, r[8].sf, r[12].sc, r[12].sd, r[12].se, r[12].sf); \
  r[8] = lo_; r[12] = hi_; \
  lo_ = (floatv)(r[9].s0, r[9].s1, r[9].s2, r[9].s3, r[13].s0, r[13].s1, r[13].s2, r[13].s3, r[9].s8, r[9].s9, r[9].sa, r[9].sb, r[13].s8, r[13].s9, r[13].sa, r[13].sb); \
  hi_ = (floatv)(r[9].s4, r[9].s5, r[9].s6, r[9].s7, r[13].s4, r[13].s5, r[13].s6, r[13].s7, r[9].sc, r[9].sd, r[9].se, r[9].sf, r[13].sc, r[13].sd, r[13].se, r[13].sf); \
  r[9] = lo_; r[13] = hi_; \
  lo_ = (floatv)(r[10].s0, r[10].s1, r[10].s2, r[10].s3, r[14].s0, r[14].s1, r[14].s2, r[14].s3, r[10].s8, r[10].s9, r[10].sa, r[10].sb, r[14].s8, r[14].s9, r[14].sa, r[14].sb); \
  hi_ = (floatv)(r[10].s4, r[10].s5, r[10].s6, r[10].s7, r[14].s4, r[14].s5, r[14].s6, r[14].s7, r[10].sc, r[10].sd, r[10].se, r[10].sf, r[14].sc, r[14].sd, r[14].se, r[14].sf); \
  r[10] = lo_; r[14] = hi_; \
  lo_ = (floatv)(r[11].s0, r[11].s1, r[11].s2, r[11].s3, r[15].s0, r[15].s1, r[15].s2, r[15].s3, r[11].s8, r[11].s9, r[11].sa, r[11].sb, r[15].s8, r[15].s9, r[15].sa, r[15].sb); \
  hi_ = (floatv)(r[11].s4, r[11].s5, r[11].s6, r[11].s7, r[15].s4, r[15].s5, r[15].s6, r[15].s7, r[11].sc, r[11].sd, r[11].se, r[11].sf, r[15].sc, r[15].sd, r[15].se, r[15].sf); \
  r[11] = lo_; r[15] = hi_; \
  lo_ = (floatv)(r[0].s0, r[0].s1, r[0].s2, r[0].s3, r[0].s4, r[0].s5, r[0].s6, r[0].s7, r[8].s0, r[8].s1, r[8].s2, r[8].s3, r[8].s4, r[8].s5, r[8].s6, r[8].s7); \
  hi_ = (floatv)(r[0].s8, r[0].s9, r[0].sa, r[0].sb, r[0].sc, r[0].sd, r[0].se, r[0].sf, r[8].s8, r[8].s9, r[8].sa, r[8].sb, r[8].sc, r[8].sd, r[8].se, r[8].sf); \
  r[0] = lo_; r[8] = hi_; \
  lo_ = (floatv)(r[1].s0, r[1].s1, r[1].s2, r[1].s3, r[1].s4, r[1].s5, r[1].s6, r[1].s7, r[9].s0, r[9].s1, r[9].s2, r[9].s3, r[9].s4, r[9].s5, r[9].s6, r[9].s7); \
  hi_ = (floatv)(r[1].s8, r[1].s9, r[1].sa, r[1].sb, r[1].sc, r[1].sd, r[1].se, r[1].sf, r[9].s8, r[9].s9, r[9].sa, r[9].sb, r[9].sc, r[9].sd, r[9].se, r[9].sf); \
  r[1] = lo_; r[9] = hi_; \
  lo_ = (floatv)(r[2].s0, r[2].s1, r[2].s2, r[2].s3, r[2].s4, r[2].s5, r[2].s6, r[2].s7, r[10].s0, r[10].s1, r[10].s2, r[10].s3, r[10].s4, r[10].s5, r[10].s6, r[10].s7); \
  hi_ = (floatv)(r[2].s8, r[2].s9, r[2].sa, r[2].sb, r[2].sc, r[2].sd, r[2].se, r[2].sf, r[10].s8, r[10].s9, r[10].sa, r[10].sb, r[10].sc, r[10].sd, r[10].se, r[10].sf); \
  r[2] = lo_; r[10] = hi_; \
  lo_ = (floatv)(r[3].s0, r[3].s1, r[3].s2, r[3].s3, r[3].s4, r[3].s5, r[3].s6, r[3].s7, r[11].s0, r[11].s1, r[11].s2, r[11].s3, r[11].s4, r[11].s5, r[11].s6, r[11].s7); \
  hi_ = (floatv)(r[3].s8, r[3].s9, r[3].sa, r[3].sb, r[3].sc, r[3].sd, r[3].se, r[3].sf, r[11].s8, r[11].s9, r[11].sa, r[11].sb, r[11].sc, r[11].sd, r[11].se, r[11].sf); \
  r[3] = lo_; r[11] = hi_; \
  lo_ = (floatv)(r[4].s0, r[4].s1, r[4].s2, r[4].s3, r[4].s4, r[4].s5, r[4].s6, r[4].s7, r[12].s0, r[12].s1, r[12].s2, r[12].s3, r[12].s4, r[12].s5, r[12].s6, r[12].s7); \
  hi_ = (floatv)(r[4].s8, r[4].s9, r[4].sa, r[4].sb, r[4].sc, r[4].sd, r[4].se, r[4].sf, r[12].s8, r[12].s9, r[12].sa, r[12].sb, r[12].sc, r[12].sd, r[12].se, r[12].sf); \
  r[4] = lo_; r[12] = hi_; \
  lo_ = (floatv)(r[5].s0, r[5].s1, r[5].s2, r[5].s3, r[5].s4, r[5].s5, r[5].s6, r[5].s7, r[13].s0, r[13].s1, r[13].s2, r[13].s3, r[13].s4, r[13].s5, r[13].s6, r[13].s7); \
  hi_ = (floatv)(r[5].s8, r[5].s9, r[5].sa, r[5].sb, r[5].sc, r[5].sd, r[5].se, r[5].sf, r[13].s8, r[13].s9, r[13].sa, r[13].sb, r[13].sc, r[13].sd, r[13].se, r[13].sf); \
  r[5] = lo_; r[13] = hi_; \
  lo_ = (floatv)(r[6].s0, r[6].s1, r[6].s2, r[6].s3, r[6].s4, r[6].s5, r[6].s6, r[6].s7, r[14].s0, r[14].s1, r[14].s2, r[14].s3, r[14].s4, r[14].s5, r[14].s6, r[14].s7); \
  hi_ = (floatv)(r[6].s8, r[6].s9, r[6].sa, r[6].sb, r[6].sc, r[6].sd, r[6].se, r[6].sf, r[14].s8, r[14].s9, r[14].sa, r[14].sb, r[14].sc, r[14].sd, r[14].se, r[14].sf); \
  r[6] = lo_; r[14] = hi_; \
  lo_ = (floatv)(r[7].s0, r[7].s1, r[7].s2, r[7].s3, r[7].s4, r[7].s5, r[7].s6, r[7].s7, r[15].s0, r[15].s1, r[15].s2, r[15].s3, r[15].s4, r[15].s5, r[15].s6, r[15].s7); \
  hi_ = (floatv)(r[7].s8, r[7].s9, r[7].sa, r[7].sb, r[7].sc, r[7].sd, r[7].se, r[7].sf, r[15].s8, r[15].s9, r[15].sa, r[15].sb, r[15].sc, r[15].sd, r[15].se, r[15].sf); \
  r[7] = lo_; r[15] = hi_; \
} while (0)
#elif VW == 8
#define TRANSPOSEV(r) do { floatv lo_, hi_; \
  lo_ = (floatv)(r[0].s0, r[1].s0, r[0].s2, r[1].s2, r[0].s4, r[1].s4, r[0].s6, r[1].s6); \
  hi_ = (floatv)(r[0].s1, r[1].s1, r[0].s3, r[1].s3, r[0].s5, r[1].s5, r[0].s7, r[1].s7); \
  r[0] = lo_; r[1] = hi_; \
  lo_ = (floatv)(r[2].s0, r[3].s0, r[2].s2, r[3].s2, r[2].s4, r[3].s4, r[2].s6, r[3].s6); \
  hi_ = (floatv)(r[2].s1, r[3].s1, r[2].s3, r[3].s3, r[2].s5, r[3].s5, r[2].s7, r[3].s7); \
  r[2] = lo_; r[3] = hi_; \
  lo_ = (floatv)(r[4].s0, r[5].s0, r[4].s2, r[5].s2, r[4].s4, r[5].s4, r[4].s6, r[5].s6); \
  hi_ = (floatv)(r[4].s1, r[5].s1, r[4].s3, r[5].s3, r[4].s5, r[5].s5, r[4].s7, r[5].s7); \
  r[4] = lo_; r[5] = hi_; \
  lo_ = (floatv)(r[6].s0, r[7].s0, r[6].s2, r[7].s2, r[6].s4, r[7].s4, r[6].s6, r[7].s6); \
  hi_ = (floatv)(r[6].s1, r[7].s1, r[6].s3, r[7].s3, r[6].s5, r[7].s5, r[6].s7, r[7].s7); \
  r[6] = lo_; r[7] = hi_; \
  lo_ = (floatv)(r[0].s0, r[0].s1, r[2].s0, r[2].s1, r[0].s4, r[0].s5, r[2].s4, r[2].s5); \
  hi_ = (floatv)(r[0].s2, r[0].s3, r[2].s2, r[2].s3, r[0].s6, r[0].s7, r[2].s6, r[2].s7); \
  r[0] = lo_; r[2] = hi_; \
  lo_ = (floatv)(r[1].s0, r[1].s1, r[3].s0, r[3].s1, r[1].s4, r[1].s5, r[3].s4, r[3].s5); \
  hi_ = (floatv)(r[1].s2, r[1].s3, r[3].s2, r[3].s3, r[1].s6, r[1].s7, r[3].s6, r[3].s7); \
  r[1] = lo_; r[3] = hi_; \
  lo_ = (floatv)(r[4].s0, r[4].s1, r[6].s0, r[6].s1, r[4].s4, r[4].s5, r[6].s4, r[6].s5); \
  hi_ = (floatv)(r[4].s2, r[4].s3, r[6].s2, r[6].s3, r[4].s6, r[4].s7, r[6].s6, r[6].s7); \
  r[4] = lo_; r[6] = hi_; \
  lo_ = (floatv)(r[5].s0, r[5].s1, r[7].s0, r[7].s1, r[5].s4, r[5].s5, r[7].s4, r[7].s5); \
  hi_ = (floatv)(r[5].s2, r[5].s3, r[7].s2, r[7].s3, r[5].s6, r[5].s7, r[7].s6, r[7].s7); \
  r[5] = lo_; r[7] = hi_; \
  lo_ = (floatv)(r[0].s0, r[0].s1, r[0].s2, r[0].s3, r[4].s0, r[4].s1, r[4].s2, r[4].s3); \
  hi_ = (floatv)(r[0].s4, r[0].s5, r[0].s6, r[0].s7, r[4].s4, r[4].s5, r[4].s6, r[4].s7); \
  r[0] = lo_; r[4] = hi_; \
  lo_ = (floatv)(r[1].s0, r[1].s1, r[1].s2, r[1].s3, r[5].s0, r[5].s1, r[5].s2, r[5].s3); \
  hi_ = (floatv)(r[1].s4, r[1].s5, r[1].s6, r[1].s7, r[5].s4, r[5].s5, r[5].s6, r[5].s7); \
  r[1] = lo_; r[5] = hi_; \
  lo_ = (floatv)(r[2].s0, r[2].s1, r[2].s2, r[2].s3, r[6].s0, r[6].s1, r[6].s2, r[6].s3); \
  hi_ = (floatv)(r[2].s4, r[2].s5, r[2].s6, r[2].s7, r[6].s4, r[6].s5, r[6].s6, r[6].s7); \
  r[2] = lo_; r[6] = hi_; \
  lo_ = (floatv)(r[3].s0, r[3].s1, r[3].s2, r[3].s3, r[7].s0, r[7].s1, r[7].s2, r[7].s3); \
  hi_ = (floatv)(r[3].s4, r[3].s5, r[3].s6, r[3].s7, r[7].s4, r[7].s5, r[7].s6, r[7].s7); \
  r[3] = lo_; r[7] = hi_; \
} while (0)
#else
#define TRANSPOSEV(r) do { floatv lo_, hi_; \
  lo_ = (floatv)(r[0].s0, r[1].s0, r[0].s2, r[1].s2); \
  hi_ = (floatv)(r[0].s1, r[1].s1, r[0].s3, r[1].s3); \
  r[0] = lo_; r[1] = hi_; \
  lo_ = (floatv)(r[2].s0, r[3].s0, r[2].s2, r[3].s2); \
  hi_ = (floatv)(r[2].s1, r[3].s1, r[2].s3, r[3].s3); \
  r[2] = lo_; r[3] = hi_; \
  lo_ = (floatv)(r[0].s0, r[0].s1, r[2].s0, r[2].s1); \
  hi_ = (floatv)(r[0].s2, r[0].s3, r[2].s2, r[2].s3); \
  r[0] = lo_; r[2] = hi_; \
  lo_ = (floatv)(r[1].s0, r[1].s1, r[3].s0, r[3].s1); \
  hi_ = (floatv)(r[1].s2, r[1].s3, r[3].s2, r[3].s3); \
  r[1] = lo_; r[3] = hi_; \
} while (0)
#endif

/* Loads the VW x VW block of op(B) = B^T at rows k0.., columns jb.. (B
 * stored (N,K)) into r[] as k-rows: r[kk].s[q] = B[(jb+q)*ldb + k0+kk],
 * zero outside N x K. */
#define LOAD_BT_BLOCK(r, b, ldb, jb, k0, N, K)                                                  \
  do {                                                                                          \
    if ((k0) + VW <= (K) && (jb) + VW <= (N)) {                                                 \
      _Pragma("unroll") for (int q = 0; q < VW; q++) r[q] = VLOAD(0, (b) + (ulong)((jb) + q) * (ldb) + (k0)); \
    } else {                                                                                    \
      for (int q = 0; q < VW; q++) {                                                            \
        float t_[VW];                                                                           \
        for (int kk = 0; kk < VW; kk++)                                                         \
          t_[kk] = ((jb) + q < (N) && (k0) + kk < (K)) ? (b)[(ulong)((jb) + q) * (ldb) + (k0) + kk] : 0.0f; \
        r[q] = VLOAD(0, t_);                                                                    \
      }                                                                                         \
    }                                                                                           \
    TRANSPOSEV(r);                                                                              \
  } while (0)

/* op(B) for all column panels packed once into Bp[z][tn][k][NR] (zero
 * beyond N): the layout gemm_tile reads with b_ts = K*NR, b_rs = NR. Used for
 * a transposed B when many row tiles share each panel (packing it once beats
 * packing it per work-item). One work-item per (PBK VW-row chunks of k,
 * VW-column group, z); transposition through registers. A row-major B
 * goes through pack_b_rows below. */
#ifndef PBK
#define PBK 4 /* VW x VW blocks along k per pack_bt work-item */
#endif
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void pack_bt(
    __global float *Bp, ulong bp_off, ulong bp_batch, __global const float *B, ulong b_off, int ldb, ulong sB, int N,
    int K) {
  int kc = get_global_id(0) * (VW * PBK), jgroup = get_global_id(1), z = get_global_id(2);
  int jb = jgroup * VW, tn = jb / NR, jin = jb - tn * NR;
  __global const float *b = B + b_off + (ulong)z * sB;
  __global float *dst = Bp + bp_off + (ulong)z * bp_batch + (ulong)tn * K * NR + jin;
  for (int k0 = kc; k0 < min(K, kc + VW * PBK); k0 += VW) {
    floatv r[VW];
    LOAD_BT_BLOCK(r, b, ldb, jb, k0, N, K);
    int kn = min(VW, K - k0);
    for (int kk = 0; kk < kn; kk++) VSTORE(r[kk], 0, dst + (ulong)(k0 + kk) * NR);
  }
}

/* pack_bt's layout for a row-major B (K,N), one work-item per PKB rows of
 * k: each row is read once, front to back, and dealt out NR floats (whole
 * cache lines with AVX2/AVX-512 widths) to every panel. (pack_bt's VW x VW
 * blocks read VW short runs rows apart per work-item, which for CLIP's
 * power-of-two widths ran at a third of the copy bandwidth.) */
#define PKB 8
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void pack_b_rows(
    __global float *Bp, ulong bp_off, ulong bp_batch, __global const float *B, ulong b_off, int ldb, ulong sB, int N,
    int K) {
  int k0 = get_global_id(0) * PKB, z = get_global_id(1);
  int k1 = min(K, k0 + PKB), nfull = N / NR, ntl = (N + NR - 1) / NR;
  __global const float *b = B + b_off + (ulong)z * sB;
  __global float *bp = Bp + bp_off + (ulong)z * bp_batch;
  for (int k = k0; k < k1; k++) {
    __global const float *src = b + (ulong)k * ldb;
    __global float *dst = bp + (ulong)k * NR;
    for (int tn = 0; tn < nfull; tn++, src += NR, dst += (ulong)K * NR)
#pragma unroll
      for (int v = 0; v < NV; v++) VSTORE(VLOAD(v, src), v, dst);
    if (nfull < ntl) /* the last, partial panel, zero padded */
      for (int jj = 0; jj < NR; jj++) dst[jj] = nfull * NR + jj < N ? src[jj] : 0.0f;
  }
}

#ifndef KCL
#define KCL 512
#endif
#undef PF_STEP
#define PF_STEP() /* gemm_tile_packed: its panel is a cache-resident copy */

/* Like gemm_tile, for a B that is not packed (one block of row tiles, where
 * packing all of B would cost more than the product): each work-item first copies its
 * NR columns of op(B) for K <= KCL rows into a k-major panel in local memory
 * (on a CPU: a cache-resident buffer; transposition through registers,
 * VW x VW at a time), then multiplies it with up to MB row tiles of A, so the
 * copy costs 1/(MB*MR) of the arithmetic and never goes out to DRAM.
 *   op(B)(k,j) = transB ? B[b_off + z*sB + j*ldb + k] : B[... + k*ldb + j] */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void gemm_tile_packed(
    __global const float *A, ulong a_off, ulong sA, ulong a_ts, int a_rs, int a_cs, int a_clamp,
    __global const float *B, ulong b_off, ulong sB, int ldb, int transB,
    __global float *C, ulong c_off, int ldc, ulong sC, __global const float *bias, ulong bias_off,
    int has_bias, __global const float *R, ulong r_off, int ldr, __global float *C2, ulong c2_off, int epi,
    int M, int N, int K, float alpha, float beta, int mtiles, int ntiles, int MB) {
  epilogue e = {R + r_off, ldr, C2 + c2_off, epi};
  __local float bp[KCL * NR];
  int g = get_global_id(0), z = get_global_id(1);
  int blk = g / ntiles, tn = g - blk * ntiles;
  int j0 = tn * NR;
  __global const float *b = B + b_off + (ulong)z * sB;
  if (transB) {
    for (int jg = 0; jg < NV; jg++) {
      int jb = j0 + VW * jg;
      for (int k0 = 0; k0 < K; k0 += VW) {
        floatv r[VW];
        LOAD_BT_BLOCK(r, b, ldb, jb, k0, N, K);
        int kn = min(VW, K - k0);
        for (int kk = 0; kk < kn; kk++) VSTORE(r[kk], 0, bp + (k0 + kk) * NR + VW * jg);
      }
    }
  } else {
    for (int k = 0; k < K; k++)
      for (int jj = 0; jj < NR; jj++)
        bp[k * NR + jj] = j0 + jj < N ? b[(ulong)k * ldb + j0 + jj] : 0.0f;
  }
  int tm_end = min(mtiles, (blk + 1) * MB);
  for (int tm = blk * MB; tm < tm_end; tm++) {
    int i0 = tm * MR;
    int imax = a_clamp ? min(MR - 1, M - 1 - i0) : MR - 1;
    __global const float *a = A + a_off + (ulong)z * sA + (ulong)tm * a_ts;
    int edge = a_clamp && i0 + MR > M;
    TILE_ZERO();
    TILE(a, imax, edge, bp, NR, K);
    store_tile(acc, C + c_off + (ulong)z * sC, ldc, i0, j0, M, N, alpha, beta, bias + bias_off, has_bias, e);
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

/* The epilogue of store_tile on its own, one work-item per element of C:
 * for the backends whose GEMM has none (CLBlast, naive). */
__kernel void gemm_epilogue(__global float *C, ulong c_off, int ldc, __global const float *R, ulong r_off, int ldr,
                            __global float *C2, ulong c2_off, int epi, int M, int N) {
  int j = get_global_id(0), i = get_global_id(1);
  if (i >= M || j >= N) return;
  ulong o = c_off + (ulong)i * ldc + j;
  float x = C[o];
  if (epi & EPI_RESID) x += R[r_off + (ulong)i * ldr + j];
  if (epi & (EPI_GELU | EPI_QUICK)) {
    float y = act_s(x, epi);
    if (epi & EPI_KEEP_PRE) C2[c2_off + (ulong)i * ldc + j] = y;
    else x = y;
  }
  C[o] = x;
}

/* C[i,j] += bias[j] (after a backend without a bias epilogue). */
__kernel void add_bias(__global float *C, ulong c_off, int ldc, ulong sC, __global const float *bias,
                       ulong bias_off, int M, int N) {
  int j = get_global_id(0), i = get_global_id(1), z = get_global_id(2);
  if (i >= M || j >= N) return;
  C[c_off + (ulong)z * sC + (ulong)i * ldc + j] += bias[bias_off + j];
}

/* Column sums in two deterministic stages: colsum_part sums a chunk of
 * `chunk` rows for VW columns per work-item (floatv loads along the row),
 * colsum_final adds the chunks' partial sums in order. */
__kernel void colsum_part(__global float *part, __global const float *x, ulong x_off, int rows, int cols, int ld,
                          int chunk) {
  int cb = get_global_id(0), r = get_global_id(1);
  int j0 = cb * VW, i0 = r * chunk, i1 = min(rows, i0 + chunk);
  if (j0 >= cols) return;
  __global const float *p = x + x_off + j0;
  __global float *out = part + (ulong)r * cols + j0;
  if (j0 + VW <= cols) {
    floatv s = (floatv)(0.0f);
    for (int i = i0; i < i1; i++) s += VLOAD(0, p + (ulong)i * ld);
    VSTORE(s, 0, out);
  } else {
    for (int j = 0; j0 + j < cols; j++) {
      float s = 0.0f;
      for (int i = i0; i < i1; i++) s += p[(ulong)i * ld + j];
      out[j] = s;
    }
  }
}

__kernel void colsum_final(__global float *out, ulong out_off, __global const float *part, int nparts, int cols,
                           int accumulate) {
  int j = get_global_id(0);
  if (j >= cols) return;
  float s = 0.0f;
  for (int r = 0; r < nparts; r++) s += part[(ulong)r * cols + j];
  if (accumulate) out[out_off + j] += s;
  else out[out_off + j] = s;
}

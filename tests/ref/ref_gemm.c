/* ref_gemm.c: see ref_gemm.h. */
#include "ref/ref_gemm.h"

#include <stddef.h>

void ref_gemm(double *C, int transA, int transB, int M, int N, int K, double alpha, const float *A, int lda,
              const float *B, int ldb, double beta, const float *C0, int ldc0, const float *bias) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) {
        double a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        double b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        s += a * b;
      }
      double r = alpha * s;
      if (C0 && beta != 0) r += beta * C0[(size_t)i * ldc0 + j];
      if (bias) r += bias[j];
      C[(size_t)i * N + j] = r;
    }
}

void ref_linear_fwd(double *out, const float *inp, const float *w, const float *b, int N, int IC, int OC) {
  ref_gemm(out, 0, 1, N, OC, IC, 1.0, inp, IC, w, IC, 0.0, NULL, 0, b);
}

void ref_linear_bwd(double *dinp, double *dw, double *db, const float *dout, const float *inp, const float *w,
                    int N, int IC, int OC) {
  if (dinp) ref_gemm(dinp, 0, 0, N, IC, OC, 1.0, dout, OC, w, IC, 0.0, NULL, 0, NULL);
  if (dw) ref_gemm(dw, 1, 0, OC, IC, N, 1.0, dout, OC, inp, IC, 0.0, NULL, 0, NULL);
  if (db)
    for (int j = 0; j < OC; j++) {
      double s = 0;
      for (int i = 0; i < N; i++) s += dout[(size_t)i * OC + j];
      db[j] = s;
    }
}

/* ref_gemm.h: plain C GEMM and linear layer (double accumulation). */
#ifndef REF_GEMM_H
#define REF_GEMM_H
/* C (M,N) = alpha*op(A)op(B) + beta*C0 + bias; C0 and bias may be NULL. */
void ref_gemm(double *C, int transA, int transB, int M, int N, int K, double alpha, const float *A, int lda,
              const float *B, int ldb, double beta, const float *C0, int ldc0, const float *bias);
/* out (N,OC) = inp (N,IC) w(OC,IC)^T + b */
void ref_linear_fwd(double *out, const float *inp, const float *w, const float *b, int N, int IC, int OC);
/* dinp = dout w; dw = dout^T inp; db = colsum(dout) (not accumulated) */
void ref_linear_bwd(double *dinp, double *dw, double *db, const float *dout, const float *inp, const float *w,
                    int N, int IC, int OC);
#endif

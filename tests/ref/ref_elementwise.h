/* ref_elementwise.h: plain C references (double accumulation) for elementwise ops. */
#ifndef REF_ELEMENTWISE_H
#define REF_ELEMENTWISE_H
#include <stddef.h>
void ref_gelu_fwd(double *out, const float *inp, size_t n, int quick);
/* dinp = dout * gelu'(inp) (not accumulated) */
void ref_gelu_bwd(double *dinp, const float *inp, const float *dout, size_t n, int quick);
#endif

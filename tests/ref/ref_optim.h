/* ref_optim.h: plain C optimiser references in double: the global norm,
 * clip_grad_norm_'s factor, and AdamW (PyTorch's decoupled-decay formula)
 * with the per-parameter mask of src/ops/ops.h (0 no decay, 1 decay,
 * 2 frozen). State (p, m, v) is kept in double by the caller. */
#ifndef REF_OPTIM_H
#define REF_OPTIM_H
#include <stddef.h>
/* sqrt(sum x^2), compensated double sum */
double ref_global_norm(const float *x, size_t n);
/* min(1, max_norm / (norm + 1e-6)) */
double ref_clip_factor(double norm, double max_norm);
/* One step t >= 1 over n elements; g is multiplied by gscale first. */
void ref_adamw(double *p, double *m, double *v, const float *g, const unsigned char *mask, size_t n, double gscale,
               double lr, double beta1, double beta2, double eps, double wd, int t);
#endif

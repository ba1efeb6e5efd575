/* ref_optim.c: see ref_optim.h. */
#include "ref/ref_optim.h"

#include <math.h>

double ref_global_norm(const float *x, size_t n) {
  double s = 0, c = 0; /* Kahan in double: exact enough for 1e9 terms */
  for (size_t i = 0; i < n; i++) {
    double y = (double)x[i] * x[i] - c, t = s + y;
    c = (t - s) - y;
    s = t;
  }
  return sqrt(s);
}

double ref_clip_factor(double norm, double max_norm) {
  double f = max_norm / (norm + 1e-6);
  return f < 1 ? f : 1;
}

void ref_adamw(double *p, double *m, double *v, const float *g, const unsigned char *mask, size_t n, double gscale,
               double lr, double beta1, double beta2, double eps, double wd, int t) {
  double bc1 = 1 - pow(beta1, t), bc2 = 1 - pow(beta2, t);
  for (size_t i = 0; i < n; i++) {
    if (mask[i] == 2) continue;
    double gi = g[i] * gscale;
    if (mask[i] == 1) p[i] *= 1 - lr * wd;
    m[i] = beta1 * m[i] + (1 - beta1) * gi;
    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
    double mhat = m[i] / bc1, vhat = v[i] / bc2;
    p[i] -= lr * mhat / (sqrt(vhat) + eps); /* the paper's form; PyTorch's regrouping is equal */
  }
}

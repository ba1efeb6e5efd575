/* ref_elementwise.c: see ref_elementwise.h. */
#include "ref/ref_elementwise.h"

#include <math.h>

void ref_gelu_fwd(double *out, const float *inp, size_t n, int quick) {
  for (size_t i = 0; i < n; i++) {
    double x = inp[i];
    out[i] = quick ? x / (1.0 + exp(-1.702 * x)) : 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
  }
}

void ref_gelu_bwd(double *dinp, const float *inp, const float *dout, size_t n, int quick) {
  for (size_t i = 0; i < n; i++) {
    double x = inp[i], g;
    if (quick) {
      double s = 1.0 / (1.0 + exp(-1.702 * x));
      g = s + 1.702 * x * s * (1.0 - s);
    } else {
      g = 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / 2.5066282746310002;
    }
    dinp[i] = dout[i] * g;
  }
}

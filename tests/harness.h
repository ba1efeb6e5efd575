/* harness.h: small test harness for op tests: device open, seeded random
 * data, device upload at deliberately odd offsets, comparisons that print the
 * largest difference and where, finite differences, and an exit code that
 * fails the ctest when any check failed. */
#ifndef TH_HARNESS_H
#define TH_HARNESS_H
#include <stddef.h>
#include <stdint.h>

#include "cl/runtime.h"
#include "ops/ops.h"

extern int th_failures;
extern int th_checks;

/* Opens the device (CLIPCL_DEVICE or default); exits 1 with a message if none. */
cc_rt *th_open(void);
/* Frees everything th_dev allocated, closes the device, prints a summary and
 * returns the process exit code (0 only if every check passed). */
int th_finish(cc_rt *rt);

uint64_t th_seed(uint64_t s);              /* sets the global seed, returns old */
double th_uniform(void);                   /* [0,1) */
double th_normal(void);
void th_fill(float *x, size_t n, float lo, float hi);
float *th_alloc(size_t n);                 /* zeroed; freed by th_finish */
double *th_alloc_d(size_t n);
int *th_alloc_i(size_t n);

/* Copies n host floats to a fresh device buffer at an odd offset. */
cc_view th_dev(cc_rt *rt, const float *host, size_t n);
cc_view th_dev_i(cc_rt *rt, const int *host, size_t n);
cc_view th_dev_zero(cc_rt *rt, size_t n);
void th_get(cc_rt *rt, cc_view v, float *host, size_t n);
void th_put(cc_rt *rt, cc_view v, const float *host, size_t n);

/* Passes when |got-want| <= atol + rtol*|want| everywhere; prints the worst. */
int th_close(const char *name, const float *got, const double *want, size_t n, double atol, double rtol);
int th_close_f(const char *name, const float *got, const float *want, size_t n, double atol, double rtol);
/* Passes when ||got-want|| <= tol * max(||want||, floor). */
int th_close_norm(const char *name, const float *got, const double *want, size_t n, double tol);
/* Exact bitwise equality (determinism checks). */
int th_same_bits(const char *name, const float *a, const float *b, size_t n);
/* Records a boolean check. */
int th_assert(const char *name, int ok, const char *fmt, ...);

/* Central finite differences: loss(ctx) is evaluated with x[j] +- h for
 * `count` indices j chosen deterministically over [0,n) (all when count >= n);
 * compares with grad[j] (double) and passes when
 * |fd - grad| <= atol + rtol * max(|grad|, |fd|). Restores x. */
typedef double (*th_loss_fn)(void *ctx);
int th_fd_check(const char *name, th_loss_fn loss, void *ctx, float *x, size_t n, const double *grad,
                int count, double h, double atol, double rtol);
/* Same for gradients held as floats. */
int th_fd_check_f(const char *name, th_loss_fn loss, void *ctx, float *x, size_t n, const float *grad,
                  int count, double h, double atol, double rtol);

/* sum(w .* y) in double: the projection loss used for gradient checks. */
double th_dot(const float *w, const float *y, size_t n);
double th_dot_d(const float *w, const double *y, size_t n);

#define TH_OK(expr)                                                                 \
  do {                                                                              \
    clipcl_status th_s_ = (expr);                                                   \
    if (th_s_ != CLIPCL_OK) {                                                       \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, clipcl_last_error()); \
      exit(1);                                                                      \
    }                                                                               \
  } while (0)
#endif

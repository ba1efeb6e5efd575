/* harness.c: see harness.h. */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int th_failures = 0;
int th_checks = 0;

/* everything th_alloc* and th_dev* hand out, freed by th_finish (grown as
 * needed: a leak report must mean a real leak) */
static void **allocs;
static int nallocs, cap_allocs;
static cl_mem *bufs;
static int nbufs, cap_bufs;

static int grow(void **arr, int *cap, int n, size_t elem) {
  if (n < *cap) return 1;
  int nc = *cap ? 2 * *cap : 1024;
  void *p = realloc(*arr, (size_t)nc * elem);
  if (!p) return 0;
  *arr = p;
  *cap = nc;
  return 1;
}
static uint64_t seed = 0x9E3779B97F4A7C15ull;

cc_rt *th_open(void) {
  cc_rt *rt;
  if (clipcl_device_open(NULL, &rt) != CLIPCL_OK) {
    fprintf(stderr, "cannot open an OpenCL device: %s\n", clipcl_last_error());
    exit(1);
  }
  printf("device: %s\n", cc_info(rt)->name);
  return rt;
}

int th_finish(cc_rt *rt) {
  for (int i = 0; i < nbufs; i++) cc_release(bufs[i]);
  nbufs = 0;
  for (int i = 0; i < nallocs; i++) free(allocs[i]);
  nallocs = 0;
  free(allocs), free(bufs);
  allocs = NULL, bufs = NULL;
  cap_allocs = cap_bufs = 0;
  if (rt) {
    clipcl_device_profile_report(rt, stdout);
    clipcl_device_free(rt);
  }
  printf("%d checks, %d failed\n", th_checks, th_failures);
  return th_failures ? 1 : 0;
}

uint64_t th_seed(uint64_t s) {
  uint64_t o = seed;
  seed = s ? s : 1;
  return o;
}

double th_uniform(void) {
  /* xorshift64* */
  seed ^= seed >> 12;
  seed ^= seed << 25;
  seed ^= seed >> 27;
  return (double)((seed * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

double th_normal(void) {
  double u = th_uniform(), v = th_uniform();
  if (u < 1e-300) u = 1e-300;
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

void th_fill(float *x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * th_uniform());
}

static void *track(void *p) {
  if (!p) {
    fprintf(stderr, "test: out of memory\n");
    exit(1);
  }
  if (grow((void **)&allocs, &cap_allocs, nallocs, sizeof *allocs)) allocs[nallocs++] = p;
  return p;
}
float *th_alloc(size_t n) { return track(calloc(n ? n : 1, sizeof(float))); }
double *th_alloc_d(size_t n) { return track(calloc(n ? n : 1, sizeof(double))); }
int *th_alloc_i(size_t n) { return track(calloc(n ? n : 1, sizeof(int))); }

#define TH_PAD 7 /* odd offset: kernels must honour view offsets */

static cc_view new_view(cc_rt *rt, size_t n) {
  cl_mem m;
  TH_OK(cc_buffer(rt, (n + 2 * TH_PAD) * 4, &m, "test tensor"));
  if (grow((void **)&bufs, &cap_bufs, nbufs, sizeof *bufs)) bufs[nbufs++] = m;
  cc_view v = {m, TH_PAD};
  /* poison the pads and the body so reads of unwritten memory show up */
  TH_OK(cc_fill(rt, (cc_view){m, 0}, n + 2 * TH_PAD, NAN));
  return v;
}

cc_view th_dev(cc_rt *rt, const float *host, size_t n) {
  cc_view v = new_view(rt, n);
  TH_OK(cc_write(rt, v, host, n));
  return v;
}

cc_view th_dev_i(cc_rt *rt, const int *host, size_t n) {
  cc_view v = new_view(rt, n);
  TH_OK(cc_write(rt, v, host, n));
  return v;
}

cc_view th_dev_zero(cc_rt *rt, size_t n) {
  cc_view v = new_view(rt, n);
  TH_OK(cc_fill(rt, v, n, 0.0f));
  return v;
}

void th_get(cc_rt *rt, cc_view v, float *host, size_t n) { TH_OK(cc_read(rt, v, host, n)); }
void th_put(cc_rt *rt, cc_view v, const float *host, size_t n) { TH_OK(cc_write(rt, v, host, n)); }

static int report(const char *name, int ok, double worst, size_t at, double got, double want, const char *tol) {
  th_checks++;
  if (ok) {
    printf("ok   %-48s max|diff| %.3g\n", name, worst);
  } else {
    th_failures++;
    printf("FAIL %-48s max|diff| %.3g at %zu (got %.9g, want %.9g; %s)\n", name, worst, at, got, want, tol);
  }
  return ok;
}

int th_close(const char *name, const float *got, const double *want, size_t n, double atol, double rtol) {
  double worst = 0, excess = -1;
  size_t at = 0, wat = 0;
  int ok = 1;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]);
    double lim = atol + rtol * fabs(want[i]);
    if (!(d <= lim)) { /* catches NaN */
      if (ok || d - lim > excess || isnan(d)) {
        excess = isnan(d) ? INFINITY : d - lim;
        wat = i;
      }
      ok = 0;
    }
    if (d > worst || isnan(d)) {
      worst = isnan(d) ? NAN : d;
      at = i;
    }
  }
  if (!ok) at = wat;
  char tol[64];
  snprintf(tol, sizeof tol, "atol %.2g rtol %.2g", atol, rtol);
  return report(name, ok, worst, at, n ? got[at] : 0, n ? want[at] : 0, tol);
}

int th_close_f(const char *name, const float *got, const float *want, size_t n, double atol, double rtol) {
  double *w = malloc((n ? n : 1) * sizeof *w);
  for (size_t i = 0; i < n; i++) w[i] = want[i];
  int r = th_close(name, got, w, n, atol, rtol);
  free(w);
  return r;
}

int th_close_norm(const char *name, const float *got, const double *want, size_t n, double tol) {
  double num = 0, den = 0, worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
    if (fabs(d) > worst || isnan(d)) {
      worst = fabs(d);
      at = i;
    }
  }
  double rel = sqrt(num) / fmax(sqrt(den), 1e-30);
  char t[96];
  snprintf(t, sizeof t, "relative norm error %.3g > %.2g", rel, tol);
  return report(name, rel <= tol, worst, at, n ? got[at] : 0, n ? want[at] : 0, t);
}

int th_same_bits(const char *name, const float *a, const float *b, size_t n) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; i++)
    if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      if (!bad) first = i;
      bad++;
    }
  char t[64];
  snprintf(t, sizeof t, "%zu elements differ", bad);
  return report(name, bad == 0, 0, first, n ? a[first] : 0, n ? b[first] : 0, t);
}

int th_assert(const char *name, int ok, const char *fmt, ...) {
  th_checks++;
  char msg[512] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  if (ok) {
    printf("ok   %-48s %s\n", name, msg);
  } else {
    th_failures++;
    printf("FAIL %-48s %s\n", name, msg);
  }
  return ok;
}

static int fd_core(const char *name, th_loss_fn loss, void *ctx, float *x, size_t n, const double *grad,
                   const float *gradf, int count, double h, double atol, double rtol) {
  size_t probes = (count <= 0 || (size_t)count >= n) ? n : (size_t)count;
  double worst = -1, wd = 0, wfd = 0, wg = 0;
  size_t wat = 0;
  for (size_t p = 0; p < probes; p++) {
    size_t j = probes == n ? p : (size_t)((p * 2654435761ull + 17) % n);
    float keep = x[j];
    x[j] = (float)(keep + h);
    double hp = (double)x[j] - keep; /* the step actually taken in float */
    double lp = loss(ctx);
    x[j] = (float)(keep - h);
    double hm = keep - (double)x[j];
    double lm = loss(ctx);
    x[j] = keep;
    double fd = (lp - lm) / (hp + hm);
    double g = grad ? grad[j] : (double)gradf[j];
    double d = fabs(fd - g);
    double ratio = d / (atol + rtol * fmax(fabs(g), fabs(fd)));
    if (isnan(ratio)) ratio = INFINITY;
    if (ratio > worst) {
      worst = ratio;
      wat = j;
      wd = d;
      wfd = fd;
      wg = g;
    }
  }
  int ok = worst <= 1.0;
  char t[96];
  snprintf(t, sizeof t, "finite difference %.9g vs gradient %.9g, %zu probes", wfd, wg, probes);
  th_checks++;
  if (ok) {
    printf("ok   %-48s worst |fd-grad| %.3g over %zu probes\n", name, wd, probes);
  } else {
    th_failures++;
    printf("FAIL %-48s |fd-grad| %.3g at %zu (%s; atol %.2g rtol %.2g)\n", name, wd, wat, t, atol, rtol);
  }
  return ok;
}

int th_fd_check(const char *name, th_loss_fn loss, void *ctx, float *x, size_t n, const double *grad,
                int count, double h, double atol, double rtol) {
  return fd_core(name, loss, ctx, x, n, grad, NULL, count, h, atol, rtol);
}

int th_fd_check_f(const char *name, th_loss_fn loss, void *ctx, float *x, size_t n, const float *grad,
                  int count, double h, double atol, double rtol) {
  return fd_core(name, loss, ctx, x, n, NULL, grad, count, h, atol, rtol);
}

double th_dot(const float *w, const float *y, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)w[i] * y[i];
  return s;
}

double th_dot_d(const float *w, const double *y, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)w[i] * y[i];
  return s;
}

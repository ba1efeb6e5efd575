/* common.c: the shared evaluation helpers of eval.h: canonical scores and
 * their blocked form, top-k under the tie rule, the parallel loop, splitmix64,
 * the text buffer with CSV/JSON helpers, and a strict UTF-8 check.
 * Not here: anything a user calls directly (see the other src/eval files). */
#include "eval/eval.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/atomic.h"
#include "util/error.h"

/* ---- scores ------------------------------------------------------------- */
float cc_eval_dot(const float *a, const float *b, int dim) {
  float s = 0.0f;
  for (int e = 0; e < dim; e++) s += a[e] * b[e];
  return s;
}

/* Tile: QB queries x KB keys. Both operands are repacked with e outermost so
 * the inner loop runs across keys (vectorised) while each output still sums
 * over e in order, as cc_eval_dot does. */
#define QB 4
#define KB 8

size_t cc_eval_scores_scratch(int dim) { return (size_t)(dim > 0 ? dim : 1) * (QB + KB); }

void cc_eval_scores(const float *Q, size_t nq, const float *K, size_t nk, int dim, float *out, size_t ldo,
                    float *scratch) {
  float *kt = scratch, *qt = scratch + (size_t)dim * KB;
  for (size_t j0 = 0; j0 < nk; j0 += KB) {
    size_t jn = nk - j0 < KB ? nk - j0 : KB;
    for (int e = 0; e < dim; e++)
      for (size_t jj = 0; jj < KB; jj++) kt[(size_t)e * KB + jj] = jj < jn ? K[(j0 + jj) * dim + e] : 0.0f;
    for (size_t i0 = 0; i0 < nq; i0 += QB) {
      size_t in = nq - i0 < QB ? nq - i0 : QB;
      for (int e = 0; e < dim; e++)
        for (size_t ii = 0; ii < QB; ii++) qt[(size_t)e * QB + ii] = ii < in ? Q[(i0 + ii) * dim + e] : 0.0f;
      float acc[QB][KB] = {{0}};
      for (int e = 0; e < dim; e++) {
        const float *kr = kt + (size_t)e * KB, *qr = qt + (size_t)e * QB;
        for (int ii = 0; ii < QB; ii++)
          for (int jj = 0; jj < KB; jj++) acc[ii][jj] += qr[ii] * kr[jj];
      }
      for (size_t ii = 0; ii < in; ii++)
        for (size_t jj = 0; jj < jn; jj++) out[(i0 + ii) * ldo + j0 + jj] = acc[ii][jj];
    }
  }
}

void cc_eval_topk_row(const float *s, size_t n, int k, int32_t *idx, float *val) {
  int cnt = 0;
  if (k <= 0) return;
  for (size_t j = 0; j < n; j++) {
    float v = s[j];
    /* j grows, so an equal score never displaces an earlier key */
    if (cnt == k && !(v > val[k - 1])) continue;
    int pos = cnt < k ? cnt++ : k - 1;
    while (pos > 0 && v > val[pos - 1]) {
      val[pos] = val[pos - 1];
      idx[pos] = idx[pos - 1];
      pos--;
    }
    val[pos] = v;
    idx[pos] = (int32_t)j;
  }
}

clipcl_status cc_eval_check_finite(const float *x, size_t n, int dim, const char *what) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return cc_fail(CLIPCL_ERR_NUMERIC, "%s: row %zu holds a non-finite value (%g)", what,
                     dim > 0 ? i / (size_t)dim : i, (double)x[i]);
  return CLIPCL_OK;
}

/* ---- threads ------------------------------------------------------------ */
int cc_eval_threads(int requested) {
  if (requested <= 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    requested = cpus > 0 ? (int)(cpus < CC_EVAL_MAX_THREADS ? cpus : CC_EVAL_MAX_THREADS) : 1;
  }
  return requested > CC_EVAL_MAX_THREADS ? CC_EVAL_MAX_THREADS : requested;
}

typedef struct {
  cc_eval_task_fn fn;
  void *ctx;
  size_t ntasks;
  atomic_size_t next;
} par_job;

typedef struct {
  par_job *job;
  int worker;
} par_arg;

static void *par_worker(void *p) {
  par_arg *a = p;
  for (;;) {
    size_t t = atomic_fetch_add(&a->job->next, 1);
    if (t >= a->job->ntasks) break;
    a->job->fn(a->job->ctx, t, a->worker);
  }
  return NULL;
}

void cc_eval_parallel(int threads, size_t ntasks, cc_eval_task_fn fn, void *ctx) {
  threads = cc_eval_threads(threads);
  if ((size_t)threads > ntasks) threads = ntasks ? (int)ntasks : 1;
  par_job job = {.fn = fn, .ctx = ctx, .ntasks = ntasks};
  atomic_init(&job.next, 0);
  pthread_t tid[CC_EVAL_MAX_THREADS];
  par_arg args[CC_EVAL_MAX_THREADS];
  int started = 0;
  for (int t = 1; t < threads; t++) {
    args[started + 1] = (par_arg){&job, started + 1};
    if (pthread_create(&tid[started], NULL, par_worker, &args[started + 1]) != 0) break;
    started++;
  }
  args[0] = (par_arg){&job, 0};
  par_worker(&args[0]);
  for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
}

/* ---- random ------------------------------------------------------------- */
uint64_t cc_eval_rand(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t cc_eval_rand_below(uint64_t *state, uint64_t n) {
  /* rejection keeps it exactly uniform */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    uint64_t r = cc_eval_rand(state);
    if (r < limit) return r % n;
  }
}

/* ---- ranking --------------------------------------------------------------- */
void cc_eval_topk_update(const float *s, size_t n, size_t base, int k, int32_t *idx, float *val, int *cnt) {
  int c = *cnt;
  for (size_t j = 0; j < n; j++) {
    float v = s[j];
    if (c == k && !(v > val[k - 1])) continue;
    int pos = c < k ? c++ : k - 1;
    while (pos > 0 && v > val[pos - 1]) {
      val[pos] = val[pos - 1];
      idx[pos] = idx[pos - 1];
      pos--;
    }
    val[pos] = v;
    idx[pos] = (int32_t)(base + j);
  }
  *cnt = c;
}

/* ---- text output (the buffer itself is src/util/buf.c) ------------------- */
void cc_buf_csv(cc_buf *b, const char *f) {
  size_t n = strlen(f);
  int quote = n > 0 && (f[0] == ' ' || f[0] == '\t' || f[n - 1] == ' ' || f[n - 1] == '\t');
  for (size_t i = 0; i < n && !quote; i++)
    if (f[i] == ',' || f[i] == '"' || f[i] == '\r' || f[i] == '\n') quote = 1;
  if (!quote) {
    cc_buf_add(b, f, n);
    return;
  }
  cc_buf_add(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    if (f[i] == '"') cc_buf_add(b, "\"", 1);
    cc_buf_add(b, &f[i], 1);
  }
  cc_buf_add(b, "\"", 1);
}

void cc_buf_num(cc_buf *b, double v) {
  if (!isfinite(v)) {
    cc_buf_str(b, "null");
    return;
  }
  char s[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, v);
    if (strtod(s, NULL) == v) break;
  }
  cc_buf_str(b, s);
}

size_t cc_utf8_check(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (len - i < n) return i;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n;
  }
  return len;
}

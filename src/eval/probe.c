/* probe.c: the linear probe: multinomial logistic regression fitted with
 * L-BFGS (liblbfgs), a seeded stratified train/val split, the lambda sweep
 * and the refit, and the result's JSON. Not here: extracting or caching the
 * features (the CLI with features.c).
 *
 * Objective (clipcl.h): f(W, b) = mean_i CE(W x_i + b, y_i) + lambda/2 ||W||^2,
 * bias unregularised; scikit-learn's C = 1/(lambda n) gives the same
 * minimiser. The objective and gradient are computed in double from float
 * features over a fixed partition of the samples (by count only) whose
 * partial sums are added in order, so a fit does not depend on the thread
 * count. Parameters are laid out [W (classes x dim) | b (classes) | padding].
 */
#include <lbfgs.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "util/error.h"

#define PART_MAX 16
#define PART_MIN_ROWS 256

void clipcl_probe_defaults(clipcl_probe_opts *o) {
  if (!o) return;
  *o = (clipcl_probe_opts){.lambda_min = 1e-6,
                           .lambda_max = 1e6,
                           .steps = 96,
                           .coarse_stride = 8,
                           .max_iter = 1000,
                           .epsilon = 1e-6,
                           .val_fraction = 0.2,
                           .seed = 0,
                           .threads = 0};
}

void clipcl_probe_model_free(clipcl_probe_model *m) {
  if (!m) return;
  free(m->W);
  free(m->b);
  memset(m, 0, sizeof *m);
}

/* ---- objective ------------------------------------------------------------ */
typedef struct {
  const float *X;
  const int32_t *y;
  const size_t *rows; /* NULL: all n */
  size_t n;
  int dim, classes;
  double lambda;
  int nparts, threads;
  const double *w;      /* current parameters */
  double *part_g;       /* [nparts][classes*(dim+1)] */
  double part_f[PART_MAX];
  double **scratch;     /* per worker: logits */
  int iterations;
} fit_ctx;

/* sum of x[d] * w[d] with four partial sums (fixed order) */
static inline double dot_fd(const float *x, const double *w, int dim) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int d = 0;
  for (; d + 4 <= dim; d += 4) {
    s0 += x[d] * w[d];
    s1 += x[d + 1] * w[d + 1];
    s2 += x[d + 2] * w[d + 2];
    s3 += x[d + 3] * w[d + 3];
  }
  for (; d < dim; d++) s0 += x[d] * w[d];
  return (s0 + s1) + (s2 + s3);
}

static void part_task(void *p, size_t part, int worker) {
  fit_ctx *c = p;
  int C = c->classes, D = c->dim;
  size_t i0 = c->n * part / c->nparts, i1 = c->n * (part + 1) / c->nparts;
  double *g = c->part_g + part * (size_t)C * (D + 1), *gb = g + (size_t)C * D, *z = c->scratch[worker];
  const double *W = c->w, *b = c->w + (size_t)C * D;
  memset(g, 0, (size_t)C * (D + 1) * sizeof *g);
  double f = 0;
  for (size_t i = i0; i < i1; i++) {
    size_t r = c->rows ? c->rows[i] : i;
    const float *x = c->X + r * D;
    int y = c->y[r];
    double zmax = -INFINITY;
    for (int k = 0; k < C; k++) {
      z[k] = b[k] + dot_fd(x, W + (size_t)k * D, D);
      if (z[k] > zmax) zmax = z[k];
    }
    double se = 0;
    for (int k = 0; k < C; k++) se += exp(z[k] - zmax);
    double lse = zmax + log(se);
    f += lse - z[y];
    for (int k = 0; k < C; k++) {
      double rk = exp(z[k] - lse) - (k == y);
      double *gk = g + (size_t)k * D;
      for (int d = 0; d < D; d++) gk[d] += rk * x[d];
      gb[k] += rk;
    }
  }
  c->part_f[part] = f;
}

static lbfgsfloatval_t evaluate(void *inst, const lbfgsfloatval_t *w, lbfgsfloatval_t *g, const int n,
                                const lbfgsfloatval_t step) {
  (void)step;
  fit_ctx *c = inst;
  size_t CD = (size_t)c->classes * c->dim, P = CD + c->classes;
  c->w = w;
  cc_eval_parallel(c->threads, (size_t)c->nparts, part_task, c);
  double f = 0, inv_n = 1.0 / (double)c->n;
  memset(g, 0, (size_t)n * sizeof *g);
  for (int p = 0; p < c->nparts; p++) {
    const double *pg = c->part_g + (size_t)p * P;
    f += c->part_f[p];
    for (size_t j = 0; j < P; j++) g[j] += pg[j];
  }
  f *= inv_n;
  double reg = 0;
  for (size_t j = 0; j < CD; j++) {
    reg += w[j] * w[j];
    g[j] = g[j] * inv_n + c->lambda * w[j];
  }
  for (size_t j = CD; j < P; j++) g[j] *= inv_n;
  return f + 0.5 * c->lambda * reg;
}

static int progress(void *inst, const lbfgsfloatval_t *x, const lbfgsfloatval_t *g, const lbfgsfloatval_t fx,
                    const lbfgsfloatval_t xnorm, const lbfgsfloatval_t gnorm, const lbfgsfloatval_t step, int n,
                    int k, int ls) {
  (void)x, (void)g, (void)fx, (void)xnorm, (void)gnorm, (void)step, (void)n, (void)ls;
  ((fit_ctx *)inst)->iterations = k;
  return 0;
}

static clipcl_status check_data(const float *X, const int32_t *y, size_t n, int dim, int classes,
                                const char *what) {
  if (dim < 1 || classes < 2 || (n && (!X || !y)))
    return cc_fail(CLIPCL_ERR_ARG, "%s: bad arguments (dim %d, %d classes; need at least 2)", what, dim, classes);
  if ((size_t)classes > SIZE_MAX / 8 / ((size_t)dim + 1) || n > SIZE_MAX / 4 / (size_t)dim)
    return cc_fail(CLIPCL_ERR_ARG, "%s: sizes overflow", what);
  if ((size_t)classes * ((size_t)dim + 1) > (size_t)INT32_MAX - 8)
    return cc_fail(CLIPCL_ERR_ARG, "%s: %d classes x %d features is too many parameters", what, classes, dim);
  for (size_t i = 0; i < n; i++)
    if (y[i] < 0 || y[i] >= classes)
      return cc_fail(CLIPCL_ERR_ARG, "%s: sample %zu has label %d outside 0..%d", what, i, y[i], classes - 1);
  return cc_eval_check_finite(X, n * dim, dim, what);
}

/* Fits on rows (NULL: all n); data already checked. */
static clipcl_status fit_rows(const float *X, const int32_t *y, const size_t *rows, size_t n, int dim,
                              int classes, double lambda, const clipcl_probe_opts *o,
                              const clipcl_probe_model *init, clipcl_probe_model *out) {
  memset(out, 0, sizeof *out);
  if (n == 0) return cc_fail(CLIPCL_ERR_ARG, "probe fit: no samples");
  if (!(lambda >= 0) || !isfinite(lambda)) return cc_fail(CLIPCL_ERR_ARG, "probe fit: lambda %g", lambda);
  if (init && (init->dim != dim || init->classes != classes || !init->W || !init->b))
    return cc_fail(CLIPCL_ERR_ARG, "probe fit: the initial model has another shape");
  size_t CD = (size_t)classes * dim, P = CD + classes, N = (P + 7) / 8 * 8;
  fit_ctx c = {.X = X, .y = y, .rows = rows, .n = n, .dim = dim, .classes = classes, .lambda = lambda};
  c.nparts = (int)((n + PART_MIN_ROWS - 1) / PART_MIN_ROWS);
  if (c.nparts > PART_MAX) c.nparts = PART_MAX;
  c.threads = cc_eval_threads(o->threads);
  if (c.threads > c.nparts) c.threads = c.nparts;
  c.part_g = malloc((size_t)c.nparts * P * sizeof *c.part_g);
  c.scratch = calloc((size_t)c.threads, sizeof *c.scratch);
  lbfgsfloatval_t *w = lbfgs_malloc((int)N);
  clipcl_status st = CLIPCL_OK;
  if (!c.part_g || !c.scratch || !w) st = cc_fail(CLIPCL_ERR_NOMEM, "probe fit: out of memory");
  for (int t = 0; t < c.threads && !st; t++)
    if (!(c.scratch[t] = malloc((size_t)classes * sizeof(double))))
      st = cc_fail(CLIPCL_ERR_NOMEM, "probe fit: out of memory");
  if (!st) {
    for (size_t j = 0; j < N; j++) w[j] = 0;
    if (init) {
      for (size_t j = 0; j < CD; j++) w[j] = init->W[j];
      for (int k = 0; k < classes; k++) w[CD + k] = init->b[k];
    }
    lbfgs_parameter_t param;
    lbfgs_parameter_init(&param);
    param.max_iterations = o->max_iter > 0 ? o->max_iter : 1000;
    param.epsilon = o->epsilon > 0 ? o->epsilon : 1e-6;
    lbfgsfloatval_t fx = 0;
    int ret = lbfgs((int)N, w, &fx, evaluate, progress, &c, &param);
    /* Line-search failures near the optimum (rounding, minimum step) leave
     * w at the last accepted point, which is a usable fit; anything that says
     * the call itself was wrong is not. */
    if (ret == LBFGSERR_OUTOFMEMORY) {
      st = cc_fail(CLIPCL_ERR_NOMEM, "probe fit: out of memory in L-BFGS");
    } else if (ret <= LBFGSERR_UNKNOWNERROR + 1 || (ret >= LBFGSERR_INVALID_N && ret <= LBFGSERR_INVALID_ORTHANTWISE_END)) {
      st = cc_fail(CLIPCL_ERR_ARG, "probe fit: L-BFGS refused the problem (code %d)", ret);
    } else {
      lbfgsfloatval_t *g = lbfgs_malloc((int)N);
      if (!g) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "probe fit: out of memory");
      } else {
        fx = evaluate(&c, w, g, (int)N, 0);
        lbfgs_free(g);
        if (!isfinite(fx)) st = cc_fail(CLIPCL_ERR_NUMERIC, "probe fit: objective is not finite (lambda %g)", lambda);
      }
    }
    if (!st) {
      out->W = malloc(CD * sizeof *out->W);
      out->b = malloc((size_t)classes * sizeof *out->b);
      if (!out->W || !out->b) {
        clipcl_probe_model_free(out);
        st = cc_fail(CLIPCL_ERR_NOMEM, "probe fit: out of memory");
      } else {
        for (size_t j = 0; j < CD; j++) out->W[j] = (float)w[j];
        for (int k = 0; k < classes; k++) out->b[k] = (float)w[CD + k];
        out->dim = dim;
        out->classes = classes;
        out->lambda = lambda;
        out->iterations = c.iterations;
        out->objective = fx;
      }
    }
  }
  if (c.scratch)
    for (int t = 0; t < c.threads; t++) free(c.scratch[t]);
  free(c.scratch);
  free(c.part_g);
  lbfgs_free(w);
  return st;
}

clipcl_status clipcl_probe_fit(const float *X, const int32_t *y, size_t n, int dim, int classes, double lambda,
                               const clipcl_probe_opts *o, const clipcl_probe_model *init,
                               clipcl_probe_model *out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "probe fit: no output");
  memset(out, 0, sizeof *out);
  clipcl_probe_opts def;
  if (!o) clipcl_probe_defaults(&def), o = &def;
  CC_TRY(check_data(X, y, n, dim, classes, "probe fit"));
  return fit_rows(X, y, NULL, n, dim, classes, lambda, o, init, out);
}

/* ---- prediction ----------------------------------------------------------- */
typedef struct {
  const clipcl_probe_model *m;
  const float *X;
  const size_t *rows;
  size_t n;
  int32_t *pred;
} pred_ctx;

#define PRED_BLOCK 512

static void pred_task(void *p, size_t task, int worker) {
  (void)worker;
  pred_ctx *c = p;
  const clipcl_probe_model *m = c->m;
  size_t i1 = (task + 1) * PRED_BLOCK < c->n ? (task + 1) * PRED_BLOCK : c->n;
  for (size_t i = task * PRED_BLOCK; i < i1; i++) {
    const float *x = c->X + (c->rows ? c->rows[i] : i) * m->dim;
    double best = -INFINITY;
    int32_t arg = 0;
    for (int k = 0; k < m->classes; k++) {
      const float *wk = m->W + (size_t)k * m->dim;
      double s0 = 0, s1 = 0;
      int d = 0;
      for (; d + 2 <= m->dim; d += 2) s0 += (double)x[d] * wk[d], s1 += (double)x[d + 1] * wk[d + 1];
      if (d < m->dim) s0 += (double)x[d] * wk[d];
      double z = m->b[k] + (s0 + s1);
      if (z > best) best = z, arg = k;
    }
    c->pred[i] = arg;
  }
}

static void predict_rows(const clipcl_probe_model *m, const float *X, const size_t *rows, size_t n, int threads,
                         int32_t *pred) {
  pred_ctx c = {m, X, rows, n, pred};
  cc_eval_parallel(threads, (n + PRED_BLOCK - 1) / PRED_BLOCK, pred_task, &c);
}

clipcl_status clipcl_probe_predict(const clipcl_probe_model *m, const float *X, size_t n, int threads,
                                   int32_t *pred) {
  if (!m || !m->W || !m->b || m->dim < 1 || m->classes < 1) return cc_fail(CLIPCL_ERR_ARG, "probe predict: no model");
  if (n == 0) return CLIPCL_OK;
  if (!X || !pred) return cc_fail(CLIPCL_ERR_ARG, "probe predict: NULL array");
  if (n > SIZE_MAX / 4 / (size_t)m->dim) return cc_fail(CLIPCL_ERR_ARG, "probe predict: sizes overflow");
  CC_TRY(cc_eval_check_finite(X, n * m->dim, m->dim, "probe predict"));
  predict_rows(m, X, NULL, n, threads, pred);
  return CLIPCL_OK;
}

/* ---- split, sweep, refit ---------------------------------------------------- */
clipcl_status clipcl_probe_split(const int32_t *y, size_t n, int classes, double val_fraction, uint64_t seed,
                                 uint8_t *is_val) {
  if (classes < 1 || (n && (!y || !is_val)) || !(val_fraction >= 0 && val_fraction < 1))
    return cc_fail(CLIPCL_ERR_ARG, "probe split: bad arguments (%d classes, val fraction %g)", classes,
                   val_fraction);
  size_t *count = calloc((size_t)classes + 1, sizeof *count), *order = malloc((n ? n : 1) * sizeof *order);
  if (!count || !order) {
    free(count), free(order);
    return cc_fail(CLIPCL_ERR_NOMEM, "probe split: out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    if (y[i] < 0 || y[i] >= classes) {
      free(count), free(order);
      return cc_fail(CLIPCL_ERR_ARG, "probe split: sample %zu has label %d outside 0..%d", i, y[i], classes - 1);
    }
    count[y[i] + 1]++;
  }
  for (int k = 0; k < classes; k++) count[k + 1] += count[k]; /* count[k] = start of class k */
  size_t *fill = malloc(((size_t)classes + 1) * sizeof *fill);
  if (!fill) {
    free(count), free(order);
    return cc_fail(CLIPCL_ERR_NOMEM, "probe split: out of memory");
  }
  memcpy(fill, count, ((size_t)classes + 1) * sizeof *fill);
  for (size_t i = 0; i < n; i++) order[fill[y[i]]++] = i; /* sample order within a class */
  uint64_t rng = seed;
  memset(is_val, 0, n);
  for (int k = 0; k < classes; k++) {
    size_t *s = order + count[k], m = count[k + 1] - count[k];
    for (size_t i = m; i > 1; i--) {
      size_t j = (size_t)cc_eval_rand_below(&rng, i);
      size_t t = s[i - 1];
      s[i - 1] = s[j];
      s[j] = t;
    }
    size_t nv = (size_t)floor((double)m * val_fraction + 0.5);
    if (nv >= m) nv = m ? m - 1 : 0;
    for (size_t i = 0; i < nv; i++) is_val[s[i]] = 1;
  }
  free(fill), free(count), free(order);
  return CLIPCL_OK;
}

void clipcl_probe_result_free(clipcl_probe_result *r) {
  if (!r) return;
  free(r->trials);
  clipcl_probe_model_free(&r->model);
  memset(r, 0, sizeof *r);
}

static double accuracy_rows(const clipcl_probe_model *m, const float *X, const int32_t *y, const size_t *rows,
                            size_t n, int threads, int32_t *pred) {
  predict_rows(m, X, rows, n, threads, pred);
  size_t hit = 0;
  for (size_t i = 0; i < n; i++) hit += pred[i] == y[rows ? rows[i] : i];
  return (double)hit / (double)n;
}

typedef struct {
  const float *X;
  const int32_t *y;
  const size_t *tr, *va;
  size_t ntr, nva;
  int dim, classes;
  const clipcl_probe_opts *o;
  double *grid;
  double *acc;            /* [steps], NaN until tried */
  clipcl_probe_model best; /* fit at the best lambda so far */
  int best_i;
  clipcl_probe_trial *trials;
  int n_trials;
  int32_t *pred;
} sweep;

/* Fits grid point i (warm-started from the best fit so far) and keeps it
 * when its validation accuracy beats the best, ties going to larger lambda. */
static clipcl_status try_point(sweep *s, int i) {
  if (!isnan(s->acc[i])) return CLIPCL_OK;
  clipcl_probe_model m;
  CC_TRY(fit_rows(s->X, s->y, s->tr, s->ntr, s->dim, s->classes, s->grid[i], s->o,
                  s->best_i >= 0 ? &s->best : NULL, &m));
  double a = accuracy_rows(&m, s->X, s->y, s->va, s->nva, s->o->threads, s->pred);
  s->acc[i] = a;
  s->trials[s->n_trials++] = (clipcl_probe_trial){s->grid[i], a, m.iterations};
  if (s->best_i < 0 || a > s->acc[s->best_i] || (a == s->acc[s->best_i] && i > s->best_i)) {
    clipcl_probe_model_free(&s->best);
    s->best = m;
    s->best_i = i;
  } else {
    clipcl_probe_model_free(&m);
  }
  return CLIPCL_OK;
}

clipcl_status clipcl_probe_run(const float *X_train, const int32_t *y_train, size_t n_train,
                               const float *X_test, const int32_t *y_test, size_t n_test, int dim, int classes,
                               const clipcl_probe_opts *o, clipcl_probe_result *out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "probe: no output");
  memset(out, 0, sizeof *out);
  clipcl_probe_opts def;
  if (!o) clipcl_probe_defaults(&def), o = &def;
  if (!(o->lambda_min > 0) || !(o->lambda_max >= o->lambda_min) || !isfinite(o->lambda_max) || o->steps < 1 ||
      o->steps > 100000 || o->coarse_stride < 1)
    return cc_fail(CLIPCL_ERR_ARG, "probe: bad sweep (lambda %g..%g, %d steps, stride %d)", o->lambda_min,
                   o->lambda_max, o->steps, o->coarse_stride);
  if (n_train < 2 || n_test < 1) return cc_fail(CLIPCL_ERR_ARG, "probe: %zu training and %zu test samples", n_train, n_test);
  CC_TRY(check_data(X_train, y_train, n_train, dim, classes, "probe training features"));
  CC_TRY(check_data(X_test, y_test, n_test, dim, classes, "probe test features"));

  sweep s = {.X = X_train, .y = y_train, .dim = dim, .classes = classes, .o = o, .best_i = -1};
  uint8_t *is_val = malloc(n_train);
  size_t *rows = malloc(n_train * sizeof *rows);
  s.grid = malloc((size_t)o->steps * sizeof *s.grid);
  s.acc = malloc((size_t)o->steps * sizeof *s.acc);
  s.trials = malloc((size_t)o->steps * sizeof *s.trials);
  s.pred = malloc((n_train > n_test ? n_train : n_test) * sizeof *s.pred);
  clipcl_status st = CLIPCL_OK;
  if (!is_val || !rows || !s.grid || !s.acc || !s.trials || !s.pred) st = cc_fail(CLIPCL_ERR_NOMEM, "probe: out of memory");
  if (!st) st = clipcl_probe_split(y_train, n_train, classes, o->val_fraction, o->seed, is_val);
  if (!st) {
    for (size_t i = 0; i < n_train; i++)
      if (!is_val[i]) rows[s.ntr++] = i;
    s.va = rows + s.ntr;
    for (size_t i = 0; i < n_train; i++)
      if (is_val[i]) rows[s.ntr + s.nva++] = i;
    s.tr = rows;
    if (s.nva == 0) st = cc_fail(CLIPCL_ERR_ARG, "probe: the validation split is empty (val fraction %g)", o->val_fraction);
  }
  if (!st) {
    double l0 = log(o->lambda_min), l1 = log(o->lambda_max);
    for (int i = 0; i < o->steps; i++) {
      s.grid[i] = o->steps == 1 ? o->lambda_min : exp(l0 + (l1 - l0) * i / (o->steps - 1));
      s.acc[i] = NAN;
    }
    /* strongest regularisation first: each fit warm-starts from a simpler one */
    int stride = o->coarse_stride < o->steps ? o->coarse_stride : o->steps;
    for (int i = o->steps - 1; i >= 0 && !st; i -= stride) st = try_point(&s, i);
    if (!st && o->steps > 1) st = try_point(&s, 0);
    while (!st && stride > 1) {
      stride = (stride + 1) / 2;
      int b = s.best_i;
      if (b + stride < o->steps) st = try_point(&s, b + stride);
      if (!st && b - stride >= 0) st = try_point(&s, b - stride);
    }
  }
  if (!st) {
    out->lambda = s.grid[s.best_i];
    out->val_top1 = s.acc[s.best_i];
    out->n_train = (int64_t)s.ntr;
    out->n_val = (int64_t)s.nva;
    out->n_test = (int64_t)n_test;
    st = fit_rows(X_train, y_train, NULL, n_train, dim, classes, out->lambda, o, &s.best, &out->model);
  }
  if (!st) {
    out->test_top1 = accuracy_rows(&out->model, X_test, y_test, NULL, n_test, o->threads, s.pred);
    out->trials = s.trials;
    out->n_trials = s.n_trials;
    s.trials = NULL;
  } else {
    clipcl_probe_result_free(out);
  }
  clipcl_probe_model_free(&s.best);
  free(is_val), free(rows), free(s.grid), free(s.acc), free(s.trials), free(s.pred);
  return st;
}

clipcl_status clipcl_probe_json(const clipcl_probe_result *r, char **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "probe JSON: no output");
  *out = NULL;
  if (!r || !r->model.W) return cc_fail(CLIPCL_ERR_ARG, "probe JSON: no result");
  cc_buf b = {0};
  cc_buf_str(&b, "{\n  \"test_top1\": ");
  cc_buf_num(&b, r->test_top1);
  cc_buf_str(&b, ",\n  \"lambda\": ");
  cc_buf_num(&b, r->lambda);
  cc_buf_str(&b, ",\n  \"sklearn_C\": ");
  cc_buf_num(&b, 1.0 / (r->lambda * (double)(r->n_train + r->n_val)));
  cc_buf_str(&b, ",\n  \"val_top1\": ");
  cc_buf_num(&b, r->val_top1);
  cc_buf_printf(&b, ",\n  \"n_train\": %lld,\n  \"n_val\": %lld,\n  \"n_test\": %lld,\n  \"dim\": %d,\n  \"classes\": %d",
                (long long)r->n_train, (long long)r->n_val, (long long)r->n_test, r->model.dim, r->model.classes);
  cc_buf_str(&b, ",\n  \"objective\": ");
  cc_buf_num(&b, r->model.objective);
  cc_buf_str(&b, ",\n  \"objective_definition\": \"mean cross-entropy + lambda/2 * ||W||^2, bias not regularised; "
                 "sklearn_C = 1/(lambda * (n_train + n_val)) for the refit\",\n  \"trials\": [");
  for (int i = 0; i < r->n_trials; i++) {
    cc_buf_str(&b, i ? ",\n    {\"lambda\": " : "\n    {\"lambda\": ");
    cc_buf_num(&b, r->trials[i].lambda);
    cc_buf_str(&b, ", \"val_top1\": ");
    cc_buf_num(&b, r->trials[i].val_top1);
    cc_buf_printf(&b, ", \"iterations\": %d}", r->trials[i].iterations);
  }
  cc_buf_str(&b, r->n_trials ? "\n  ]\n}" : "]\n}");
  if (b.oom) {
    cc_buf_free(&b);
    return cc_fail(CLIPCL_ERR_NOMEM, "probe JSON: out of memory");
  }
  *out = b.p;
  return CLIPCL_OK;
}

clipcl_status clipcl_probe_write_json(const char *path, const clipcl_probe_result *r) {
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "probe JSON: no path");
  char *s;
  CC_TRY(clipcl_probe_json(r, &s));
  clipcl_status st = cc_save_line(path, s);
  free(s);
  return st;
}

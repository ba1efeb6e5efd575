/* test_probe.c: the linear probe and the feature cache.
 *
 * Without arguments (ctest): a fit solves the stated objective (the gradient,
 * written independently here in double, is ~0 at the returned W, b and the
 * reported objective matches this file's), fits do not depend on the thread
 * count (bitwise), the split is seeded, stratified and never empties a
 * class's training set, the sweep picks a lambda from the grid and the run
 * beats chance by far, the JSON parses, and the feature cache round-trips,
 * misses on another identity and refuses corrupt files.
 *
 * `test_probe sklearn DIR` writes features and our fits for
 * test_probe_sklearn.sh, which compares them with scikit-learn.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "io/npy.h"

/* Gaussian clusters around random unit centres, rows normalised (like CLIP
 * features); `spread` sets the overlap. */
static void make_data(float *X, int32_t *y, size_t n, int dim, int classes, const float *centres, double spread) {
  for (size_t i = 0; i < n; i++) {
    int c = (int)(th_uniform() * classes);
    y[i] = c;
    double ss = 0;
    for (int d = 0; d < dim; d++) {
      X[i * dim + d] = centres[c * dim + d] + (float)(spread * th_normal());
      ss += (double)X[i * dim + d] * X[i * dim + d];
    }
    for (int d = 0; d < dim; d++) X[i * dim + d] = (float)(X[i * dim + d] / sqrt(ss));
  }
}

static float *make_centres(int dim, int classes) {
  float *c = th_alloc((size_t)dim * classes);
  for (int i = 0; i < dim * classes; i++) c[i] = (float)th_normal();
  TH_OK(clipcl_l2_normalize(c, classes, dim));
  return c;
}

/* objective and gradient in double, as clipcl.h defines them */
static double objective(const float *X, const int32_t *y, size_t n, int dim, int C, double lambda, const float *W,
                        const float *b, double *gW, double *gb) {
  double f = 0, z[64];
  memset(gW, 0, (size_t)C * dim * sizeof *gW);
  memset(gb, 0, (size_t)C * sizeof *gb);
  for (size_t i = 0; i < n; i++) {
    double mx = -1e300, se = 0;
    for (int k = 0; k < C; k++) {
      z[k] = b[k];
      for (int d = 0; d < dim; d++) z[k] += (double)W[k * dim + d] * X[i * dim + d];
      if (z[k] > mx) mx = z[k];
    }
    for (int k = 0; k < C; k++) se += exp(z[k] - mx);
    f += mx + log(se) - z[y[i]];
    for (int k = 0; k < C; k++) {
      double r = exp(z[k] - mx) / se - (k == y[i]);
      for (int d = 0; d < dim; d++) gW[k * dim + d] += r * X[i * dim + d] / n;
      gb[k] += r / n;
    }
  }
  double reg = 0;
  for (int j = 0; j < C * dim; j++) reg += (double)W[j] * W[j], gW[j] += lambda * W[j];
  return f / n + 0.5 * lambda * reg;
}

static void check_fit(void) {
  const int dim = 24, C = 5;
  const size_t n = 1500;
  float *cen = make_centres(dim, C), *X = th_alloc(n * dim);
  int32_t *y = malloc(n * sizeof *y);
  make_data(X, y, n, dim, C, cen, 0.35);
  clipcl_probe_opts o;
  clipcl_probe_defaults(&o);
  o.epsilon = 1e-8;
  double *gW = th_alloc_d((size_t)C * dim), *gb = th_alloc_d(C);
  const double lambdas[] = {1e-4, 1e-2, 1};
  for (int li = 0; li < 3; li++) {
    clipcl_probe_model m1, m3;
    o.threads = 1;
    TH_OK(clipcl_probe_fit(X, y, n, dim, C, lambdas[li], &o, NULL, &m1));
    o.threads = 3;
    TH_OK(clipcl_probe_fit(X, y, n, dim, C, lambdas[li], &o, NULL, &m3));
    double f = objective(X, y, n, dim, C, lambdas[li], m1.W, m1.b, gW, gb), g2 = 0, w2 = 0;
    for (int j = 0; j < C * dim; j++) g2 += gW[j] * gW[j], w2 += (double)m1.W[j] * m1.W[j];
    for (int k = 0; k < C; k++) g2 += gb[k] * gb[k];
    char msg[128];
    snprintf(msg, sizeof msg, "lambda %g: gradient ~0 at the fit", lambdas[li]);
    /* float storage of W limits how small it can get */
    th_assert(msg, sqrt(g2) < 1e-4 * fmax(1, sqrt(w2)), "|g| %.3g, |W| %.3g, %d iterations", sqrt(g2), sqrt(w2),
              m1.iterations);
    snprintf(msg, sizeof msg, "lambda %g: reported objective", lambdas[li]);
    th_assert(msg, fabs(f - m1.objective) < 1e-6 * fabs(f), "%.12g, recomputed %.12g", m1.objective, f);
    snprintf(msg, sizeof msg, "lambda %g: same fit on 1 and 3 threads", lambdas[li]);
    th_same_bits(msg, m1.W, m3.W, (size_t)C * dim);
    /* warm start reaches the same optimum */
    clipcl_probe_model mw;
    TH_OK(clipcl_probe_fit(X, y, n, dim, C, lambdas[li], &o, &m1, &mw));
    snprintf(msg, sizeof msg, "lambda %g: warm start from the optimum stays there", lambdas[li]);
    th_assert(msg, fabs(mw.objective - m1.objective) <= 1e-9 * m1.objective && mw.iterations <= 3,
              "%.12g vs %.12g, %d iterations", mw.objective, m1.objective, mw.iterations);
    clipcl_probe_model_free(&m1);
    clipcl_probe_model_free(&m3);
    clipcl_probe_model_free(&mw);
  }
  y[7] = C;
  clipcl_probe_model m;
  clipcl_status st = clipcl_probe_fit(X, y, n, dim, C, 1e-3, &o, NULL, &m);
  th_assert("fit refuses a label outside the classes", st == CLIPCL_ERR_ARG && !m.W, "status %d", st);
  y[7] = 0;
  X[3] = NAN;
  st = clipcl_probe_fit(X, y, n, dim, C, 1e-3, &o, NULL, &m);
  th_assert("fit refuses NaN features", st == CLIPCL_ERR_NUMERIC, "status %d", st);
  free(y);
}

static void check_split(void) {
  const size_t n = 1003;
  const int C = 7;
  int32_t *y = malloc(n * sizeof *y);
  for (size_t i = 0; i < n; i++) y[i] = (int32_t)(i % 5 == 0 ? 6 : (i * 7919) % 6); /* uneven classes */
  y[1000] = 5, y[1001] = 5, y[1002] = 5;
  uint8_t *a = malloc(n), *b = malloc(n), *c = malloc(n);
  TH_OK(clipcl_probe_split(y, n, C, 0.2, 42, a));
  TH_OK(clipcl_probe_split(y, n, C, 0.2, 42, b));
  TH_OK(clipcl_probe_split(y, n, C, 0.2, 43, c));
  th_assert("split: same seed, same split", !memcmp(a, b, n), "seed 42 twice");
  th_assert("split: another seed, another split", memcmp(a, c, n) != 0, "seeds 42 and 43");
  int ok = 1;
  for (int k = 0; k < C; k++) {
    size_t cnt = 0, val = 0;
    for (size_t i = 0; i < n; i++)
      if (y[i] == k) cnt++, val += a[i];
    size_t want = (size_t)floor(cnt * 0.2 + 0.5);
    if (want >= cnt) want = cnt ? cnt - 1 : 0;
    if (val != want) ok = 0, printf("class %d: %zu of %zu in val, want %zu\n", k, val, cnt, want);
  }
  th_assert("split: round(20%) of every class", ok, "per-class counts checked");
  int32_t two[] = {0, 0, 1, 1, 1};
  uint8_t v[5];
  TH_OK(clipcl_probe_split(two, 5, 3, 0.5, 1, v));
  th_assert("split: a class keeps a training sample", (v[0] + v[1]) == 1 && (v[2] + v[3] + v[4]) == 2, "%d%d %d%d%d",
            v[0], v[1], v[2], v[3], v[4]);
  free(y), free(a), free(b), free(c);
}

static void check_run(void) {
  const int dim = 16, C = 6;
  const size_t ntr = 1200, nte = 600;
  float *cen = make_centres(dim, C), *Xtr = th_alloc(ntr * dim), *Xte = th_alloc(nte * dim);
  int32_t *ytr = malloc(ntr * sizeof *ytr), *yte = malloc(nte * sizeof *yte);
  make_data(Xtr, ytr, ntr, dim, C, cen, 0.5);
  make_data(Xte, yte, nte, dim, C, cen, 0.5);
  clipcl_probe_opts o;
  clipcl_probe_defaults(&o);
  clipcl_probe_result r;
  TH_OK(clipcl_probe_run(Xtr, ytr, ntr, Xte, yte, nte, dim, C, &o, &r));
  int on_grid = 0;
  for (int i = 0; i < o.steps; i++) {
    double g = exp(log(1e-6) + (log(1e6) - log(1e-6)) * i / 95);
    if (fabs(r.lambda - g) <= 1e-12 * g) on_grid = 1;
  }
  th_assert("run: lambda on the 96-point grid", on_grid, "lambda %g", r.lambda);
  double best = 0;
  for (int i = 0; i < r.n_trials; i++) best = fmax(best, r.trials[i].val_top1);
  th_assert("run: chosen lambda has the best validation accuracy", r.val_top1 == best, "%.4f vs best %.4f", r.val_top1, best);
  th_assert("run: coarse sweep plus refinement (<= 22 fits)", r.n_trials >= 13 && r.n_trials <= 22, "%d fits", r.n_trials);
  th_assert("run: split sizes", r.n_train + r.n_val == (int64_t)ntr && r.n_val > 200 && r.n_val < 280 && r.n_test == (int64_t)nte,
            "train %lld val %lld", (long long)r.n_train, (long long)r.n_val);
  th_assert("run: far above chance", r.test_top1 > 0.6 && r.test_top1 < 1, "test top-1 %.4f (chance %.3f), lambda %g",
            r.test_top1, 1.0 / C, r.lambda);
  /* the run's model predicts the test set as the reported accuracy says */
  int32_t *pred = malloc(nte * sizeof *pred);
  TH_OK(clipcl_probe_predict(&r.model, Xte, nte, 2, pred));
  size_t hit = 0;
  for (size_t i = 0; i < nte; i++) hit += pred[i] == yte[i];
  th_assert("run: test accuracy = predictions", fabs((double)hit / nte - r.test_top1) < 1e-12, "%zu / %zu", hit, nte);
  char *s = NULL;
  TH_OK(clipcl_probe_json(&r, &s));
  json_error_t err;
  json_t *j = json_loads(s, 0, &err);
  th_assert("run: JSON parses with the values", j && json_number_value(json_object_get(j, "test_top1")) == r.test_top1 &&
            json_number_value(json_object_get(j, "lambda")) == r.lambda &&
            json_array_size(json_object_get(j, "trials")) == (size_t)r.n_trials, "%s", j ? "checked" : err.text);
  json_decref(j);
  free(s);
  clipcl_probe_result_free(&r);
  free(ytr), free(yte), free(pred);
}

static void check_cache(const char *dir) {
  char prefix[512], path[600];
  snprintf(prefix, sizeof prefix, "%s/feat", dir);
  float X[12];
  int32_t y[4] = {3, 0, 2, 2};
  for (int i = 0; i < 12; i++) X[i] = 0.5f * i - 2;
  float *gx = NULL;
  int32_t *gy = NULL;
  size_t n = 99;
  int dim = 99, hit = 7;
  TH_OK(clipcl_features_load(prefix, "model-a", &gx, &gy, &n, &dim, &hit));
  th_assert("cache: missing is a miss", hit == 0 && !gx && !gy, "hit %d", hit);
  TH_OK(clipcl_features_save(prefix, "model-a|data-1", X, y, 4, 3));
  TH_OK(clipcl_features_load(prefix, "model-a|data-1", &gx, &gy, &n, &dim, &hit));
  th_assert("cache: round trip", hit == 1 && n == 4 && dim == 3 && gx && gy && !memcmp(gx, X, sizeof X) && !memcmp(gy, y, sizeof y),
            "hit %d n %zu dim %d", hit, n, dim);
  free(gx), free(gy);
  TH_OK(clipcl_features_load(prefix, "model-b|data-1", &gx, &gy, &n, &dim, &hit));
  th_assert("cache: another identity is a miss", hit == 0 && !gx, "hit %d", hit);
  /* the features file no longer matches its description */
  snprintf(path, sizeof path, "%s.npy", prefix);
  TH_OK(cc_npy_write_f32(path, X, 2, (size_t[]){3, 4}));
  clipcl_status st = clipcl_features_load(prefix, "model-a|data-1", &gx, &gy, &n, &dim, &hit);
  th_assert("cache: inconsistent files are an error", st == CLIPCL_ERR_FORMAT && hit == 0 && !gx, "status %d: %s", st,
            clipcl_last_error());
  snprintf(path, sizeof path, "%s.json", prefix);
  FILE *f = fopen(path, "w");
  fputs("{\"format\": \"clipcl-features\", \"version\": 1, \"identity\": ", f);
  fclose(f);
  st = clipcl_features_load(prefix, "model-a|data-1", &gx, &gy, &n, &dim, &hit);
  th_assert("cache: corrupt description is an error", st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "feat.json"),
            "status %d: %s", st, clipcl_last_error());
  y[1] = -1;
  st = clipcl_features_save(prefix, "x", X, y, 4, 3);
  th_assert("cache: negative label refused", st == CLIPCL_ERR_ARG, "status %d", st);
}

/* Features and our fits for test_probe_sklearn.sh. */
static int sklearn_mode(const char *dir) {
  const int dim = 32, C = 8;
  const size_t ntr = 2400, nte = 1200;
  float *cen = make_centres(dim, C), *Xtr = th_alloc(ntr * dim), *Xte = th_alloc(nte * dim), *ftr = th_alloc(ntr),
        *fte = th_alloc(nte);
  int32_t *ytr = malloc(ntr * sizeof *ytr), *yte = malloc(nte * sizeof *yte), *pred = malloc(nte * sizeof *pred);
  make_data(Xtr, ytr, ntr, dim, C, cen, 0.45);
  make_data(Xte, yte, nte, dim, C, cen, 0.45);
  for (size_t i = 0; i < ntr; i++) ftr[i] = (float)ytr[i];
  for (size_t i = 0; i < nte; i++) fte[i] = (float)yte[i];
  char path[600];
  snprintf(path, sizeof path, "%s/train_X.npy", dir);
  TH_OK(cc_npy_write_f32(path, Xtr, 2, (size_t[]){ntr, (size_t)dim}));
  snprintf(path, sizeof path, "%s/train_y.npy", dir);
  TH_OK(cc_npy_write_f32(path, ftr, 1, (size_t[]){ntr}));
  snprintf(path, sizeof path, "%s/test_X.npy", dir);
  TH_OK(cc_npy_write_f32(path, Xte, 2, (size_t[]){nte, (size_t)dim}));
  snprintf(path, sizeof path, "%s/test_y.npy", dir);
  TH_OK(cc_npy_write_f32(path, fte, 1, (size_t[]){nte}));

  clipcl_probe_opts o;
  clipcl_probe_defaults(&o);
  snprintf(path, sizeof path, "%s/fits.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) return 1;
  fprintf(f, "[");
  const double lambdas[] = {1e-5, 1e-3, 1e-2, 1e-1};
  for (int li = 0; li < 4; li++) {
    clipcl_probe_model m;
    TH_OK(clipcl_probe_fit(Xtr, ytr, ntr, dim, C, lambdas[li], &o, NULL, &m));
    TH_OK(clipcl_probe_predict(&m, Xte, nte, 0, pred));
    size_t hit = 0;
    for (size_t i = 0; i < nte; i++) hit += pred[i] == yte[i];
    fprintf(f, "%s{\"lambda\": %.17g, \"test_top1\": %.17g, \"objective\": %.17g, \"iterations\": %d}", li ? ", " : "",
            lambdas[li], (double)hit / nte, m.objective, m.iterations);
    printf("lambda %g: test top-1 %.4f, objective %.8f, %d iterations\n", lambdas[li], (double)hit / nte, m.objective,
           m.iterations);
    clipcl_probe_model_free(&m);
  }
  fprintf(f, "]\n");
  fclose(f);
  clipcl_probe_result r;
  TH_OK(clipcl_probe_run(Xtr, ytr, ntr, Xte, yte, nte, dim, C, &o, &r));
  snprintf(path, sizeof path, "%s/run.json", dir);
  TH_OK(clipcl_probe_write_json(path, &r));
  printf("run: lambda %g, val %.4f, test %.4f, %d fits\n", r.lambda, r.val_top1, r.test_top1, r.n_trials);
  clipcl_probe_result_free(&r);
  free(ytr), free(yte), free(pred);
  return th_finish(NULL);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "sklearn")) return sklearn_mode(argv[2]);
  char dir[] = "/tmp/clipcl_test_probe_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  check_fit();
  check_split();
  check_run();
  check_cache(dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return th_finish(NULL);
}

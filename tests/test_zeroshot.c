/* test_zeroshot.c: the score kernels, top-k, the zero-shot classifier, the
 * zero-shot metrics and their reports, against brute-force computations
 * written here: scores as a plain in-order float sum, rankings by a stable
 * sort (so equal scores keep the lower index first), metrics counted from
 * each image's rank of its true class. Ties are made by duplicating key rows
 * (identical rows score identical bits). Tolerances: scores bitwise; the
 * classifier 2e-6 absolute against double; metrics exact (counts). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval.h"
#include "harness.h"

static float ref_dot(const float *a, const float *b, int dim) {
  float s = 0;
  for (int e = 0; e < dim; e++) {
    float p = a[e] * b[e];
    s += p;
  }
  return s;
}

/* keys ranked for one query by insertion sort: stable, so ties keep index order */
static void ref_rank(const float *q, const float *K, int nk, int dim, int *order, float *s) {
  for (int j = 0; j < nk; j++) s[j] = ref_dot(q, K + (size_t)j * dim, dim);
  for (int j = 0; j < nk; j++) {
    int i = j;
    while (i > 0 && s[order[i - 1]] < s[j]) {
      order[i] = order[i - 1];
      i--;
    }
    order[i] = j;
  }
}

/* random rows, then copies of some rows elsewhere to force exact ties */
static void make_rows(float *x, int n, int dim, int copies) {
  for (int i = 0; i < n * dim; i++) x[i] = (float)th_normal();
  for (int c = 0; c < copies; c++) {
    int from = (int)(th_uniform() * n), to = (int)(th_uniform() * n);
    memcpy(x + (size_t)to * dim, x + (size_t)from * dim, (size_t)dim * sizeof *x);
  }
}

static void check_scores(void) {
  const int nq = 9, nk = 21, dim = 37;
  float *Q = th_alloc(nq * dim), *K = th_alloc(nk * dim), *out = th_alloc(nq * nk);
  float *scratch = th_alloc(cc_eval_scores_scratch(dim));
  make_rows(Q, nq, dim, 0);
  make_rows(K, nk, dim, 0);
  cc_eval_scores(Q, nq, K, nk, dim, out, nk, scratch);
  float *want = th_alloc(nq * nk);
  for (int i = 0; i < nq; i++)
    for (int j = 0; j < nk; j++) want[i * nk + j] = ref_dot(Q + i * dim, K + j * dim, dim);
  th_same_bits("blocked scores == in-order float sum", out, want, (size_t)nq * nk);
  for (int i = 0; i < nq; i++)
    for (int j = 0; j < nk; j++) want[i * nk + j] = cc_eval_dot(K + j * dim, Q + i * dim, dim);
  th_same_bits("s(q,k) == s(k,q)", out, want, (size_t)nq * nk);
}

static void check_topk(const char *name, int nq, int nk, int dim, int k, int copies) {
  float *Q = th_alloc((size_t)nq * dim), *K = th_alloc((size_t)nk * dim), *s = th_alloc(nk);
  int *order = th_alloc_i(nk);
  make_rows(Q, nq, dim, 0);
  make_rows(K, nk, dim, copies);
  /* a query equal to a duplicated key gives a tie at the very top */
  if (nq > 1) memcpy(Q, K + (size_t)(nk / 2) * dim, (size_t)dim * sizeof *Q);
  memcpy(K + (size_t)(nk - 1) * dim, K + (size_t)(nk / 2) * dim, (size_t)dim * sizeof *K);
  int32_t *idx = malloc((size_t)nq * k * sizeof *idx), *want = malloc((size_t)nq * k * sizeof *want);
  float *sc = th_alloc((size_t)nq * k), *wsc = th_alloc((size_t)nq * k);
  int ties = 0;
  for (int q = 0; q < nq; q++) {
    ref_rank(Q + (size_t)q * dim, K, nk, dim, order, s);
    for (int r = 0; r < k; r++) want[q * k + r] = order[r], wsc[q * k + r] = s[order[r]];
    for (int r = 1; r < k; r++) ties += wsc[q * k + r] == wsc[q * k + r - 1];
  }
  char msg[160];
  for (int threads = 1; threads <= 3; threads++) {
    memset(idx, 0xff, (size_t)nq * k * sizeof *idx);
    TH_OK(clipcl_topk(Q, nq, K, nk, dim, k, threads, idx, sc));
    int bad = -1;
    for (int i = 0; i < nq * k && bad < 0; i++)
      if (idx[i] != want[i]) bad = i;
    snprintf(msg, sizeof msg, "%s: top-%d indices, %d threads", name, k, threads);
    if (bad < 0)
      th_assert(msg, 1, "%d queries equal the stable sort (%d ties in the top-k)", nq, ties);
    else
      th_assert(msg, 0, "query %d rank %d: index %d, stable sort says %d", bad / k, bad % k, idx[bad], want[bad]);
    snprintf(msg, sizeof msg, "%s: top-%d scores, %d threads", name, k, threads);
    th_same_bits(msg, sc, wsc, (size_t)nq * k);
  }
  snprintf(msg, sizeof msg, "%s: the data has ties in the top-k", name);
  th_assert(msg, ties > 0, "%d ties", ties);
  free(idx);
  free(want);
}

static void check_classifier(void) {
  const int C = 5, T = 7, E = 19;
  float *t = th_alloc(C * T * E), *got = th_alloc(C * E);
  double *want = th_alloc_d(C * E);
  for (int i = 0; i < C * T * E; i++) t[i] = (float)(th_normal() * (1 + (i / E) % 4));
  TH_OK(clipcl_zeroshot_classifier(t, C, T, E, got));
  for (int c = 0; c < C; c++) {
    double m[64] = {0}, nn = 0;
    for (int j = 0; j < T; j++) {
      const float *v = t + (c * T + j) * E;
      double n2 = 0;
      for (int e = 0; e < E; e++) n2 += (double)v[e] * v[e];
      for (int e = 0; e < E; e++) m[e] += v[e] / sqrt(n2) / T;
    }
    for (int e = 0; e < E; e++) nn += m[e] * m[e];
    for (int e = 0; e < E; e++) want[c * E + e] = m[e] / sqrt(nn);
  }
  th_close("classifier: normalise, mean, renormalise", got, want, C * E, 2e-6, 0);
  memset(t + (2 * T + 3) * E, 0, E * sizeof *t);
  clipcl_status st = clipcl_zeroshot_classifier(t, C, T, E, got);
  th_assert("classifier refuses a zero embedding", st == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "class 2 template 3"),
            "status %d: %s", st, clipcl_last_error());
  t[0] = NAN;
  st = clipcl_zeroshot_classifier(t, C, T, E, got);
  th_assert("classifier refuses NaN", st == CLIPCL_ERR_NUMERIC, "status %d", st);
}

typedef struct {
  int n, C, E;
  float *img, *cls;
  int32_t *labels;
} zs_case;

/* Classes as random unit vectors (class `dup` a copy of class `dup_of`, for
 * ties), images near their class; class `empty` gets no images. */
static zs_case make_case(int n, int C, int E, int dup, int dup_of, int empty, double noise) {
  zs_case z = {n, C, E, th_alloc((size_t)n * E), th_alloc((size_t)C * E), malloc((size_t)n * sizeof(int32_t))};
  make_rows(z.cls, C, E, 0);
  TH_OK(clipcl_l2_normalize(z.cls, C, E));
  if (dup >= 0) memcpy(z.cls + dup * E, z.cls + dup_of * E, E * sizeof(float));
  for (int i = 0; i < n; i++) {
    int y;
    do y = (int)(th_uniform() * C);
    while (y == empty);
    z.labels[i] = y;
    for (int e = 0; e < E; e++) z.img[i * E + e] = z.cls[y * E + e] + (float)(noise * th_normal());
  }
  /* an image exactly on a duplicated class ties it at the top */
  if (dup >= 0) memcpy(z.img, z.cls + dup * E, E * sizeof(float)), z.labels[0] = dup;
  TH_OK(clipcl_l2_normalize(z.img, n, E));
  return z;
}

static void check_metrics(const char *name, zs_case z, int threads) {
  int k5 = z.C < 5 ? z.C : 5, k = k5;
  int32_t *topk = malloc((size_t)z.n * k * sizeof *topk);
  float *score = th_alloc((size_t)z.n * k), *s = th_alloc(z.C);
  TH_OK(clipcl_topk(z.img, z.n, z.cls, z.C, z.E, k, threads, topk, score));
  clipcl_zeroshot_metrics m;
  TH_OK(clipcl_zeroshot_metrics_compute(topk, k, z.labels, z.n, z.C, &m));

  /* brute force: rank of the true class, arg-max prediction */
  long top1 = 0, top5 = 0, *sup = calloc(z.C, sizeof *sup), *hit = calloc(z.C, sizeof *hit);
  long *conf = calloc((size_t)z.C * z.C, sizeof *conf);
  for (int i = 0; i < z.n; i++) {
    int y = z.labels[i], arg = 0, rank = 1;
    for (int c = 0; c < z.C; c++) s[c] = ref_dot(z.img + i * z.E, z.cls + c * z.E, z.E);
    for (int c = 0; c < z.C; c++) {
      if (s[c] > s[arg]) arg = c;
      if (s[c] > s[y] || (s[c] == s[y] && c < y)) rank++;
    }
    sup[y]++;
    conf[y * z.C + arg]++;
    top1 += rank == 1;
    hit[y] += rank == 1;
    top5 += rank <= k5;
  }
  double mpcr = 0;
  int present = 0, ok_pc = 1, ok_conf = 1;
  for (int c = 0; c < z.C; c++) {
    if (m.support[c] != sup[c]) ok_pc = 0;
    if (sup[c]) {
      double r = (double)hit[c] / sup[c];
      mpcr += r, present++;
      if (m.per_class[c] != r) ok_pc = 0;
    } else if (!isnan(m.per_class[c])) {
      ok_pc = 0;
    }
    for (int p = 0; p < z.C; p++)
      if (m.confusion[c * z.C + p] != conf[c * z.C + p]) ok_conf = 0;
  }
  mpcr /= present;
  char msg[160];
  snprintf(msg, sizeof msg, "%s: top1", name);
  th_assert(msg, m.top1 == (double)top1 / z.n, "%.6f, brute force %.6f", m.top1, (double)top1 / z.n);
  snprintf(msg, sizeof msg, "%s: top5 (k=%d)", name, k5);
  th_assert(msg, m.top5 == (double)top5 / z.n && m.k5 == k5, "%.6f (k %d), brute force %.6f", m.top5, m.k5,
            (double)top5 / z.n);
  snprintf(msg, sizeof msg, "%s: mean per-class recall", name);
  th_assert(msg, fabs(m.mean_per_class_recall - mpcr) < 1e-12, "%.9f, brute force %.9f", m.mean_per_class_recall, mpcr);
  snprintf(msg, sizeof msg, "%s: per-class recall and support", name);
  th_assert(msg, ok_pc, "%d classes compared (%d with images)", z.C, present);
  snprintf(msg, sizeof msg, "%s: confusion matrix", name);
  th_assert(msg, ok_conf, "%d x %d counts compared", z.C, z.C);
  snprintf(msg, sizeof msg, "%s: not trivially perfect", name);
  th_assert(msg, m.top1 < 1 && m.top1 > 0, "top1 %.3f", m.top1);
  clipcl_zeroshot_metrics_free(&m);
  free(topk), free(sup), free(hit), free(conf), free(z.labels);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

static void check_reports(const char *dir) {
  /* 3 classes, class 2 has no images; counts chosen by hand */
  int32_t labels[] = {0, 0, 0, 1, 1, 0};
  int32_t topk[] = {0, 1, 2, /**/ 0, 2, 1, /**/ 1, 0, 2, /**/ 1, 0, 2, /**/ 2, 1, 0, /**/ 2, 1, 0};
  float score[] = {0.9f, 0, 0, 0.8f, 0, 0, 0.7f, 0, 0, 0.6f, 0, 0, 0.5f, 0, 0, 0.25f, 0, 0};
  const char *names[] = {"cat", "dog, big", "fox"};
  const char *paths[] = {"a.png", "b,1.png", "say \"c\".png", "d\nnewline.png", "e.png", NULL};
  clipcl_zeroshot_metrics m;
  TH_OK(clipcl_zeroshot_metrics_compute(topk, 3, labels, 6, 3, &m));
  th_assert("hand case: top1 3/6, top5 6/6, recall (2/4 + 1/2)/2", m.top1 == 0.5 && m.top5 == 1 &&
            fabs(m.mean_per_class_recall - 0.5) < 1e-15 && m.k5 == 3, "top1 %g top5 %g mpcr %g", m.top1, m.top5,
            m.mean_per_class_recall);

  char path[512];
  snprintf(path, sizeof path, "%s/zs.json", dir);
  TH_OK(clipcl_zeroshot_write_json(path, &m, names));
  json_error_t err;
  json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
  int ok = j != NULL;
  if (ok) {
    json_t *pc = json_object_get(j, "per_class"), *cm = json_object_get(j, "confusion_matrix");
    ok = json_number_value(json_object_get(j, "top1")) == 0.5 &&
         json_number_value(json_object_get(j, "top5")) == 1 &&
         fabs(json_number_value(json_object_get(j, "mean_per_class_recall")) - 0.5) < 1e-14 &&
         json_integer_value(json_object_get(j, "n")) == 6 && json_number_value(json_object_get(pc, "cat")) == 0.5 &&
         json_number_value(json_object_get(pc, "dog, big")) == 0.5 && json_is_null(json_object_get(pc, "fox")) &&
         json_array_size(cm) == 3;
    /* rows true, columns predicted: cat -> {cat 2, dog 1, fox 1}, dog -> {dog 1, fox 1} */
    long want[3][3] = {{2, 1, 1}, {0, 1, 1}, {0, 0, 0}};
    for (int r = 0; r < 3 && ok; r++)
      for (int c = 0; c < 3 && ok; c++)
        ok = json_integer_value(json_array_get(json_array_get(cm, r), c)) == want[r][c];
    json_decref(j);
  }
  th_assert("JSON reads back with the right values", ok, "%s", j ? "values compared" : err.text);
  const char *dupn[] = {"cat", "dog", "cat"};
  char *s = NULL;
  clipcl_status st = clipcl_zeroshot_json(&m, dupn, &s);
  th_assert("JSON refuses duplicate class names", st == CLIPCL_ERR_ARG && !s, "status %d", st);

  snprintf(path, sizeof path, "%s/pred.csv", dir);
  TH_OK(clipcl_zeroshot_write_predictions(path, paths, labels, topk, score, 3, 6, 3, names));
  const char *want_csv = "path,true_label,predicted_label,score\n"
                         "a.png,cat,cat,0.899999976\n"
                         "\"b,1.png\",cat,cat,0.800000012\n"
                         "\"say \"\"c\"\".png\",cat,\"dog, big\",0.699999988\n"
                         "\"d\nnewline.png\",\"dog, big\",\"dog, big\",0.600000024\n"
                         "e.png,\"dog, big\",fox,0.5\n"
                         "5,cat,fox,0.25\n";
  s = slurp(path);
  th_assert("predictions CSV", s && !strcmp(s, want_csv), "got:\n%s", s ? s : "(none)");

  snprintf(path, sizeof path, "%s/confusion.csv", dir);
  TH_OK(clipcl_confusion_write_csv(path, &m, names));
  s = slurp(path);
  th_assert("confusion CSV", s && !strcmp(s, "true\\predicted,cat,\"dog, big\",fox\ncat,2,1,1\n\"dog, big\",0,1,1\nfox,0,0,0\n"),
            "got:\n%s", s ? s : "(none)");

  snprintf(path, sizeof path, "%s/confusion.png", dir);
  TH_OK(clipcl_confusion_write_png(path, &m));
  clipcl_image img;
  TH_OK(clipcl_image_load(path, &img));
  int cell = 32, side = 3 * cell + 1;
  const uint8_t *px = img.rgb;
#define AT(r, c) (px + 3 * ((size_t)((r) * cell + cell / 2) * side + (size_t)(c) * cell + cell / 2))
  /* cat->cat is 2/4: sqrt(.5) = .707 on the scale; cat->dog 1/4: .5; dog->cat 0: white; fox row: no images */
  th_assert("PNG size", img.w == side && img.h == side, "%dx%d", img.w, img.h);
  th_assert("PNG: zero cell is white", AT(1, 0)[0] == 255 && AT(1, 0)[1] == 255 && AT(1, 0)[2] == 255, "%d,%d,%d",
            AT(1, 0)[0], AT(1, 0)[1], AT(1, 0)[2]);
  th_assert("PNG: darker for more", AT(0, 0)[0] < AT(0, 1)[0] && AT(0, 1)[0] < 255 && AT(0, 1)[2] > AT(0, 1)[0],
            "cat->cat %d, cat->dog %d", AT(0, 0)[0], AT(0, 1)[0]);
  th_assert("PNG: half a row is mid-blue", AT(0, 1)[0] == 110 && AT(0, 1)[1] == 165 && AT(0, 1)[2] == 215,
            "%d,%d,%d", AT(0, 1)[0], AT(0, 1)[1], AT(0, 1)[2]);
  th_assert("PNG: row without images is grey", AT(2, 2)[0] == 230 && AT(2, 2)[1] == 225 && AT(2, 2)[2] == 215,
            "%d,%d,%d", AT(2, 2)[0], AT(2, 2)[1], AT(2, 2)[2]);
  th_assert("PNG: grid line", px[3 * (size_t)(cell * side + 5)] == 190, "%d", px[3 * (size_t)(cell * side + 5)]);
  clipcl_image_free(&img);
  clipcl_zeroshot_metrics_free(&m);

  int32_t bad_label[] = {0, 3, 0, 0, 0, 0};
  st = clipcl_zeroshot_metrics_compute(topk, 3, bad_label, 6, 3, &m);
  th_assert("metrics refuse a label outside the classes", st == CLIPCL_ERR_ARG, "status %d", st);
  st = clipcl_zeroshot_metrics_compute(topk, 2, labels, 6, 3, &m);
  th_assert("metrics need the top min(5, classes)", st == CLIPCL_ERR_ARG, "status %d", st);
}

int main(void) {
  char dir[] = "/tmp/clipcl_test_zeroshot_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  check_scores();
  check_topk("many queries", 150, 257, 24, 5, 40);
  check_topk("k equal to the key count", 40, 6, 8, 6, 2);
  check_topk("few queries, many keys (key ranges)", 3, 40000, 8, 10, 4000);
  check_classifier();
  check_metrics("20 classes, tie between 3 and 11", make_case(2000, 20, 32, 11, 3, 7, 0.25), 2);
  check_metrics("3 classes (top5 is top3)", make_case(500, 3, 16, -1, 0, -1, 0.6), 3);
  check_metrics("2 classes, duplicated", make_case(300, 2, 8, 1, 0, -1, 0.5), 1);
  check_reports(dir);
  float bad[4] = {1, 0, NAN, 0};
  int32_t idx[2];
  clipcl_status st = clipcl_topk(bad, 1, bad, 2, 2, 1, 1, idx, NULL);
  th_assert("top-k refuses NaN", st == CLIPCL_ERR_NUMERIC, "status %d", st);
  st = clipcl_topk(bad, 1, bad, 1, 2, 2, 1, idx, NULL);
  th_assert("top-k refuses k > keys", st == CLIPCL_ERR_ARG, "status %d", st);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return th_finish(NULL);
}

/* test_retrieval.c: retrieval recall@1/5/10, ranks, mean and median rank
 * against a brute force written here: every score by an in-order float sum,
 * every query's items fully sorted (qsort by score, then index), the rank
 * read off as the position of the first correct item. Several captions per
 * image (1 to 5), exact ties from duplicated image rows, duplicated captions
 * and captions equal to images; 1 to 3 threads. Everything is compared
 * exactly (ranks are integers, recalls and means are ratios of them). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static float ref_dot(const float *a, const float *b, int dim) {
  float s = 0;
  for (int e = 0; e < dim; e++) {
    float p = a[e] * b[e];
    s += p;
  }
  return s;
}

typedef struct {
  float s;
  int i;
} item;

static int by_score(const void *a, const void *b) {
  const item *x = a, *y = b;
  if (x->s != y->s) return x->s > y->s ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

/* position (1-based) of the first item whose owner is `want` */
static long first_correct(const float *q, const float *K, int nk, int dim, const int *owner, int want, item *buf) {
  for (int j = 0; j < nk; j++) buf[j] = (item){ref_dot(q, K + (size_t)j * dim, dim), j};
  qsort(buf, (size_t)nk, sizeof *buf, by_score);
  for (int r = 0; r < nk; r++)
    if ((owner ? owner[buf[r].i] : buf[r].i) == want) return r + 1;
  return -1;
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

static void summary(const long *rank, int n, double rec[3], double *mean, double *median) {
  const int ks[3] = {1, 5, 10};
  long *s = malloc((size_t)n * sizeof *s), sum = 0;
  memcpy(s, rank, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_long);
  for (int r = 0; r < 3; r++) {
    int h = 0;
    for (int i = 0; i < n; i++) h += rank[i] <= ks[r];
    rec[r] = (double)h / n;
  }
  for (int i = 0; i < n; i++) sum += rank[i];
  *mean = (double)sum / n;
  *median = n % 2 ? (double)s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
  free(s);
}

static void run_case(const char *name, int n_img, int dim, double noise, int dup_images, int threads) {
  float *img = th_alloc((size_t)n_img * dim);
  for (int i = 0; i < n_img * dim; i++) img[i] = (float)th_normal();
  for (int d = 0; d < dup_images; d++) {
    int a = (int)(th_uniform() * n_img), b = (int)(th_uniform() * n_img);
    memcpy(img + (size_t)b * dim, img + (size_t)a * dim, (size_t)dim * sizeof *img);
  }
  int cap = n_img * 5, nt = 0;
  float *txt = th_alloc((size_t)cap * dim);
  int *owner = th_alloc_i(cap);
  for (int i = 0; i < n_img; i++) {
    int c = 1 + (int)(th_uniform() * 5);
    for (int k = 0; k < c; k++, nt++) {
      owner[nt] = i;
      for (int e = 0; e < dim; e++) txt[(size_t)nt * dim + e] = img[(size_t)i * dim + e] + (float)(noise * th_normal());
    }
  }
  /* a caption equal to its image, and two captions of different images equal */
  memcpy(txt, img + (size_t)owner[0] * dim, (size_t)dim * sizeof *txt);
  memcpy(txt + (size_t)(nt - 1) * dim, txt + (size_t)(nt / 2) * dim, (size_t)dim * sizeof *txt);
  TH_OK(clipcl_l2_normalize(img, n_img, dim));
  TH_OK(clipcl_l2_normalize(txt, nt, dim));
  int32_t *ti = malloc((size_t)nt * sizeof *ti);
  for (int t = 0; t < nt; t++) ti[t] = owner[t];

  item *buf = malloc((size_t)(nt > n_img ? nt : n_img) * sizeof *buf);
  long *wt = malloc((size_t)nt * sizeof *wt), *wi = malloc((size_t)n_img * sizeof *wi);
  for (int t = 0; t < nt; t++) wt[t] = first_correct(txt + (size_t)t * dim, img, n_img, dim, NULL, owner[t], buf);
  for (int i = 0; i < n_img; i++) wi[i] = first_correct(img + (size_t)i * dim, txt, nt, dim, owner, i, buf);
  clipcl_retrieval_metrics want = {.n_images = n_img, .n_texts = nt};
  summary(wt, nt, want.image_recall, &want.image_mean_rank, &want.image_median_rank);
  summary(wi, n_img, want.text_recall, &want.text_mean_rank, &want.text_median_rank);

  clipcl_retrieval_metrics m;
  int64_t *rt = malloc((size_t)nt * sizeof *rt), *ri = malloc((size_t)n_img * sizeof *ri);
  TH_OK(clipcl_retrieval_eval(img, n_img, txt, nt, dim, ti, threads, &m, rt, ri));
  int bt = -1, bi = -1, tied = 0;
  for (int t = 0; t < nt; t++)
    if (rt[t] != wt[t] && bt < 0) bt = t;
  for (int i = 0; i < n_img; i++)
    if (ri[i] != wi[i] && bi < 0) bi = i;
  for (int t = 0; t < nt; t++) {
    float s = ref_dot(txt + (size_t)t * dim, img + (size_t)owner[t] * dim, dim);
    for (int i = 0; i < n_img; i++)
      if (i != owner[t] && ref_dot(txt + (size_t)t * dim, img + (size_t)i * dim, dim) == s) tied++;
  }
  char msg[200];
  snprintf(msg, sizeof msg, "%s: caption query ranks (%d threads)", name, threads);
  th_assert(msg, bt < 0, bt < 0 ? "%d captions, %d tied with their image" : "caption %d: rank %lld, brute force %ld",
            bt < 0 ? nt : bt, bt < 0 ? (long long)tied : (long long)rt[bt], bt < 0 ? 0 : wt[bt]);
  snprintf(msg, sizeof msg, "%s: image query ranks (%d threads)", name, threads);
  th_assert(msg, bi < 0, bi < 0 ? "%d images" : "image %d: rank %lld, brute force %ld", bi < 0 ? n_img : bi,
            bi < 0 ? 0LL : (long long)ri[bi], bi < 0 ? 0 : wi[bi]);
  int same = m.n_images == n_img && m.n_texts == nt && m.image_mean_rank == want.image_mean_rank &&
             m.text_mean_rank == want.text_mean_rank && m.image_median_rank == want.image_median_rank &&
             m.text_median_rank == want.text_median_rank;
  for (int r = 0; r < 3; r++) same &= m.image_recall[r] == want.image_recall[r] && m.text_recall[r] == want.text_recall[r];
  snprintf(msg, sizeof msg, "%s: recall@1/5/10, mean and median rank", name);
  th_assert(msg, same, "image R@1/5/10 %.4f %.4f %.4f (want %.4f %.4f %.4f), text %.4f %.4f %.4f (want %.4f %.4f %.4f), "
            "mean rank %.3f/%.3f (want %.3f/%.3f)", m.image_recall[0], m.image_recall[1], m.image_recall[2],
            want.image_recall[0], want.image_recall[1], want.image_recall[2], m.text_recall[0], m.text_recall[1],
            m.text_recall[2], want.text_recall[0], want.text_recall[1], want.text_recall[2], m.image_mean_rank,
            m.text_mean_rank, want.image_mean_rank, want.text_mean_rank);
  snprintf(msg, sizeof msg, "%s: not trivially perfect", name);
  th_assert(msg, m.image_recall[0] < 1 && m.text_recall[0] < 1 && m.image_recall[2] > 0, "R@1 %.3f / %.3f",
            m.image_recall[0], m.text_recall[0]);
  if (dup_images) {
    snprintf(msg, sizeof msg, "%s: the data has exact ties", name);
    th_assert(msg, tied > 0, "%d caption/image ties", tied);
  }
  free(ti), free(buf), free(wt), free(wi), free(rt), free(ri);
}

static void hand_case(void) {
  /* 2-D: images at angles; caption 0 between images 0 and 1 exactly (tie) */
  float img[] = {1, 0, 0, 1, -1, 0};
  float txt[] = {0.70710678f, 0.70710678f, /* image 1's caption ties 0 and 1 */
                 1, 0,                     /* image 0 */
                 -1, 0,                    /* image 2 */
                 0, -1};                   /* image 2, worst */
  int32_t ti[] = {1, 0, 2, 2};
  clipcl_retrieval_metrics m;
  int64_t rt[4], ri[3];
  TH_OK(clipcl_retrieval_eval(img, 3, txt, 4, 2, ti, 1, &m, rt, ri));
  /* caption 0 ties images 0 and 1: image 0 (lower index) ranks first, so its image 1 ranks 2 */
  th_assert("hand: caption ranks", rt[0] == 2 && rt[1] == 1 && rt[2] == 1 && rt[3] == 2, "%lld %lld %lld %lld",
            (long long)rt[0], (long long)rt[1], (long long)rt[2], (long long)rt[3]);
  /* image 1 scores captions 0 (0.707) > 1,2 (0) ... its caption ranks 1; image 2's best caption is 2 */
  th_assert("hand: image ranks", ri[0] == 1 && ri[1] == 1 && ri[2] == 1, "%lld %lld %lld", (long long)ri[0],
            (long long)ri[1], (long long)ri[2]);
  th_assert("hand: recall", m.image_recall[0] == 0.5 && m.image_recall[1] == 1 && m.text_recall[0] == 1 &&
            m.image_mean_rank == 1.5 && m.image_median_rank == 1.5, "R@1 %g mean %g", m.image_recall[0], m.image_mean_rank);

  char *s = NULL;
  TH_OK(clipcl_retrieval_json(&m, &s));
  json_error_t err;
  json_t *j = json_loads(s, 0, &err);
  th_assert("JSON keys", j && json_number_value(json_object_get(j, "image_retrieval_recall@1")) == 0.5 &&
            json_number_value(json_object_get(j, "text_retrieval_recall@10")) == 1 &&
            json_number_value(json_object_get(j, "image_retrieval_mean_rank")) == 1.5 &&
            json_object_get(j, "text_retrieval_recall@5") && json_object_get(j, "image_retrieval_recall@5") &&
            json_object_get(j, "tie_rule"), "%s", s);
  json_decref(j);
  free(s);

  int32_t orphan[] = {0, 0, 2, 2};
  clipcl_status st = clipcl_retrieval_eval(img, 3, txt, 4, 2, orphan, 1, &m, NULL, NULL);
  th_assert("an image without captions is refused", st == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "image 1"),
            "status %d: %s", st, clipcl_last_error());
  int32_t outside[] = {0, 1, 2, 3};
  st = clipcl_retrieval_eval(img, 3, txt, 4, 2, outside, 1, &m, NULL, NULL);
  th_assert("a caption of a missing image is refused", st == CLIPCL_ERR_ARG, "status %d", st);
  img[3] = INFINITY;
  st = clipcl_retrieval_eval(img, 3, txt, 4, 2, ti, 1, &m, NULL, NULL);
  th_assert("non-finite embeddings are refused", st == CLIPCL_ERR_NUMERIC, "status %d", st);
}

int main(void) {
  hand_case();
  run_case("60 images, noisy", 60, 12, 1.2, 6, 1);
  run_case("60 images, noisy", 60, 12, 1.2, 6, 3);
  run_case("700 images (chunked)", 700, 16, 1.0, 30, 2);
  return th_finish(NULL);
}

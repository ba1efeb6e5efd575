/* test_search_device.c: clipcl_index_search_many on the host and on the
 * device. An index of 70,000 random 128-dim rows (two upload blocks on the
 * device path) with row 100 duplicated at row 65,600 (across the block
 * boundary) is searched by five queries (random ones, one equal to row 3,
 * one equal to row 100) at k = 20. Both paths must give, rank by rank, a row
 * whose exact (double) score is the r-th best within 1e-5, and report a
 * score within 1e-5 of it; the query equal to row 3 finds row 3 first with
 * score 1; the duplicated pair comes first and second, the lower row first
 * when their scores are equal (always on the host). Also: "auto" picks the
 * host below 2^20 query-row pairs and the device above, CLIPCL_SEARCH
 * overrides it, another model's identity is refused, k larger than the
 * index returns every row.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N 70000
#define DIM 128
#define NQ 5
#define K 20

static float *emb, *queries;
static double *ref; /* NQ x N exact scores against the stored (normalised) rows */

static void reference(const clipcl_index *ix) {
  const float *X = clipcl_index_embeddings(ix);
  for (int q = 0; q < NQ; q++) {
    double nq = 0;
    for (int e = 0; e < DIM; e++) nq += (double)queries[q * DIM + e] * queries[q * DIM + e];
    for (size_t i = 0; i < N; i++) {
      double s = 0;
      for (int e = 0; e < DIM; e++) s += (double)queries[q * DIM + e] * X[i * DIM + e];
      ref[(size_t)q * N + i] = s / sqrt(nq);
    }
  }
}

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

static void check_hits(const char *what, const clipcl_search_hit *h, int n_hits) {
  double *sorted = malloc(N * sizeof *sorted);
  int ok_n = n_hits == K, ok_rank = 1, ok_score = 1, ok_path = 1;
  double worst = 0;
  for (int q = 0; q < NQ; q++) {
    memcpy(sorted, ref + (size_t)q * N, N * sizeof *sorted);
    qsort(sorted, N, sizeof *sorted, cmp_desc);
    for (int r = 0; r < n_hits; r++) {
      const clipcl_search_hit *x = &h[q * K + r];
      double s = ref[(size_t)q * N + x->index];
      if (fabs(s - sorted[r]) > 1e-5) ok_rank = 0;
      if (fabs(x->score - s) > worst) worst = fabs(x->score - s);
      char want[32];
      snprintf(want, sizeof want, "img%06lld.png", (long long)x->index);
      if (!x->path || strcmp(x->path, want)) ok_path = 0;
    }
  }
  ok_score = worst <= 1e-5;
  char name[128];
  snprintf(name, sizeof name, "%s: %d hits per query", what, K);
  th_assert(name, ok_n, "got %d", n_hits);
  snprintf(name, sizeof name, "%s: rank r holds an r-th best row", what);
  th_assert(name, ok_rank, NULL);
  snprintf(name, sizeof name, "%s: scores within 1e-5", what);
  th_assert(name, ok_score, "worst %g", worst);
  snprintf(name, sizeof name, "%s: paths", what);
  th_assert(name, ok_path, NULL);
  const clipcl_search_hit *self = &h[3 * K], *dup = &h[4 * K];
  snprintf(name, sizeof name, "%s: row 3 finds itself first, score 1", what);
  th_assert(name, self[0].index == 3 && fabs(self[0].score - 1) < 1e-5, "row %lld score %g", (long long)self[0].index,
            self[0].score);
  snprintf(name, sizeof name, "%s: the duplicated rows first, the lower first on equal scores", what);
  int pair = (dup[0].index == 100 && dup[1].index == 65600) ||
             (dup[0].index == 65600 && dup[1].index == 100 && dup[0].score != dup[1].score);
  th_assert(name, pair, "rows %lld %lld scores %.9g %.9g", (long long)dup[0].index, (long long)dup[1].index,
            dup[0].score, dup[1].score);
  free(sorted);
}

int main(void) {
  th_seed(11);
  clipcl_device *dev;
  clipcl_config cfg;
  clipcl_model *m;
  TH_OK(clipcl_device_open(NULL, &dev));
  TH_OK(clipcl_config_get("clipcl-micro", &cfg));
  TH_OK(clipcl_model_create(dev, &cfg, &m));
  emb = malloc((size_t)N * DIM * sizeof *emb);
  queries = malloc(NQ * DIM * sizeof *queries);
  ref = malloc((size_t)NQ * N * sizeof *ref);
  char **paths = malloc(N * sizeof *paths);
  clipcl_search_hit *hits = malloc(NQ * K * sizeof *hits);
  if (!emb || !queries || !ref || !paths || !hits) return 1;
  for (size_t i = 0; i < (size_t)N * DIM; i++) emb[i] = (float)th_normal();
  memcpy(emb + (size_t)65600 * DIM, emb + (size_t)100 * DIM, DIM * sizeof *emb);
  for (size_t i = 0; i < N; i++) {
    paths[i] = malloc(32);
    snprintf(paths[i], 32, "img%06zu.png", i);
  }
  clipcl_index *ix;
  size_t added;
  TH_OK(clipcl_index_create("model-a", DIM, &ix));
  TH_OK(clipcl_index_add(ix, "model-a", (const char *const *)paths, emb, N, &added));
  for (int i = 0; i < NQ * DIM; i++) queries[i] = (float)th_normal();
  memcpy(queries + 3 * DIM, emb + 3 * DIM, DIM * sizeof *queries);
  memcpy(queries + 4 * DIM, emb + 100 * DIM, DIM * sizeof *queries);
  reference(ix);

  int n_hits = 0, used = -1;
  unsetenv("CLIPCL_SEARCH");
  TH_OK(clipcl_index_search_many(ix, m, "model-a", queries, NQ, K, 0, 0, hits, &n_hits, &used));
  th_assert("host path used", used == 0, "used %d", used);
  check_hits("host", hits, n_hits);
  const clipcl_search_hit *dup = &hits[4 * K];
  th_assert("host: equal scores of the duplicated rows, lower row first",
            dup[0].index == 100 && dup[1].index == 65600 && dup[0].score == dup[1].score, NULL);
  TH_OK(clipcl_index_search_many(ix, m, "model-a", queries, NQ, K, 1, 0, hits, &n_hits, &used));
  th_assert("device path used", used == 1, "used %d", used);
  check_hits("device", hits, n_hits);

  /* auto: 5 x 70,000 pairs is below 2^20, 16 x 70,000 above */
  TH_OK(clipcl_index_search_many(ix, m, "model-a", queries, NQ, K, -1, 0, hits, &n_hits, &used));
  th_assert("auto: host for 350,000 pairs", used == 0, "used %d", used);
  float *many = malloc(16 * DIM * sizeof *many);
  clipcl_search_hit *mh = malloc(16 * K * sizeof *mh);
  for (int i = 0; i < 16 * DIM; i++) many[i] = (float)th_normal();
  TH_OK(clipcl_index_search_many(ix, m, "model-a", many, 16, K, -1, 0, mh, &n_hits, &used));
  th_assert("auto: device for 1,120,000 pairs", used == 1, "used %d", used);
  setenv("CLIPCL_SEARCH", "host", 1);
  TH_OK(clipcl_index_search_many(ix, m, "model-a", many, 16, K, -1, 0, mh, &n_hits, &used));
  th_assert("CLIPCL_SEARCH=host overrides auto", used == 0, "used %d", used);
  setenv("CLIPCL_SEARCH", "device", 1);
  TH_OK(clipcl_index_search_many(ix, m, "model-a", queries, NQ, K, -1, 0, hits, &n_hits, &used));
  th_assert("CLIPCL_SEARCH=device overrides auto", used == 1, "used %d", used);
  unsetenv("CLIPCL_SEARCH");

  clipcl_status st = clipcl_index_search_many(ix, m, "model-b", queries, NQ, K, 1, 0, hits, &n_hits, &used);
  th_assert("another model's identity is refused", st == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "model-b"),
            "%d %s", st, clipcl_last_error());
  st = clipcl_index_search_many(ix, m, "model-a", queries, 0, K, 1, 0, hits, &n_hits, &used);
  th_assert("no queries is refused", st == CLIPCL_ERR_ARG, "%d", st);

  /* a small index, k beyond its size: every row, on both paths */
  clipcl_index *small;
  TH_OK(clipcl_index_create("model-a", DIM, &small));
  TH_OK(clipcl_index_add(small, "model-a", (const char *const *)paths, emb, 7, &added));
  clipcl_search_hit sh[2][NQ * K];
  int nh[2];
  for (int w = 0; w < 2; w++)
    TH_OK(clipcl_index_search_many(small, m, "model-a", queries, NQ, K, w, 0, sh[w], &nh[w], NULL));
  int same = nh[0] == 7 && nh[1] == 7;
  for (int q = 0; q < NQ && same; q++)
    for (int r = 0; r < 7; r++) same &= sh[0][q * K + r].index == sh[1][q * K + r].index;
  th_assert("k > rows: all 7 rows, same order on host and device", same, "%d %d", nh[0], nh[1]);

  clipcl_index_free(small);
  clipcl_index_free(ix);
  for (size_t i = 0; i < N; i++) free(paths[i]);
  free(paths), free(emb), free(queries), free(ref), free(hits), free(many), free(mh);
  clipcl_model_free(m);
  clipcl_device_free(dev);
  return th_finish(NULL);
}

/* bench_search.c: times clipcl_index_search_many on the host (clipcl_topk,
 * threaded) against the device path (index blocks uploaded, cc_gemm, host
 * top-k) for 1, 8 and 64 queries, on a random index of N unit rows, and
 * checks both return the same rows. Prints one JSON object per line: the
 * best of three timed calls after a first one (timed apart: it may compile).
 * usage: bench_search [N=200000] [dim=512] [k=10]   (CLIPCL_DEVICE picks the device) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clipcl.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static float randn(void) {
  double u1, u2;
  do {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    u1 = (rng >> 11) * 0x1.0p-53;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    u2 = (rng >> 11) * 0x1.0p-53;
  } while (u1 <= 0);
  return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

#define CHECK(x)                                                                          \
  do {                                                                                    \
    if ((x) != CLIPCL_OK) {                                                               \
      fprintf(stderr, "bench_search: %s failed: %s\n", #x, clipcl_last_error());          \
      return 1;                                                                           \
    }                                                                                     \
  } while (0)

int main(int argc, char **argv) {
  size_t N = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
  int dim = argc > 2 ? atoi(argv[2]) : 512, k = argc > 3 ? atoi(argv[3]) : 10;
  if (N < 1 || dim < 1 || k < 1) return 2;
  clipcl_device *dev;
  CHECK(clipcl_device_open(NULL, &dev));
  clipcl_device_info info;
  CHECK(clipcl_device_get_info(dev, &info));
  clipcl_config cfg;
  CHECK(clipcl_config_get("clipcl-micro", &cfg));
  clipcl_model *m;
  CHECK(clipcl_model_create(dev, &cfg, &m));
  clipcl_index *ix;
  CHECK(clipcl_index_create("bench", dim, &ix));
  float *emb = malloc(N * dim * sizeof *emb);
  char **paths = malloc(N * sizeof *paths);
  if (!emb || !paths) return 1;
  for (size_t i = 0; i < N * dim; i++) emb[i] = randn();
  for (size_t i = 0; i < N; i++) {
    char p[32];
    snprintf(p, sizeof p, "img%zu.png", i);
    paths[i] = strdup(p);
  }
  size_t added;
  CHECK(clipcl_index_add(ix, "bench", (const char *const *)paths, emb, N, &added));
  const int nqs[] = {1, 8, 64};
  for (int t = 0; t < 3; t++) {
    int nq = nqs[t];
    float *q = malloc((size_t)nq * dim * sizeof *q);
    clipcl_search_hit *h[2] = {malloc((size_t)nq * k * sizeof **h), malloc((size_t)nq * k * sizeof **h)};
    for (size_t i = 0; i < (size_t)nq * dim; i++) q[i] = randn();
    double best[2] = {1e30, 1e30}, first[2] = {0, 0};
    int nh = 0;
    for (int where = 0; where < 2; where++)
      for (int rep = 0; rep < 4; rep++) {
        double t0 = now();
        CHECK(clipcl_index_search_many(ix, m, "bench", q, nq, k, where, 0, h[where], &nh, NULL));
        double dt = now() - t0;
        if (rep == 0) first[where] = dt;
        else if (dt < best[where]) best[where] = dt;
      }
    int same = 1;
    for (int i = 0; i < nq * nh; i++) same &= h[0][i].index == h[1][i].index;
    printf("{\"device\": \"%s\", \"rows\": %zu, \"dim\": %d, \"queries\": %d, \"k\": %d, \"host_ms\": %.2f, "
           "\"device_ms\": %.2f, \"host_first_ms\": %.2f, \"device_first_ms\": %.2f, \"same_rows\": %s}\n",
           info.name, N, dim, nq, k, 1e3 * best[0], 1e3 * best[1], 1e3 * first[0], 1e3 * first[1],
           same ? "true" : "false");
    free(q), free(h[0]), free(h[1]);
  }
  for (size_t i = 0; i < N; i++) free(paths[i]);
  free(paths), free(emb);
  clipcl_index_free(ix);
  clipcl_model_free(m);
  clipcl_device_free(dev);
  return 0;
}

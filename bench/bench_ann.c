/* bench_ann.c: approximate search at scale: N rows of dimension D
 * (generated to resemble CLIP embeddings, or uniform on the sphere, plus
 * optional real embeddings) go into a clipcl index (appended and saved in
 * parts, as `clipcl index` does); FAISS indexes of the chosen types are
 * built over it; queries (new points of the same distributions, held-out
 * real image embeddings, real text embeddings) are answered one at a time
 * on one thread, timed, and compared with exact search for recall@10.
 *
 *   bench_ann [--n 1000000] [--dim 512] [--data clustered|uniform] [--seed 1]
 *             [--real IMG.npy] [--real-queries IMG.npy] [--text-queries TXT.npy]
 *             [--queries 1000] [--types "HNSW32;IVF4096,Flat"] [--ef 16,32,64,128]
 *             [--nprobe 8,16,32,64] [--noise 0.35,0.7] [--threads 2] [--dir DIR] [--json OUT]
 *
 * The clustered generator (what bench/RESULTS.md calls "CLIP-like"): every
 * row is normalise(0.6 m + 0.5 (cos a t + sin a t2) + 0.35 s + sigma u) with m
 * one shared direction (CLIP embeddings sit in a narrow cone), t one of 1,000
 * topic directions picked with Zipf-like popularity (weight
 * 1/(rank+10)^0.8), t2 another topic (uniform) mixed in at an angle a drawn
 * from [0, 0.7] rad, so rows also lie between topics, s one of 20 sub-topic
 * directions of t, u a random direction, and sigma drawn per sub-topic from
 * [0.4, 0.8] (--noise); 5% of the rows are near-duplicates
 * of an earlier row (that row plus 0.2 of a random direction, normalised).
 * All directions are uniform on the sphere (normalised Gaussians).
 * "uniform" is normalised Gaussian noise: no neighbourhood structure at all.
 * Queries are fresh draws from the same generator (other seed, not in the
 * index). Real embeddings (float32 .npy, rows normalised here) are appended
 * after the generated rows.
 *
 * How hard a query set is shows in the cosine of its exact 1st and 10th
 * nearest rows (printed per kind): the closer the 10th is to the 1st, the
 * more near-ties an approximate index must resolve.
 *
 * Prints one line per configuration and a JSON summary: build seconds,
 * FAISS bytes, file bytes, peak resident memory, per-query p50/p99/mean
 * latency in ms (wall clock, and the thread's CPU time, which moves less
 * when other work shares the machine) and recall@10 per query kind. Timings depend on what else
 * the machine runs: RESULTS.md says how busy it was.
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "io/npy.h"
#include "search/faiss_shim.h"

#define CHECK(x)                                                                   \
  do {                                                                             \
    clipcl_status s_ = (x);                                                        \
    if (s_) {                                                                      \
      fprintf(stderr, "bench_ann: %s:%d: %s\n", __FILE__, __LINE__, clipcl_last_error()); \
      exit(1);                                                                     \
    }                                                                              \
  } while (0)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static double noise_lo = 0.4, noise_hi = 0.8;

/* VmRSS and VmHWM in MiB */
static void mem(double *rss, double *hwm) {
  *rss = *hwm = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    long kb;
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) *rss = kb / 1024.0;
    if (sscanf(line, "VmHWM: %ld", &kb) == 1) *hwm = kb / 1024.0;
  }
  fclose(f);
}

static uint64_t rng_state;
static double gauss(void) {
  double u = ((double)(cc_eval_rand(&rng_state) >> 11) + 0.5) / 9007199254740992.0;
  double v = ((double)(cc_eval_rand(&rng_state) >> 11) + 0.5) / 9007199254740992.0;
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}
static void unit(float *x, int d) {
  double ss = 0;
  for (int i = 0; i < d; i++) x[i] = (float)gauss(), ss += (double)x[i] * x[i];
  for (int i = 0; i < d; i++) x[i] = (float)(x[i] / sqrt(ss));
}
static void normalise(float *x, int d) {
  double ss = 0;
  for (int i = 0; i < d; i++) ss += (double)x[i] * x[i];
  for (int i = 0; i < d; i++) x[i] = (float)(x[i] / sqrt(ss));
}

#define TOPICS 1000
#define SUBS 20
typedef struct {
  int d;
  float *m, *t, *s, *sigma; /* shared, TOPICS x d, TOPICS*SUBS x d, TOPICS*SUBS */
  double *cdf;              /* topic popularity */
} gen;

static void gen_init(gen *g, int d, uint64_t seed) {
  rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
  g->d = d;
  g->m = malloc((size_t)d * 4);
  g->t = malloc((size_t)TOPICS * d * 4);
  g->s = malloc((size_t)TOPICS * SUBS * d * 4);
  g->sigma = malloc((size_t)TOPICS * SUBS * 4);
  g->cdf = malloc(TOPICS * sizeof *g->cdf);
  unit(g->m, d);
  for (int i = 0; i < TOPICS; i++) unit(g->t + (size_t)i * d, d);
  for (int i = 0; i < TOPICS * SUBS; i++) {
    unit(g->s + (size_t)i * d, d);
    g->sigma[i] = (float)(noise_lo + (noise_hi - noise_lo) * ((double)(cc_eval_rand(&rng_state) >> 11) / 9007199254740992.0));
  }
  double acc = 0;
  for (int i = 0; i < TOPICS; i++) g->cdf[i] = acc += pow(i + 10.0, -0.8);
  for (int i = 0; i < TOPICS; i++) g->cdf[i] /= acc;
}

/* n rows into x; prev (may be NULL) holds earlier rows for near-duplicates */
static void gen_rows(gen *g, int clustered, float *x, size_t n, const float *prev, size_t nprev) {
  int d = g->d;
  float *u = malloc((size_t)d * 4);
  for (size_t r = 0; r < n; r++) {
    float *o = x + r * d;
    if (!clustered) {
      unit(o, d);
      continue;
    }
    double p = (double)(cc_eval_rand(&rng_state) >> 11) / 9007199254740992.0;
    if (p < 0.05 && (r > 0 || nprev)) {
      size_t avail = nprev + r, k = cc_eval_rand_below(&rng_state, avail);
      const float *src = k < nprev ? prev + k * d : x + (k - nprev) * d;
      unit(u, d);
      for (int i = 0; i < d; i++) o[i] = src[i] + 0.2f * u[i];
      normalise(o, d);
      continue;
    }
    double q = (double)(cc_eval_rand(&rng_state) >> 11) / 9007199254740992.0;
    int lo = 0, hi = TOPICS - 1;
    while (lo < hi) {
      int mid = (lo + hi) / 2;
      if (g->cdf[mid] < q) lo = mid + 1;
      else hi = mid;
    }
    int sub = lo * SUBS + (int)cc_eval_rand_below(&rng_state, SUBS);
    /* a second topic, mixed in at an angle up to 0.7 rad: rows between topics */
    int other = (int)cc_eval_rand_below(&rng_state, TOPICS);
    double th = 0.7 * ((double)(cc_eval_rand(&rng_state) >> 11) / 9007199254740992.0);
    float ca = (float)(0.5 * cos(th)), sa = (float)(0.5 * sin(th));
    unit(u, d);
    const float *t = g->t + (size_t)lo * d, *t2 = g->t + (size_t)other * d, *s = g->s + (size_t)sub * d;
    for (int i = 0; i < d; i++) o[i] = 0.6f * g->m[i] + ca * t[i] + sa * t2[i] + 0.35f * s[i] + g->sigma[sub] * u[i];
    normalise(o, d);
  }
  free(u);
}

static float *load_npy(const char *path, size_t *n, int d) {
  float *x = NULL;
  cc_npy_info in;
  CHECK(cc_npy_read_float(path, &x, &in));
  if (in.ndim != 2 || (int)in.shape[1] != d) {
    fprintf(stderr, "bench_ann: %s: %zu x %zu, expected rows of %d\n", path, in.shape[0], in.shape[1], d);
    exit(1);
  }
  *n = in.shape[0];
  for (size_t r = 0; r < *n; r++) normalise(x + r * d, d);
  return x;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int parse_list(const char *s, int *v, int cap) {
  int n = 0;
  while (*s && n < cap) {
    v[n++] = atoi(s);
    s = strchr(s, ',');
    if (!s) break;
    s++;
  }
  return n;
}

typedef struct {
  const char *name;
  size_t first, n; /* query rows */
} qkind;

int main(int argc, char **argv) {
  size_t N = 1000000, nq_gen = 1000;
  int D = 512, clustered = 1, threads = 2;
  uint64_t seed = 1;
  const char *real = NULL, *realq = NULL, *textq = NULL, *types = "HNSW32", *dir = "/tmp/clipcl_bench_ann",
             *json = NULL, *efs = "16,32,64,128", *nprobes = "8,16,32,64";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      fprintf(stderr, "bench_ann: %s needs a value\n", a);
      return 2;
    }
    i++;
    if (!strcmp(a, "--n")) N = (size_t)atoll(v);
    else if (!strcmp(a, "--dim")) D = atoi(v);
    else if (!strcmp(a, "--data")) clustered = strcmp(v, "uniform") != 0;
    else if (!strcmp(a, "--seed")) seed = (uint64_t)atoll(v);
    else if (!strcmp(a, "--real")) real = v;
    else if (!strcmp(a, "--real-queries")) realq = v;
    else if (!strcmp(a, "--text-queries")) textq = v;
    else if (!strcmp(a, "--queries")) nq_gen = (size_t)atoll(v);
    else if (!strcmp(a, "--types")) types = v;
    else if (!strcmp(a, "--ef")) efs = v;
    else if (!strcmp(a, "--nprobe")) nprobes = v;
    else if (!strcmp(a, "--threads")) threads = atoi(v);
    else if (!strcmp(a, "--noise")) sscanf(v, "%lf,%lf", &noise_lo, &noise_hi);
    else if (!strcmp(a, "--dir")) dir = v;
    else if (!strcmp(a, "--json")) json = v;
    else {
      fprintf(stderr, "bench_ann: unknown option %s\n", a);
      return 2;
    }
  }
  double rss, hwm;
  size_t nreal = 0, nrq = 0, ntq = 0;
  float *R = real ? load_npy(real, &nreal, D) : NULL;
  float *RQ = realq ? load_npy(realq, &nrq, D) : NULL;
  float *TQ = textq ? load_npy(textq, &ntq, D) : NULL;
  size_t ngen = N > nreal ? N - nreal : 0;
  printf("rows: %zu generated (%s) + %zu real = %zu, dim %d; queries: %zu generated, %zu real images, %zu texts\n",
         ngen, clustered ? "clustered" : "uniform", nreal, ngen + nreal, D, nq_gen, nrq, ntq);
  fflush(stdout);

  /* the index: appended in blocks and saved part by part, as clipcl index does */
  gen g;
  gen_init(&g, D, seed);
  clipcl_index *ix;
  CHECK(clipcl_index_create("bench", D, &ix));
  clipcl_index_set_part_rows(ix, 250000);
  size_t block = 50000;
  float *x = malloc(block * (size_t)D * 4);
  char **paths = malloc(block * sizeof *paths);
  for (size_t i = 0; i < block; i++) paths[i] = malloc(32);
  double t0 = now(), t_gen = 0;
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) return 1;
  for (size_t r = 0; r < ngen + nreal; r += block) {
    size_t m = ngen + nreal - r < block ? ngen + nreal - r : block;
    double tg = now();
    for (size_t i = 0; i < m; i++) {
      size_t row = r + i;
      if (row < ngen) {
        gen_rows(&g, clustered, x + i * D, 1, clipcl_index_embeddings(ix), r);
        snprintf(paths[i], 32, "gen/%07zu", row);
      } else {
        memcpy(x + i * D, R + (row - ngen) * D, (size_t)D * 4);
        snprintf(paths[i], 32, "real/%06zu", row - ngen);
      }
    }
    t_gen += now() - tg;
    size_t added;
    CHECK(clipcl_index_add(ix, "bench", (const char *const *)paths, x, m, &added));
    if ((r + m) % 250000 == 0 || r + m == ngen + nreal) CHECK(clipcl_index_save(ix, dir));
  }
  double t_index = now() - t0 - t_gen;
  CHECK(clipcl_index_load_embeddings(ix));
  mem(&rss, &hwm);
  printf("index written: %.1f s (generation %.1f s more), resident %.0f MiB\n", t_index, t_gen, rss);
  fflush(stdout);

  /* queries and their exact top-10 */
  size_t NQ = nq_gen + nrq + ntq;
  float *Q = malloc(NQ * (size_t)D * 4);
  rng_state ^= 0xabcdef12345ULL;
  gen_rows(&g, clustered, Q, nq_gen, clipcl_index_embeddings(ix), ngen);
  if (nrq) memcpy(Q + nq_gen * D, RQ, nrq * (size_t)D * 4);
  if (ntq) memcpy(Q + (nq_gen + nrq) * D, TQ, ntq * (size_t)D * 4);
  qkind kinds[3] = {{"generated", 0, nq_gen}, {"real image", nq_gen, nrq}, {"text", nq_gen + nrq, ntq}};
  const int K = 10;
  clipcl_search_hit *truth = malloc(NQ * K * sizeof *truth), *hits = malloc(K * sizeof *hits);
  int *nt = malloc(NQ * sizeof *nt), nh = 0;
  t0 = now();
  clipcl_query_options exact = {0, 1, 0, 0, threads};
  for (size_t q = 0; q < NQ; q += 256) {
    int m = NQ - q < 256 ? (int)(NQ - q) : 256;
    CHECK(clipcl_index_query(ix, Q + q * D, m, K, &exact, truth + q * K, nt + q, NULL));
  }
  double t_exact = now() - t0;
  printf("exact top-10 of %zu queries: %.1f s (%.1f ms a query on %d threads)\n", NQ, t_exact, 1e3 * t_exact / NQ,
         threads);
  for (int k = 0; k < 3; k++) {
    double c1 = 0, c10 = 0;
    size_t m = 0;
    for (size_t q = kinds[k].first; q < kinds[k].first + kinds[k].n; q++)
      if (nt[q] == K) c1 += truth[q * K].score, c10 += truth[q * K + K - 1].score, m++;
    if (m) printf("  %-10s queries: cosine of the nearest row %.3f, of the 10th %.3f (means)\n", kinds[k].name, c1 / m, c10 / m);
  }
  fflush(stdout);
  /* exact, one query on one thread, as a reference latency */
  double *lat = malloc(NQ * sizeof *lat), *cpu = malloc(NQ * sizeof *cpu);
  clipcl_query_options ex1 = {0, 1, 0, 0, 1};
  size_t nex = NQ < 50 ? NQ : 50;
  for (size_t q = 0; q < nex; q++) {
    double a = now();
    CHECK(clipcl_index_query(ix, Q + q * D, 1, K, &ex1, hits, &nh, NULL));
    lat[q] = now() - a;
  }
  qsort(lat, nex, sizeof *lat, cmp_d);
  printf("exact search, one query on one thread: median %.1f ms\n", 1e3 * lat[nex / 2]);

  FILE *js = json ? fopen(json, "w") : NULL;
  if (js)
    fprintf(js, "{\"rows\": %zu, \"generated\": %zu, \"real\": %zu, \"dim\": %d, \"data\": \"%s\", \"queries\": %zu, "
                "\"index_write_s\": %.1f, \"exact_ms_1thread\": %.2f, \"configs\": [",
            ngen + nreal, ngen, nreal, D, clustered ? "clustered" : "uniform", NQ, t_index, 1e3 * lat[nex / 2]);
  int first = 1;
  char tbuf[512];
  snprintf(tbuf, sizeof tbuf, "%s", types);
  for (char *type = strtok(tbuf, ";"); type; type = strtok(NULL, ";")) {
    char factory[128];
    if (!strncmp(type, "IVF", 3) && !strchr(type, ',')) snprintf(factory, sizeof factory, "%s,Flat", type);
    else snprintf(factory, sizeof factory, "%s", type);
    if (!strcmp(factory, "auto")) CHECK(clipcl_ann_choose(ngen + nreal, D, 0, factory, sizeof factory));
    double r0, h0;
    mem(&r0, &h0);
    clipcl_ann_options ao = {0};
    ao.threads = threads;
    t0 = now();
    CHECK(clipcl_index_build_ann(ix, 0, factory, &ao));
    double t_build = now() - t0;
    double r1, h1;
    mem(&r1, &h1);
    t0 = now();
    CHECK(clipcl_index_save(ix, dir));
    double t_save = now() - t0;
    char pj[1200];
    snprintf(pj, sizeof pj, "%s/index.json", dir);
    long long fbytes = 0;
    /* the FAISS file: image_<generation>.index, the newest */
    for (int gnum = 64; gnum >= 1; gnum--) {
      struct stat sb;
      snprintf(pj, sizeof pj, "%s/image_%d.index", dir, gnum);
      if (stat(pj, &sb) == 0) {
        fbytes = (long long)sb.st_size;
        break;
      }
    }
    printf("\n%s: built in %.1f s on %d threads, saved in %.1f s; file %.0f MiB; resident %.0f -> %.0f MiB (peak %.0f)\n",
           factory, t_build, threads, t_save, fbytes / 1048576.0, r0, r1, h1);
    fflush(stdout);
    int params[16], np;
    int is_ivf = strstr(factory, "IVF") != NULL, is_hnsw = !is_ivf && strstr(factory, "HNSW") != NULL;
    np = is_hnsw ? parse_list(efs, params, 16) : is_ivf ? parse_list(nprobes, params, 16) : 1;
    if (!is_hnsw && !is_ivf) params[0] = 0;
    if (js)
      fprintf(js, "%s{\"factory\": \"%s\", \"build_s\": %.1f, \"save_s\": %.1f, \"file_bytes\": %lld, "
                  "\"resident_mib_before\": %.0f, \"resident_mib_after\": %.0f, \"peak_mib\": %.0f, \"runs\": [",
              first ? "" : ", ", factory, t_build, t_save, fbytes, r0, r1, h1);
    first = 0;
    cc_faiss_set_threads(1);
    for (int p = 0; p < np; p++) {
      clipcl_query_options qo = {0, 0, is_ivf ? params[p] : 0, is_hnsw ? params[p] : 0, 1};
      double recall[3] = {0}, lsum = 0;
      for (size_t q = 0; q < NQ; q++) {
        double a = now(), c = cpu_now();
        CHECK(clipcl_index_query(ix, Q + q * D, 1, K, &qo, hits, &nh, NULL));
        lat[q] = now() - a;
        cpu[q] = cpu_now() - c;
        lsum += lat[q];
        int k = q < kinds[1].first ? 0 : q < kinds[2].first ? 1 : 2, got = 0;
        for (int i = 0; i < nh; i++)
          for (int j = 0; j < nt[q]; j++) got += hits[i].index == truth[q * K + j].index;
        recall[k] += (double)got / K;
      }
      qsort(lat, NQ, sizeof *lat, cmp_d);
      qsort(cpu, NQ, sizeof *cpu, cmp_d);
      double p50 = 1e3 * lat[NQ / 2], p99 = 1e3 * lat[(size_t)(0.99 * (NQ - 1))], mean = 1e3 * lsum / NQ;
      double c50 = 1e3 * cpu[NQ / 2], c99 = 1e3 * cpu[(size_t)(0.99 * (NQ - 1))];
      double all = (recall[0] + recall[1] + recall[2]) / NQ;
      printf("  %-8s %5d: recall@10 %.4f (generated %.4f, real images %.4f, texts %.4f); wall ms p50 %.2f p99 %.2f "
             "mean %.2f; cpu ms p50 %.2f p99 %.2f\n",
             is_hnsw ? "efSearch" : is_ivf ? "nprobe" : "exact", params[p], all, nq_gen ? recall[0] / nq_gen : NAN,
             nrq ? recall[1] / nrq : NAN, ntq ? recall[2] / ntq : NAN, p50, p99, mean, c50, c99);
      fflush(stdout);
      if (js)
        fprintf(js, "%s{\"param\": %d, \"recall10\": %.4f, \"recall10_generated\": %.4f, \"recall10_real\": %.4f, "
                    "\"recall10_text\": %.4f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"mean_ms\": %.3f, "
                    "\"cpu_p50_ms\": %.3f, \"cpu_p99_ms\": %.3f}",
                p ? ", " : "", params[p], all, nq_gen ? recall[0] / nq_gen : -1, nrq ? recall[1] / nrq : -1,
                ntq ? recall[2] / ntq : -1, p50, p99, mean, c50, c99);
    }
    if (js) fprintf(js, "]}");
  }
  if (js) {
    fprintf(js, "]}\n");
    fclose(js);
  }
  clipcl_index_free(ix);
  return 0;
}

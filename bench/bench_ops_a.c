/* bench_ops_a.c: timing loop for the LayerNorm, embedding and pooling ops at
 * CLIP training sizes; prints milliseconds per call and effective GB/s (the
 * bytes the op must move at least, over the best wall time of several calls). Not a test: nothing here
 * fails. With CLIPCL_PROFILE=1 a per-kernel table follows (im2col alone, the
 * GEMMs alone). Usage: bench_ops_a [reps] [label substring]; CLIPCL_DEVICE, CLIPCL_LN_LANES apply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl/runtime.h"
#include "ops/ops.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHECK(x)                                                               \
  do {                                                                         \
    if ((x) != CLIPCL_OK) {                                                    \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, clipcl_last_error()); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

static cc_rt *rt;
static int reps = 20;
static const char *filter; /* only labels containing this */
static char label[128];

static cc_view buf(size_t n, float v) {
  cl_mem m;
  CHECK(cc_buffer(rt, n * 4 + 64, &m, "bench"));
  cc_view x = {m, 3};
  CHECK(cc_fill(rt, x, n, v));
  return x;
}

/* Best time of `reps` calls, each waited for: the machine is shared, and the
 * minimum is the figure least disturbed by other processes. */
#define TIME(bytes, call)                                                              \
  do {                                                                                 \
    if (filter && !strstr(label, filter)) break;                                       \
    CHECK(call);                                                                       \
    CHECK(cc_finish(rt));                                                              \
    double best = 1e30;                                                                \
    for (int r_ = 0; r_ < reps; r_++) {                                                \
      double t0 = now();                                                               \
      CHECK(call);                                                                     \
      CHECK(cc_finish(rt));                                                            \
      if (now() - t0 < best) best = now() - t0;                                        \
    }                                                                                  \
    double ms = best * 1e3;                                                            \
    printf("%-48s %9.3f ms %8.2f GB/s\n", label, ms, (double)(bytes) / (ms * 1e-3) / 1e9); \
  } while (0)

static void free_all(cc_view *v, int n) {
  for (int i = 0; i < n; i++) cc_release(v[i].buf);
}

int main(int argc, char **argv) {
  if (argc > 1) reps = atoi(argv[1]);
  if (argc > 2) filter = argv[2];
  CHECK(clipcl_device_open(NULL, &rt));
  printf("device: %s, %d reps\n", cc_info(rt)->name, reps);

  /* roofline: what plain streaming kernels reach on this device */
  for (size_t n = (size_t)1 << 20; n <= ((size_t)1 << 24); n <<= 2) {
    cc_view v[3] = {buf(n, 1), buf(n, 2), buf(n, 0)};
    snprintf(label, sizeof label, "reference: cc_add_fwd n=%zu", n);
    TIME(3 * n * 4, cc_add_fwd(rt, v[2], v[0], v[1], n));
    free_all(v, 3);
  }

  const int ln[][2] = {{3200, 768}, {19712, 512}, {3200, 256}, {4928, 1024}};
  for (int i = 0; i < 4; i++) {
    int N = ln[i][0], C = ln[i][1];
    size_t n = (size_t)N * C;
    cc_view v[9] = {buf(n, 1), buf(n, 0), buf(C, 1), buf(C, 0), buf(N, 0), buf(N, 1), buf(n, 0), buf(C, 0),
                    buf(C, 0)};
    cc_view x = v[0], y = v[1], w = v[2], b = v[3], m = v[4], s = v[5], dx = v[6], dw = v[7], db = v[8];
    snprintf(label, sizeof label, "layernorm_fwd N%d C%d", N, C);
    TIME(2 * n * 4, cc_layernorm_fwd(rt, y, m, s, x, w, b, N, C));
    snprintf(label, sizeof label, "layernorm_bwd N%d C%d", N, C);
    TIME(4 * n * 4, cc_layernorm_bwd(rt, dx, dw, db, y, x, w, m, s, N, C));
    snprintf(label, sizeof label, "layernorm_bwd dw,db only N%d C%d", N, C);
    TIME(2 * n * 4, cc_layernorm_bwd(rt, cc_none(), dw, db, y, x, w, m, s, N, C));
    free_all(v, 9);
  }

  const int pe[][4] = {{64, 224, 32, 768}, {32, 224, 16, 768}, {256, 64, 8, 256}};
  for (int i = 0; i < 3; i++) {
    int B = pe[i][0], S = pe[i][1], p = pe[i][2], C = pe[i][3], G = S / p;
    size_t nimg = (size_t)B * 3 * S * S, rows = (size_t)B * G * G, K = 3 * p * p;
    cc_view v[6] = {buf(nimg, 1), buf(rows * K, 0), buf(C * K, 0.01f), buf(rows * C, 0), buf(C * K, 0),
                    buf(nimg, 0)};
    snprintf(label, sizeof label, "patch_embed_fwd B%d S%d p%d C%d", B, S, p, C);
    TIME(2 * nimg * 4, cc_patch_embed_fwd(rt, v[3], v[1], v[0], v[2], B, S, p, C));
    snprintf(label, sizeof label, "patch_embed_bwd dw+dimg B%d S%d p%d C%d", B, S, p, C);
    TIME(2 * nimg * 4, cc_patch_embed_bwd(rt, v[4], v[5], v[3], v[1], v[2], B, S, p, C));
    free_all(v, 6);
  }

  const int ve[][3] = {{256, 49, 768}, {64, 196, 768}, {256, 64, 256}};
  for (int i = 0; i < 3; i++) {
    int B = ve[i][0], P = ve[i][1], C = ve[i][2];
    size_t no = (size_t)B * (P + 1) * C, np = (size_t)B * P * C;
    cc_view v[7] = {buf(no, 0), buf(np, 1), buf(C, 1), buf((size_t)(P + 1) * C, 1), buf(np, 0), buf(C, 0),
                    buf((size_t)(P + 1) * C, 0)};
    snprintf(label, sizeof label, "vit_embed_fwd B%d P%d C%d", B, P, C);
    TIME((no + np) * 4, cc_vit_embed_fwd(rt, v[0], v[1], v[2], v[3], B, P, C));
    snprintf(label, sizeof label, "vit_embed_bwd B%d P%d C%d", B, P, C);
    TIME((no + 2 * np) * 4, cc_vit_embed_bwd(rt, v[4], v[5], v[6], v[0], B, P, C));
    free_all(v, 7);
  }

  const int te[][4] = {{256, 77, 512, 49408}, {64, 77, 512, 49408}};
  for (int i = 0; i < 2; i++) {
    int B = te[i][0], T = te[i][1], C = te[i][2], V = te[i][3];
    size_t no = (size_t)B * T * C;
    int *ids = malloc(sizeof(int) * B * T);
    /* captions as CLIP sees them: SOT, ~15 tokens spread over the vocabulary,
     * EOT, then padding id 0 */
    for (int j = 0; j < B * T; j++) {
      int t = j % T, len = 10 + (j / T) % 11;
      ids[j] = t == 0 ? 49406 : t <= len ? (int)((j * 2654435761u) % 49406u) : t == len + 1 ? 49407 : 0;
    }
    cc_view v[5] = {buf(no, 0), buf((size_t)B * T, 0), buf((size_t)V * C, 1), buf((size_t)T * C, 1),
                    buf((size_t)V * C, 0)};
    CHECK(cc_write(rt, v[1], ids, (size_t)B * T));
    free(ids);
    snprintf(label, sizeof label, "tok_embed_fwd B%d T%d C%d", B, T, C);
    TIME(2 * no * 4, cc_tok_embed_fwd(rt, v[0], v[1], v[2], v[3], B, T, C, V));
    snprintf(label, sizeof label, "tok_embed_bwd B%d T%d C%d", B, T, C);
    TIME(3 * no * 4, cc_tok_embed_bwd(rt, v[4], v[3], v[0], v[1], B, T, C, V));
    snprintf(label, sizeof label, "tok_embed_bwd dwte only B%d T%d C%d", B, T, C);
    TIME(2 * no * 4, cc_tok_embed_bwd(rt, v[4], cc_none(), v[0], v[1], B, T, C, V));
    snprintf(label, sizeof label, "tok_embed_bwd dpos only B%d T%d C%d", B, T, C);
    TIME(1 * no * 4, cc_tok_embed_bwd(rt, cc_none(), v[3], v[0], v[1], B, T, C, V));
    snprintf(label, sizeof label, "argmax_rows B%d T%d", B, T);
    TIME((size_t)B * T * 4, cc_argmax_rows(rt, v[3], v[1], B, T));
    snprintf(label, sizeof label, "gather_rows_fwd+bwd B%d T%d C%d", B, T, C);
    TIME(4 * (size_t)B * C * 4, cc_gather_rows_fwd(rt, v[2], v[0], v[3], B, T, C) ||
                                    cc_gather_rows_bwd(rt, v[4], v[2], v[3], B, T, C));
    free_all(v, 5);
  }
  clipcl_device_profile_report(rt, stdout);
  clipcl_device_free(rt);
  return 0;
}

/* ann.c: approximate search over an index: which FAISS index type for how
 * many rows (exact, IVF with flat lists while the vectors fit, IVF-PQ beyond),
 * building it from the stored rows (training
 * sample, then every row in blocks), and answering queries through it or
 * exactly. Not here: the FAISS calls (faiss_shim.cpp), where the FAISS files
 * live and how they follow appends (index.c).
 *
 * Defaults at query time: HNSW explores max(64, 2k) candidates and IVF
 * visits 32 clusters unless the caller says otherwise; bench/RESULTS.md has
 * the recall and latency these give on a million rows.
 */
#define _DEFAULT_SOURCE /* sysconf(_SC_PHYS_PAGES) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "search/faiss_shim.h"
#include "search/search.h"
#include "util/error.h"

#define ANN_EXACT_BELOW 10000
#define ANN_DEFAULT_NPROBE 32
#define ANN_MIN_EF 64
#define ANN_ADD_BLOCK 65536

int clipcl_faiss_available(void) { return cc_faiss_available(); }

static size_t default_budget(void) {
  size_t cap = (size_t)16 << 30, half = cap;
#ifdef _SC_PHYS_PAGES
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  if (pages > 0 && psz > 0) half = (size_t)pages / 2 * (size_t)psz;
#endif
  return half < cap ? half : cap;
}

/* 2^round(log2(4 sqrt n)), at least 16. */
static int sqrt_clusters(size_t n) {
  int c = 1 << (int)lround(log2(4.0 * sqrt((double)n)));
  return c < 16 ? 16 : c;
}

/* For PQ lists: sqrt_clusters below a million rows, then 16,384, then 65,536. */
static int ivf_clusters(size_t n) {
  if (n >= 10000000) return 65536;
  if (n >= 1000000) return 16384;
  return sqrt_clusters(n);
}

/* For flat lists: sqrt_clusters, but no more than n/39 (FAISS's k-means
 * wants 39 training rows a centroid) and at least 16. */
static int ivf_flat_clusters(size_t n) {
  int c = sqrt_clusters(n);
  while (c > 16 && (size_t)c * 39 > n) c /= 2;
  return c;
}

clipcl_status clipcl_ann_choose(size_t n, int dim, size_t memory_budget, char *out, size_t cap) {
  if (!out || cap < 32 || dim < 1) return cc_fail(CLIPCL_ERR_ARG, "ann choose: bad arguments");
  if (!memory_budget) memory_budget = default_budget();
  /* IVF with flat lists: the float vectors and their ids. Not HNSW32, which
   * autofaiss picks at this size: on a million CLIP-like rows with many
   * near-duplicates (real image collections have them) its recall@10 was
   * 0.56-0.66 at efSearch 16-128 where IVF4096,Flat reached 0.999 at
   * nprobe 8 (bench/RESULTS.md) */
  double flat = (double)n * ((double)dim * 4 + 8) * 1.05;
  if (n < ANN_EXACT_BELOW) {
    snprintf(out, cap, "Flat");
  } else if (flat <= (double)memory_budget) {
    snprintf(out, cap, "IVF%d,Flat", ivf_flat_clusters(n));
  } else {
    int m = dim / 8 > 0 ? dim / 8 : 1;
    while (m > 1 && dim % m) m--;
    snprintf(out, cap, "IVF%d,PQ%dx8", ivf_clusters(n), m);
  }
  return CLIPCL_OK;
}

static int is_exact(const char *factory) {
  return !factory || !*factory || !strcmp(factory, "Flat") || !strcmp(factory, "exact");
}

/* Clusters named by "IVF<c>" in a factory string, 0 when none. */
static long factory_clusters(const char *f) {
  const char *p = strstr(f, "IVF");
  return p ? strtol(p + 3, NULL, 10) : 0;
}

clipcl_status clipcl_index_build_ann(clipcl_index *ix, int text, const char *factory, const clipcl_ann_options *o) {
  if (!ix) return cc_fail(CLIPCL_ERR_ARG, "ann build: no index");
  text = text != 0;
  if (text && !clipcl_index_has_text(ix)) return cc_fail(CLIPCL_ERR_ARG, "ann build: the index keeps no caption embeddings");
  clipcl_ann_options d = {0};
  if (!o) o = &d;
  size_t n = clipcl_index_count(ix), D = (size_t)clipcl_index_dim(ix);
  char chosen[64];
  if (!factory || !strcmp(factory, "auto")) {
    CC_TRY(clipcl_ann_choose(n, (int)D, 0, chosen, sizeof chosen));
    factory = chosen;
  }
  if (is_exact(factory)) {
    cc_index_set_ann(ix, text, NULL, NULL);
    return CLIPCL_OK;
  }
  if (!cc_faiss_available())
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "index type %s needs FAISS: this clipcl was built without FAISS", factory);
  if (n == 0) return cc_fail(CLIPCL_ERR_ARG, "ann build: the index is empty");
  if (strlen(factory) > 200) return cc_fail(CLIPCL_ERR_ARG, "ann build: factory string too long");
  char *fac = malloc(strlen(factory) + 1);
  if (!fac) return cc_fail(CLIPCL_ERR_NOMEM, "ann build: out of memory");
  strcpy(fac, factory);
  if (o->threads > 0) cc_faiss_set_threads(o->threads);
  char err[512] = "";
  cc_faiss *f = NULL;
  float *buf = NULL;
  clipcl_status st = CLIPCL_OK;
  if (cc_faiss_create(factory, (int)D, &f, err, sizeof err)) {
    st = cc_fail(CLIPCL_ERR_ARG, "index type %s", err);
    goto done;
  }
  if (cc_faiss_needs_training(f)) {
    long c = factory_clusters(factory);
    size_t want = o->train_rows;
    if (!want) {
      want = (size_t)(c > 0 ? 64 * c : 0);
      if (want < 65536) want = 65536;
    }
    if (want > n) want = n;
    if (c > 0 && n < (size_t)c)
      { st = cc_fail(CLIPCL_ERR_ARG, "index type %s: %zu rows cannot train %ld clusters", factory, n, c); goto done; }
    if (want > SIZE_MAX / 4 / D || !(buf = malloc(want * D * sizeof *buf))) {
      st = cc_fail(CLIPCL_ERR_NOMEM, "ann build: out of memory for %zu training rows", want);
      goto done;
    }
    /* a seeded sample: every row when it fits, else a partial Fisher-Yates */
    if (want == n) {
      st = cc_index_rows_f32(ix, text, 0, n, buf);
    } else {
      uint64_t rng = o->seed ^ 0x5eed5eedULL;
      size_t *pick = malloc(want * sizeof *pick);
      if (!pick) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "ann build: out of memory");
        goto done;
      }
      /* reservoir sampling keeps memory at the sample size */
      for (size_t i = 0; i < n; i++) {
        if (i < want) {
          pick[i] = i;
        } else {
          uint64_t j = cc_eval_rand_below(&rng, i + 1);
          if (j < want) pick[j] = i;
        }
      }
      for (size_t i = 0; i < want && !st; i++) st = cc_index_rows_f32(ix, text, pick[i], 1, buf + i * D);
      free(pick);
    }
    if (!st && o->progress) o->progress(o->user, "ann-train", 0, (int64_t)want);
    if (!st && cc_faiss_train(f, buf, (int64_t)want, err, sizeof err))
      st = cc_fail(CLIPCL_ERR_NUMERIC, "index type %s: %s", factory, err);
    if (!st && o->progress) o->progress(o->user, "ann-train", (int64_t)want, (int64_t)want);
    free(buf);
    buf = NULL;
    if (st) goto done;
  }
  size_t block = n < ANN_ADD_BLOCK ? n : ANN_ADD_BLOCK;
  if (!(buf = malloc(block * D * sizeof *buf))) {
    st = cc_fail(CLIPCL_ERR_NOMEM, "ann build: out of memory");
    goto done;
  }
  for (size_t r = 0; r < n && !st; r += block) {
    size_t m = n - r < block ? n - r : block;
    st = cc_index_rows_f32(ix, text, r, m, buf);
    if (!st && cc_faiss_add(f, buf, (int64_t)m, err, sizeof err))
      st = cc_fail(CLIPCL_ERR_NUMERIC, "index type %s: %s", factory, err);
    if (!st && o->progress) o->progress(o->user, "ann-add", (int64_t)(r + m), (int64_t)n);
  }
done:
  free(buf);
  if (st) {
    cc_faiss_free(f);
    free(fac);
    return st;
  }
  cc_index_set_ann(ix, text, f, fac);
  return CLIPCL_OK;
}

clipcl_status clipcl_index_query(const clipcl_index *ix, const float *queries, int nq, int k,
                                 const clipcl_query_options *o, clipcl_search_hit *hits, int *n_hits, int *used) {
  if (used) *used = 0;
  if (!ix || !queries || nq < 1 || k < 1 || !hits || !n_hits)
    return cc_fail(CLIPCL_ERR_ARG, "index query: bad arguments (k %d, %d queries)", k, nq);
  clipcl_query_options d = {0};
  if (!o) o = &d;
  int text = o->text != 0;
  for (int q = 0; q < nq; q++) n_hits[q] = 0;
  if (text && !clipcl_index_has_text(ix)) return cc_fail(CLIPCL_ERR_ARG, "this index keeps no caption embeddings");
  size_t n = clipcl_index_count(ix), D = (size_t)clipcl_index_dim(ix);
  if (n == 0) return CLIPCL_OK;
  if ((size_t)nq > SIZE_MAX / sizeof(float) / D / (size_t)k) return cc_fail(CLIPCL_ERR_ARG, "index query: sizes overflow");
  int kk = (size_t)k < n ? k : (int)n;
  float *q = malloc((size_t)nq * D * sizeof *q), *sc = malloc((size_t)nq * kk * sizeof *sc);
  int64_t *id = malloc((size_t)nq * kk * sizeof *id);
  clipcl_status st = q && sc && id ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index query: out of memory");
  if (!st) {
    memcpy(q, queries, (size_t)nq * D * sizeof *q);
    if ((st = clipcl_l2_normalize(q, (size_t)nq, (int)D))) cc_fail_ctx(st, "index query");
  }
  struct cc_faiss *ann = o->exact ? NULL : cc_index_ann(ix, text);
  if (!st && ann) {
    char err[512] = "";
    int ef = o->ef_search > 0 ? o->ef_search : (2 * kk > ANN_MIN_EF ? 2 * kk : ANN_MIN_EF);
    int nprobe = o->nprobe > 0 ? o->nprobe : ANN_DEFAULT_NPROBE;
    if (cc_faiss_search(ann, q, nq, kk, nprobe, ef, sc, id, err, sizeof err))
      st = cc_fail(CLIPCL_ERR_NUMERIC, "FAISS %s", err);
    if (!st && used) *used = 1;
  } else if (!st) {
    const float *keys = text ? clipcl_index_text_embeddings(ix) : clipcl_index_embeddings(ix);
    int32_t *idx = malloc((size_t)nq * kk * sizeof *idx);
    if (!keys)
      st = cc_fail(CLIPCL_ERR_ARG, "exact search needs the embeddings in memory (and there is no FAISS index%s)",
                   clipcl_index_ann_factory(ix, text) ? " loaded" : "");
    else if (!idx)
      st = cc_fail(CLIPCL_ERR_NOMEM, "index query: out of memory");
    else if (n > INT32_MAX)
      st = cc_fail(CLIPCL_ERR_ARG, "index query: %zu rows are too many for exact search", n);
    else
      st = clipcl_topk(q, (size_t)nq, keys, n, (int)D, kk, o->threads, idx, sc);
    for (size_t i = 0; !st && i < (size_t)nq * kk; i++) id[i] = idx[i];
    free(idx);
  }
  for (int i = 0; i < nq && !st; i++) {
    int got = 0;
    for (int r = 0; r < kk; r++) {
      int64_t row = id[(size_t)i * kk + r];
      if (row < 0 || (size_t)row >= n) continue;
      hits[(size_t)i * k + got++] = (clipcl_search_hit){row, sc[(size_t)i * kk + r], clipcl_index_path(ix, (size_t)row)};
    }
    n_hits[i] = got;
  }
  free(q), free(sc), free(id);
  return st;
}

/* clip-retrieval's deduplication (get_non_uniques): results whose embeddings
 * score at least the threshold are connected, transitively; each group keeps
 * its best-ranked member. O(n^2 dim) on the host. */
int cc_search_dedup(const clipcl_index *ix, int text, clipcl_search_hit *h, int n, float threshold) {
  if (n < 2) return n;
  int dim = clipcl_index_dim(ix);
  float *e = malloc((size_t)n * dim * sizeof *e), *sc = malloc((size_t)n * sizeof *sc);
  float *scratch = malloc(cc_eval_scores_scratch(dim) * sizeof *scratch);
  int *parent = malloc((size_t)n * sizeof *parent);
  if (!e || !sc || !scratch || !parent) {
    free(e), free(sc), free(scratch), free(parent);
    return n; /* out of memory: no dedup rather than no answer */
  }
  int ok = 1;
  for (int i = 0; i < n && ok; i++) ok = clipcl_index_row_embedding(ix, (size_t)h[i].index, text, e + (size_t)i * dim) == 0;
  for (int i = 0; i < n; i++) parent[i] = i;
  for (int i = 0; i < n && ok; i++) {
    cc_eval_scores(e + (size_t)i * dim, 1, e, (size_t)i, dim, sc, (size_t)n, scratch);
    for (int j = 0; j < i; j++) {
      if (sc[j] < threshold) continue;
      int a = i, b = j;
      while (parent[a] != a) a = parent[a];
      while (parent[b] != b) b = parent[b];
      if (a != b) parent[a > b ? a : b] = a < b ? a : b; /* the root is the best rank */
    }
  }
  int w = 0;
  for (int i = 0; i < n; i++) {
    int r = i;
    while (parent[r] != r) r = parent[r];
    if (!ok || r == i) h[w++] = h[i];
  }
  free(e), free(sc), free(scratch), free(parent);
  return w;
}


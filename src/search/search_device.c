/* search_device.c: clipcl_index_search_many, several search queries against
 * an index at once, scored on the host (clipcl_topk: canonical scores) or on
 * the model's device: the index rows go up in blocks, one GEMM per block
 * scores every query (cc_gemm: the project's CPU kernels or CLBlast), the
 * block's scores come back and a running top-k per query is kept on the
 * host. Not here: the index itself (index.c) or encoding the queries.
 *
 * Which is faster (bench/bench_search, 512 dims, k 10, PoCL on the 2-core
 * dev machine, busy with other work): 20,000 rows: host 8.8 / 10 / 46 ms for
 * 1 / 8 / 64 queries, device 20 / 17 / 27 ms; 200,000 rows: host 75-90 /
 * 114 / 458 ms, device 70-79 / 75 / 157 ms. The host pass keeps canonical
 * scores (one float sum per pair in order, keys repacked per block), which
 * costs it the most with few queries; the device GEMM reassociates freely.
 * Below about 2^20 query-row pairs the fixed cost of buffers and launches
 * wins over that, above it the device does. So "auto" picks the device from
 * 2^20 pairs on, whatever the device type; on a GPU the upload crosses PCIe
 * but the GEMM is far faster, so the same rule should hold (not measured).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cl/runtime.h"
#include "clipcl.h"
#include "eval/eval.h"
#include "model/model.h"
#include "ops/ops.h"
#include "util/error.h"

/* index rows per upload: 32 MiB of 512-dim rows, few enough launches */
#define BLOCK_BYTES ((size_t)32 << 20)
#define AUTO_MIN_PAIRS ((size_t)1 << 20)


static clipcl_status device_topk(cc_rt *rt, const float *Q, int nq, const float *K, size_t nk, int dim, int k,
                                 int32_t *idx, float *val) {
  size_t max_alloc = cc_info(rt)->max_alloc;
  size_t rows = BLOCK_BYTES / ((size_t)dim * sizeof(float));
  if (max_alloc && rows * dim * sizeof(float) > max_alloc / 2) rows = max_alloc / 2 / ((size_t)dim * sizeof(float));
  if (rows < 1) rows = 1;
  if (rows > nk) rows = nk;
  if (rows > INT32_MAX / (size_t)(nq > dim ? nq : dim)) rows = INT32_MAX / (size_t)(nq > dim ? nq : dim);
  cl_mem dq = NULL, dk = NULL, ds = NULL;
  float *sc = malloc((size_t)nq * rows * sizeof *sc);
  int *cnt = calloc((size_t)nq, sizeof *cnt);
  clipcl_status st = sc && cnt ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "device search: out of memory");
  if (!st) st = cc_buffer(rt, (size_t)nq * dim * sizeof(float), &dq, "search queries");
  if (!st) st = cc_buffer(rt, rows * dim * sizeof(float), &dk, "search index block");
  if (!st) st = cc_buffer(rt, (size_t)nq * rows * sizeof(float), &ds, "search scores");
  if (!st) st = cc_write(rt, (cc_view){dq, 0}, Q, (size_t)nq * dim);
  for (size_t r0 = 0; r0 < nk && !st; r0 += rows) {
    size_t rn = nk - r0 < rows ? nk - r0 : rows;
    if ((st = cc_write(rt, (cc_view){dk, 0}, K + r0 * dim, rn * dim))) break;
    /* scores (nq, rn) = Q (nq, dim) @ block (rn, dim)^T */
    cc_gemm_desc g = {.transA = 0, .transB = 1, .M = nq, .N = (int)rn, .K = dim, .alpha = 1.0f, .beta = 0.0f,
                      .A = {dq, 0}, .B = {dk, 0}, .C = {ds, 0}, .lda = dim, .ldb = dim, .ldc = (int)rn};
    if ((st = cc_gemm(rt, &g))) break;
    if ((st = cc_read(rt, (cc_view){ds, 0}, sc, (size_t)nq * rn))) break;
    for (int q = 0; q < nq; q++)
      cc_eval_topk_update(sc + (size_t)q * rn, rn, r0, k, idx + (size_t)q * k, val + (size_t)q * k, &cnt[q]);
  }
  if (!st)
    for (int q = 0; q < nq; q++) {
      int bad = 0;
      for (int r = 0; r < k; r++) bad |= isnan(val[(size_t)q * k + r]);
      if (bad) st = cc_fail(CLIPCL_ERR_NUMERIC, "device search: query %d got NaN scores", q);
    }
  if (dq) cc_release(dq);
  if (dk) cc_release(dk);
  if (ds) cc_release(ds);
  free(sc);
  free(cnt);
  return st;
}

clipcl_status clipcl_index_search_many(const clipcl_index *ix, clipcl_model *m, const char *model_id,
                                       const float *queries, int nq, int k, int where, int threads,
                                       clipcl_search_hit *hits, int *n_hits, int *used) {
  if (n_hits) *n_hits = 0;
  if (used) *used = 0;
  CC_TRY(clipcl_index_check_model(ix, model_id));
  if (!queries || !hits || !n_hits || k < 1 || nq < 1 || where < -1 || where > 1)
    return cc_fail(CLIPCL_ERR_ARG, "index search: bad arguments (k %d, %d queries)", k, nq);
  size_t count = clipcl_index_count(ix);
  if (count == 0) return CLIPCL_OK;
  int dim = clipcl_index_dim(ix);
  if (count > INT32_MAX) return cc_fail(CLIPCL_ERR_ARG, "index search: %zu rows are too many", count);
  if ((size_t)nq > SIZE_MAX / sizeof(float) / (size_t)dim / (size_t)k)
    return cc_fail(CLIPCL_ERR_ARG, "index search: sizes overflow");
  int kk = (size_t)k < count ? k : (int)count;
  if (!clipcl_index_embeddings(ix))
    return cc_fail(CLIPCL_ERR_ARG, "index search: exact search needs the embeddings in memory (clipcl_index_load)");
  if (where == -1) {
    const char *env = getenv("CLIPCL_SEARCH");
    if (env && !strcmp(env, "host")) {
      where = 0;
    } else if (env && !strcmp(env, "device")) {
      where = 1;
    } else {
      where = m && count * (size_t)nq >= AUTO_MIN_PAIRS;
    }
  }
  if (where == 1 && !m) return cc_fail(CLIPCL_ERR_ARG, "index search: device scoring needs the model's device");
  float *q = malloc((size_t)nq * dim * sizeof *q), *sc = malloc((size_t)nq * kk * sizeof *sc);
  int32_t *idx = malloc((size_t)nq * kk * sizeof *idx);
  clipcl_status st = q && sc && idx ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index search: out of memory");
  if (!st) {
    memcpy(q, queries, (size_t)nq * dim * sizeof *q);
    if ((st = clipcl_l2_normalize(q, (size_t)nq, dim))) cc_fail_ctx(st, "index search: query");
  }
  if (!st) {
    if (where == 1)
      st = device_topk(m->rt, q, nq, clipcl_index_embeddings(ix), count, dim, kk, idx, sc);
    else
      st = clipcl_topk(q, (size_t)nq, clipcl_index_embeddings(ix), count, dim, kk, threads, idx, sc);
  }
  if (!st) {
    for (int i = 0; i < nq; i++)
      for (int r = 0; r < kk; r++) {
        int32_t row = idx[(size_t)i * kk + r];
        hits[(size_t)i * k + r] = (clipcl_search_hit){row, sc[(size_t)i * kk + r], clipcl_index_path(ix, (size_t)row)};
      }
    *n_hits = kk;
    if (used) *used = where;
  }
  free(q), free(sc), free(idx);
  return st;
}

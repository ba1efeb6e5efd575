/* retrieval.c: image-text retrieval metrics as CLIP_benchmark defines them
 * (recall@1/5/10 in both directions, several captions per image), plus the
 * mean and median rank, and their JSON. Not here: encoding, or reading the
 * pairs file (the CLI's job).
 *
 * A query's rank is 1 + the number of items ranked before its first correct
 * item. For a caption that item is its image; for an image it is its best
 * caption (highest score, lower index on ties), and every item ranked before
 * that one is necessarily wrong. So each query needs one target score and one
 * pass counting the items that beat it; the score matrix is never held
 * whole. A hit at k is rank <= k, which equals CLIP_benchmark's "a correct
 * item among torch.topk's k" except that ties are settled by index here.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "util/error.h"

#define QBLK 32
#define KCHUNK 2048

static const int recall_k[3] = {1, 5, 10};

typedef struct {
  const float *Q, *K;
  size_t nq, nk;
  int dim;
  const int32_t *target; /* [nq] index of the first correct key */
  int64_t *rank;         /* [nq] */
  float **scratch;
} rank_job;

static void rank_task(void *p, size_t task, int worker) {
  rank_job *j = p;
  size_t q0 = task * QBLK, qn = j->nq - q0 < QBLK ? j->nq - q0 : QBLK;
  float *sc = j->scratch[worker], *tile = sc + (size_t)QBLK * KCHUNK, ts[QBLK];
  int64_t before[QBLK];
  for (size_t q = 0; q < qn; q++) {
    ts[q] = cc_eval_dot(j->Q + (q0 + q) * j->dim, j->K + (size_t)j->target[q0 + q] * j->dim, j->dim);
    before[q] = 0;
  }
  for (size_t c0 = 0; c0 < j->nk; c0 += KCHUNK) {
    size_t cn = j->nk - c0 < KCHUNK ? j->nk - c0 : KCHUNK;
    cc_eval_scores(j->Q + q0 * j->dim, qn, j->K + c0 * j->dim, cn, j->dim, sc, KCHUNK, tile);
    for (size_t q = 0; q < qn; q++) {
      const float *row = sc + q * KCHUNK;
      size_t t = (size_t)j->target[q0 + q];
      int64_t cnt = 0;
      for (size_t k = 0; k < cn; k++) cnt += cc_eval_before(row[k], c0 + k, ts[q], t);
      before[q] += cnt;
    }
  }
  for (size_t q = 0; q < qn; q++) j->rank[q0 + q] = before[q] + 1;
}

static clipcl_status run_ranks(const float *Q, size_t nq, const float *K, size_t nk, int dim,
                               const int32_t *target, int threads, int64_t *rank) {
  int nt = cc_eval_threads(threads);
  rank_job j = {Q, K, nq, nk, dim, target, rank, calloc((size_t)nt, sizeof(float *))};
  clipcl_status st = j.scratch ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "retrieval: out of memory");
  for (int w = 0; w < nt && !st; w++)
    if (!(j.scratch[w] = malloc(((size_t)QBLK * KCHUNK + cc_eval_scores_scratch(dim)) * sizeof(float))))
      st = cc_fail(CLIPCL_ERR_NOMEM, "retrieval: out of memory");
  if (!st) cc_eval_parallel(nt, (nq + QBLK - 1) / QBLK, rank_task, &j);
  if (j.scratch)
    for (int w = 0; w < nt; w++) free(j.scratch[w]);
  free(j.scratch);
  return st;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* recalls at 1/5/10, mean and median of n ranks */
static clipcl_status summarise(const int64_t *rank, size_t n, double recall[3], double *mean, double *median) {
  int64_t *s = malloc(n * sizeof *s);
  if (!s) return cc_fail(CLIPCL_ERR_NOMEM, "retrieval: out of memory");
  memcpy(s, rank, n * sizeof *s);
  qsort(s, n, sizeof *s, cmp_i64);
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += (double)s[i];
  for (int r = 0; r < 3; r++) {
    size_t hits = 0;
    while (hits < n && s[hits] <= recall_k[r]) hits++;
    recall[r] = (double)hits / (double)n;
  }
  *mean = sum / (double)n;
  *median = n % 2 ? (double)s[n / 2] : ((double)s[n / 2 - 1] + (double)s[n / 2]) / 2;
  free(s);
  return CLIPCL_OK;
}

clipcl_status clipcl_retrieval_eval(const float *image_emb, size_t n_images, const float *text_emb,
                                    size_t n_texts, int dim, const int32_t *text_image, int threads,
                                    clipcl_retrieval_metrics *out, int64_t *text_rank, int64_t *image_rank) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "retrieval: no output");
  memset(out, 0, sizeof *out);
  if (n_images < 1 || n_texts < 1 || dim < 1 || n_images > INT32_MAX || n_texts > INT32_MAX)
    return cc_fail(CLIPCL_ERR_ARG, "retrieval: bad sizes (%zu images, %zu captions, dim %d)", n_images, n_texts,
                   dim);
  if (!image_emb || !text_emb || !text_image) return cc_fail(CLIPCL_ERR_ARG, "retrieval: NULL array");
  if (n_images > SIZE_MAX / (size_t)dim || n_texts > SIZE_MAX / (size_t)dim)
    return cc_fail(CLIPCL_ERR_ARG, "retrieval: sizes overflow");
  CC_TRY(cc_eval_check_finite(image_emb, n_images * dim, dim, "retrieval image embeddings"));
  CC_TRY(cc_eval_check_finite(text_emb, n_texts * dim, dim, "retrieval caption embeddings"));
  for (size_t t = 0; t < n_texts; t++)
    if (text_image[t] < 0 || (size_t)text_image[t] >= n_images)
      return cc_fail(CLIPCL_ERR_ARG, "retrieval: caption %zu belongs to image %d, outside 0..%zu", t,
                     text_image[t], n_images - 1);

  int64_t *tr = malloc(n_texts * sizeof *tr), *ir = malloc(n_images * sizeof *ir);
  int32_t *best = malloc(n_images * sizeof *best);
  float *best_s = malloc(n_images * sizeof *best_s);
  clipcl_status st = CLIPCL_OK;
  if (!tr || !ir || !best || !best_s) st = cc_fail(CLIPCL_ERR_NOMEM, "retrieval: out of memory");
  if (!st) {
    for (size_t i = 0; i < n_images; i++) best[i] = -1;
    /* captions in increasing order, so "strictly greater" keeps the lower
     * index among equal scores */
    for (size_t t = 0; t < n_texts; t++) {
      size_t i = (size_t)text_image[t];
      float s = cc_eval_dot(image_emb + i * dim, text_emb + t * dim, dim);
      if (best[i] < 0 || s > best_s[i]) best[i] = (int32_t)t, best_s[i] = s;
    }
    for (size_t i = 0; i < n_images && !st; i++)
      if (best[i] < 0) st = cc_fail(CLIPCL_ERR_ARG, "retrieval: image %zu has no caption", i);
  }
  if (!st) st = run_ranks(text_emb, n_texts, image_emb, n_images, dim, text_image, threads, tr);
  if (!st) st = run_ranks(image_emb, n_images, text_emb, n_texts, dim, best, threads, ir);
  clipcl_retrieval_metrics m = {.n_images = (int64_t)n_images, .n_texts = (int64_t)n_texts};
  if (!st) st = summarise(tr, n_texts, m.image_recall, &m.image_mean_rank, &m.image_median_rank);
  if (!st) st = summarise(ir, n_images, m.text_recall, &m.text_mean_rank, &m.text_median_rank);
  if (!st) {
    *out = m;
    if (text_rank) memcpy(text_rank, tr, n_texts * sizeof *tr);
    if (image_rank) memcpy(image_rank, ir, n_images * sizeof *ir);
  }
  free(tr);
  free(ir);
  free(best);
  free(best_s);
  return st;
}

clipcl_status clipcl_retrieval_json(const clipcl_retrieval_metrics *m, char **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "retrieval JSON: no output");
  *out = NULL;
  if (!m) return cc_fail(CLIPCL_ERR_ARG, "retrieval JSON: no metrics");
  json_t *root = json_object();
  int bad = !root;
  char key[64];
  for (int r = 0; r < 3 && !bad; r++) {
    snprintf(key, sizeof key, "image_retrieval_recall@%d", recall_k[r]);
    bad |= json_object_set_new(root, key, json_real(m->image_recall[r]));
    snprintf(key, sizeof key, "text_retrieval_recall@%d", recall_k[r]);
    bad |= json_object_set_new(root, key, json_real(m->text_recall[r]));
  }
  if (!bad) {
    bad |= json_object_set_new(root, "image_retrieval_mean_rank", json_real(m->image_mean_rank));
    bad |= json_object_set_new(root, "text_retrieval_mean_rank", json_real(m->text_mean_rank));
    bad |= json_object_set_new(root, "image_retrieval_median_rank", json_real(m->image_median_rank));
    bad |= json_object_set_new(root, "text_retrieval_median_rank", json_real(m->text_median_rank));
    bad |= json_object_set_new(root, "n_images", json_integer(m->n_images));
    bad |= json_object_set_new(root, "n_texts", json_integer(m->n_texts));
    bad |= json_object_set_new(root, "tie_rule",
                               json_string("equal scores rank the lower index first; rank = 1-based position "
                                           "of the first correct item"));
  }
  if (!bad) *out = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
  json_decref(root);
  return *out ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "retrieval JSON: out of memory");
}

clipcl_status clipcl_retrieval_write_json(const char *path, const clipcl_retrieval_metrics *m) {
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "retrieval JSON: no path");
  char *s;
  CC_TRY(clipcl_retrieval_json(m, &s));
  clipcl_status st = cc_save_line(path, s);
  free(s);
  return st;
}

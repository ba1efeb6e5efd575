/* zeroshot.c: row normalisation, the threaded top-k search every evaluation
 * uses, the zero-shot classifier (template ensemble) and the zero-shot
 * metrics. Not here: the JSON/CSV/PNG reports (zeroshot_report.c) or
 * encoding the prompts and images (the model's job).
 *
 * Top-k runs on the host: queries are cut into blocks of QBLK rows and, when
 * there are too few blocks to keep every thread busy (one query searching a
 * large index), the keys into ranges too. Each task scores its block against
 * its keys chunk by chunk and keeps running top-k lists; per-range lists are
 * merged in key order afterwards. Scores are canonical and the ranking a
 * total order (eval.h), so any partition gives the same answer.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "util/error.h"

#define QBLK 32
#define KCHUNK 2048
#define KRANGE_MIN 8192

clipcl_status clipcl_l2_normalize(float *x, size_t n, int dim) {
  if (dim < 1 || (n && !x)) return cc_fail(CLIPCL_ERR_ARG, "l2 normalise: bad arguments (dim %d)", dim);
  for (size_t i = 0; i < n; i++) {
    float *r = x + i * (size_t)dim;
    double ss = 0;
    for (int e = 0; e < dim; e++) ss += (double)r[e] * r[e];
    if (!(ss > 0) || !isfinite(ss))
      return cc_fail(isfinite(ss) ? CLIPCL_ERR_ARG : CLIPCL_ERR_NUMERIC,
                     "l2 normalise: row %zu has %s norm", i, isfinite(ss) ? "zero" : "a non-finite");
    double inv = 1.0 / sqrt(ss);
    for (int e = 0; e < dim; e++) r[e] = (float)(r[e] * inv);
  }
  return CLIPCL_OK;
}


typedef struct {
  const float *Q, *K;
  size_t nq, nk;
  int dim, k;
  size_t nqb, nkr, range; /* query blocks, key ranges, keys per range */
  int32_t *idx;           /* [nkr][nq][k] */
  float *val;
  int *cnt;               /* [nkr][nq] */
  float **scratch;        /* per worker: QBLK * KCHUNK scores + score tiles */
} topk_job;

static void topk_task(void *p, size_t task, int worker) {
  topk_job *j = p;
  size_t qb = task / j->nkr, kr = task % j->nkr;
  size_t q0 = qb * QBLK, qn = j->nq - q0 < QBLK ? j->nq - q0 : QBLK;
  size_t k0 = kr * j->range, k1 = k0 + j->range < j->nk ? k0 + j->range : j->nk;
  float *sc = j->scratch[worker], *tile = sc + (size_t)QBLK * KCHUNK;
  size_t slot = kr * j->nq + q0;
  for (size_t q = 0; q < qn; q++) j->cnt[slot + q] = 0;
  for (size_t c0 = k0; c0 < k1; c0 += KCHUNK) {
    size_t cn = k1 - c0 < KCHUNK ? k1 - c0 : KCHUNK;
    cc_eval_scores(j->Q + q0 * j->dim, qn, j->K + c0 * j->dim, cn, j->dim, sc, KCHUNK, tile);
    for (size_t q = 0; q < qn; q++)
      cc_eval_topk_update(sc + q * KCHUNK, cn, c0, j->k, j->idx + (slot + q) * j->k, j->val + (slot + q) * j->k,
                  &j->cnt[slot + q]);
  }
}

clipcl_status clipcl_topk(const float *queries, size_t nq, const float *keys, size_t nk, int dim, int k,
                          int threads, int32_t *idx, float *score) {
  if (dim < 1 || nk < 1 || k < 1 || (size_t)k > nk || nk > INT32_MAX)
    return cc_fail(CLIPCL_ERR_ARG, "top-k: bad sizes (keys %zu, k %d, dim %d; need 1 <= k <= keys < 2^31)", nk,
                   k, dim);
  if (nq == 0) return CLIPCL_OK;
  if (!queries || !keys || !idx) return cc_fail(CLIPCL_ERR_ARG, "top-k: NULL array");
  if (nq > SIZE_MAX / (size_t)dim || nk > SIZE_MAX / (size_t)dim || nq > SIZE_MAX / 8 / (size_t)k)
    return cc_fail(CLIPCL_ERR_ARG, "top-k: sizes overflow");
  CC_TRY(cc_eval_check_finite(queries, nq * dim, dim, "top-k queries"));
  CC_TRY(cc_eval_check_finite(keys, nk * dim, dim, "top-k keys"));

  int nt = cc_eval_threads(threads);
  topk_job j = {.Q = queries, .K = keys, .nq = nq, .nk = nk, .dim = dim, .k = k};
  j.nqb = (nq + QBLK - 1) / QBLK;
  j.nkr = 1;
  if (j.nqb < 4 * (size_t)nt && nk >= 2 * KRANGE_MIN) {
    size_t want = (4 * (size_t)nt + j.nqb - 1) / j.nqb;
    j.nkr = nk / KRANGE_MIN < want ? nk / KRANGE_MIN : want;
  }
  j.range = (nk + j.nkr - 1) / j.nkr;
  size_t lists = j.nkr * nq;
  int own = j.nkr > 1 || !score;
  clipcl_status st = CLIPCL_OK;
  j.cnt = malloc(lists * sizeof *j.cnt);
  j.idx = j.nkr > 1 ? malloc(lists * k * sizeof *j.idx) : idx;
  j.val = own ? malloc(lists * k * sizeof *j.val) : score;
  j.scratch = calloc((size_t)nt, sizeof *j.scratch);
  if (!j.cnt || !j.idx || !j.val || !j.scratch) st = cc_fail(CLIPCL_ERR_NOMEM, "top-k: out of memory");
  for (int w = 0; w < nt && !st; w++)
    if (!(j.scratch[w] = malloc(((size_t)QBLK * KCHUNK + cc_eval_scores_scratch(dim)) * sizeof(float))))
      st = cc_fail(CLIPCL_ERR_NOMEM, "top-k: out of memory");
  if (!st) {
    cc_eval_parallel(nt, j.nqb * j.nkr, topk_task, &j);
    if (j.nkr > 1) {
      /* ranges hold increasing key indices, so merging them in order keeps
       * topk_update's precondition */
      int32_t *ti = malloc((size_t)k * sizeof *ti);
      float *tv = malloc((size_t)k * sizeof *tv);
      if (!ti || !tv) st = cc_fail(CLIPCL_ERR_NOMEM, "top-k: out of memory");
      for (size_t q = 0; q < nq && !st; q++) {
        int c = 0;
        for (size_t r = 0; r < j.nkr; r++) {
          size_t sl = r * nq + q;
          for (int m = 0; m < j.cnt[sl]; m++) {
            float v = j.val[sl * k + m];
            int32_t id = j.idx[sl * k + m];
            if (c == k && !(v > tv[k - 1])) continue;
            int pos = c < k ? c++ : k - 1;
            while (pos > 0 && v > tv[pos - 1]) {
              tv[pos] = tv[pos - 1];
              ti[pos] = ti[pos - 1];
              pos--;
            }
            tv[pos] = v;
            ti[pos] = id;
          }
        }
        memcpy(idx + q * k, ti, (size_t)k * sizeof *ti);
        if (score) memcpy(score + q * k, tv, (size_t)k * sizeof *tv);
      }
      free(ti);
      free(tv);
    } else if (own && score) {
      memcpy(score, j.val, nq * k * sizeof *score);
    }
  }
  if (j.scratch)
    for (int w = 0; w < nt; w++) free(j.scratch[w]);
  free(j.scratch);
  free(j.cnt);
  if (j.nkr > 1) free(j.idx);
  if (own) free(j.val);
  return st;
}

clipcl_status clipcl_zeroshot_classifier(const float *text_emb, int classes, int templates, int dim,
                                         float *class_emb) {
  if (classes < 1 || templates < 1 || dim < 1 || !text_emb || !class_emb)
    return cc_fail(CLIPCL_ERR_ARG, "zero-shot classifier: bad arguments (%d classes, %d templates, dim %d)",
                   classes, templates, dim);
  double *acc = malloc((size_t)dim * sizeof *acc);
  if (!acc) return cc_fail(CLIPCL_ERR_NOMEM, "zero-shot classifier: out of memory");
  clipcl_status st = CLIPCL_OK;
  for (int c = 0; c < classes && !st; c++) {
    memset(acc, 0, (size_t)dim * sizeof *acc);
    for (int t = 0; t < templates && !st; t++) {
      const float *v = text_emb + ((size_t)c * templates + t) * dim;
      double ss = 0;
      for (int e = 0; e < dim; e++) ss += (double)v[e] * v[e];
      if (!isfinite(ss))
        st = cc_fail(CLIPCL_ERR_NUMERIC, "zero-shot classifier: class %d template %d: non-finite embedding", c, t);
      else if (ss == 0)
        st = cc_fail(CLIPCL_ERR_ARG, "zero-shot classifier: class %d template %d: zero embedding", c, t);
      double inv = 1.0 / sqrt(ss);
      for (int e = 0; e < dim && !st; e++) acc[e] += v[e] * inv;
    }
    if (st) break;
    double ss = 0;
    for (int e = 0; e < dim; e++) {
      acc[e] /= templates;
      ss += acc[e] * acc[e];
    }
    if (!(ss > 0)) {
      st = cc_fail(CLIPCL_ERR_NUMERIC, "zero-shot classifier: class %d: the template embeddings average to zero", c);
      break;
    }
    double inv = 1.0 / sqrt(ss);
    for (int e = 0; e < dim; e++) class_emb[(size_t)c * dim + e] = (float)(acc[e] * inv);
  }
  free(acc);
  return st;
}

void clipcl_zeroshot_metrics_free(clipcl_zeroshot_metrics *m) {
  if (!m) return;
  free(m->support);
  free(m->per_class);
  free(m->confusion);
  memset(m, 0, sizeof *m);
}

clipcl_status clipcl_zeroshot_metrics_compute(const int32_t *topk, int k, const int32_t *labels, size_t n,
                                              int classes, clipcl_zeroshot_metrics *out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "zero-shot metrics: no output");
  memset(out, 0, sizeof *out);
  if (classes < 1) return cc_fail(CLIPCL_ERR_ARG, "zero-shot metrics: %d classes", classes);
  int k5 = classes < 5 ? classes : 5;
  if (k < k5) return cc_fail(CLIPCL_ERR_ARG, "zero-shot metrics: need the top %d predictions, got %d", k5, k);
  if (n == 0) return cc_fail(CLIPCL_ERR_ARG, "zero-shot metrics: no images");
  if (!topk || !labels) return cc_fail(CLIPCL_ERR_ARG, "zero-shot metrics: NULL array");
  for (size_t i = 0; i < n; i++) {
    if (labels[i] < 0 || labels[i] >= classes)
      return cc_fail(CLIPCL_ERR_ARG, "zero-shot metrics: image %zu has label %d outside 0..%d", i, labels[i],
                     classes - 1);
    for (int r = 0; r < k5; r++)
      if (topk[i * k + r] < 0 || topk[i * k + r] >= classes)
        return cc_fail(CLIPCL_ERR_ARG, "zero-shot metrics: image %zu has prediction %d outside 0..%d", i,
                       topk[i * k + r], classes - 1);
  }
  clipcl_zeroshot_metrics m = {.n = (int64_t)n, .classes = classes, .k5 = k5};
  m.support = calloc((size_t)classes, sizeof *m.support);
  m.per_class = calloc((size_t)classes, sizeof *m.per_class);
  int64_t *hits = calloc((size_t)classes, sizeof *hits);
  if (classes <= CLIPCL_CONFUSION_MAX) m.confusion = calloc((size_t)classes * classes, sizeof *m.confusion);
  if (!m.support || !m.per_class || !hits || (classes <= CLIPCL_CONFUSION_MAX && !m.confusion)) {
    free(hits);
    clipcl_zeroshot_metrics_free(&m);
    return cc_fail(CLIPCL_ERR_NOMEM, "zero-shot metrics: out of memory");
  }
  int64_t top1 = 0, top5 = 0;
  for (size_t i = 0; i < n; i++) {
    int y = labels[i];
    const int32_t *p = topk + i * k;
    m.support[y]++;
    if (m.confusion) m.confusion[(size_t)y * classes + p[0]]++;
    if (p[0] == y) top1++, hits[y]++;
    for (int r = 0; r < k5; r++)
      if (p[r] == y) {
        top5++;
        break;
      }
  }
  m.top1 = (double)top1 / (double)n;
  m.top5 = (double)top5 / (double)n;
  double sum = 0;
  int present = 0;
  for (int c = 0; c < classes; c++) {
    if (m.support[c] == 0) {
      m.per_class[c] = NAN;
      continue;
    }
    m.per_class[c] = (double)hits[c] / (double)m.support[c];
    sum += m.per_class[c];
    present++;
  }
  m.mean_per_class_recall = sum / present;
  free(hits);
  *out = m;
  return CLIPCL_OK;
}

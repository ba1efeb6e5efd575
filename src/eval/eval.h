/* eval.h: helpers shared by the evaluation code (src/eval/): the canonical
 * similarity score, blocked score matrices, top-k under the project's tie
 * rule, a small thread pool loop, a seeded RNG, and text output helpers
 * (growable buffer, CSV fields, JSON numbers).
 *
 * The canonical score of a query q and a key k is the float sum
 *   s = (...((0 + q[0]*k[0]) + q[1]*k[1]) + ...) + q[dim-1]*k[dim-1]
 * in that order, without fused multiply-add. Every path (blocked, one query,
 * any thread count) computes exactly this, so one pair scores the same bits
 * wherever it is scored and s(q, k) == s(k, q).
 *
 * Ranking: key j ranks before key i when s_j > s_i, or s_j == s_i and j < i
 * (equal scores: lower index first). This is a total order on finite scores;
 * inputs are checked to be finite first.
 *
 * Not here: the public API (include/clipcl.h) or file formats.
 */
#ifndef CC_EVAL_H
#define CC_EVAL_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"
#include "io/atomic.h" /* cc_buf_save */
#include "util/buf.h"

/* ---- scores ------------------------------------------------------------- */
float cc_eval_dot(const float *a, const float *b, int dim);
/* out[i*ldo + j] = score(Q[i], K[j]) for i < nq, j < nk; Q and K rows are
 * dim floats apart. Single-threaded, blocked for the cache: call it on a few
 * dozen queries at a time. scratch holds cc_eval_scores_scratch(dim) floats. */
void cc_eval_scores(const float *Q, size_t nq, const float *K, size_t nk, int dim, float *out, size_t ldo,
                    float *scratch);
size_t cc_eval_scores_scratch(int dim);

static inline int cc_eval_before(float sj, size_t j, float si, size_t i) {
  return sj > si || (sj == si && j < i);
}

/* Top-k of one score row under the tie rule: idx/val hold the k best in rank
 * order. k <= n. */
void cc_eval_topk_row(const float *s, size_t n, int k, int32_t *idx, float *val);

/* Checks n floats are finite; the message names `what` and the first bad
 * element (row = i / dim). */
clipcl_status cc_eval_check_finite(const float *x, size_t n, int dim, const char *what);

/* ---- threads ------------------------------------------------------------ */
#define CC_EVAL_MAX_THREADS 64
/* threads <= 0: one per online CPU; capped at CC_EVAL_MAX_THREADS. */
int cc_eval_threads(int requested);
/* Runs fn(ctx, task, worker) for every task in [0, ntasks) on up to
 * `threads` threads (the caller's included); worker is in [0, threads) and
 * lets a task use per-thread scratch. Tasks are handed out by an atomic
 * counter; if helpers cannot start, the caller does all the work. Per-thread
 * scratch needs cc_eval_threads(threads) slots. */
typedef void (*cc_eval_task_fn)(void *ctx, size_t task, int worker);
void cc_eval_parallel(int threads, size_t ntasks, cc_eval_task_fn fn, void *ctx);

/* ---- random ------------------------------------------------------------- */
uint64_t cc_eval_rand(uint64_t *state);           /* splitmix64 */
uint64_t cc_eval_rand_below(uint64_t *state, uint64_t n); /* uniform in [0, n), n > 0 */

/* ---- ranking ------------------------------------------------------------ */
/* Folds n scores s (items base .. base+n-1) into a running top-k kept in
 * val/idx (best first, *cnt entries so far): a strictly higher score moves
 * ahead, so equal scores keep the lower index first. */
void cc_eval_topk_update(const float *s, size_t n, size_t base, int k, int32_t *idx, float *val, int *cnt);

/* ---- text output -------------------------------------------------------- */
/* An RFC 4180 CSV field: quoted (with "" for ") when it holds a comma, a
 * quote, CR, LF, or leading/trailing white space, else as is. */
void cc_buf_csv(cc_buf *b, const char *field);
/* Shortest decimal form that reads back to the same double ("%.17g" at
 * worst); NaN and infinities are not valid JSON and become "null". */
void cc_buf_num(cc_buf *b, double v);
/* Writes the buffer atomically to path (io/atomic.h); fails on an earlier
 * allocation failure. Does not free it. */

/* Strict UTF-8 check (no overlongs, surrogates or code points > U+10FFFF);
 * returns the byte offset of the first bad sequence or len when valid. */
size_t cc_utf8_check(const unsigned char *s, size_t len);
#endif

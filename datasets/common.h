/* common.h: helpers shared by the data set programs in datasets/ (the
 * synthetic generator and the Fashion-MNIST converter): a seeded generator
 * whose streams do not depend on thread count, a growable text buffer with
 * CSV quoting, PNG encoding into memory, plain and atomic file writes,
 * directory creation, a parallel-for over worker threads, and a
 * deterministic WebDataset tar writer.
 *
 * Not here: anything about a particular data set, and nothing the library
 * needs (these programs only link libclipcl). Functions return a
 * clipcl_status with the message in clipcl_last_error(), like the library;
 * only the programs' main() prints.
 */
#ifndef DS_COMMON_H
#define DS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"
#include "io/atomic.h" /* cc_buf_save */
#include "util/buf.h"

/* ---- seeded random numbers ------------------------------------------------
 * splitmix64. Every image gets its own stream, ds_stream(seed, split, index),
 * so its content depends on its index only, never on which thread drew it. */
uint64_t ds_next(uint64_t *state);
uint64_t ds_stream(uint64_t seed, uint64_t split, uint64_t index);
double ds_uniform(uint64_t *state);                 /* [0, 1), 53 bits */
double ds_range(uint64_t *state, double lo, double hi); /* [lo, hi) */
uint32_t ds_below(uint64_t *state, uint32_t n);     /* [0, n), n >= 1, unbiased */

/* sin and cos from arithmetic alone (no libm), so the generated pixels are
 * the same on every IEEE machine whatever its libm. Accurate to ~1e-15. */
void ds_sincos(double x, double *s, double *c);

/* ---- text ---------------------------------------------------------------- */
/* A CSV field as Python's csv module writes it (RFC 4180): quoted only when
 * it holds the separator, a quote, CR or LF; quotes doubled. */
void ds_buf_csv(cc_buf *b, const char *field, char sep);

/* ---- files --------------------------------------------------------------- */
/* 8-bit PNG of w x h pixels with `channels` 1 (grey) or 3 (RGB), rows packed,
 * encoded into out (cleared first). name is used in messages. */
clipcl_status ds_png_encode(const uint8_t *pix, int w, int h, int channels, cc_buf *out, const char *name);
/* Writes a regenerable file (an image of a data set): temp name, then rename,
 * so a reader never sees half a file; no fsync, which would cost more than
 * making the image. The manifests that list these files are written last
 * with ds_write_atomic, so a run cut short has no manifest. */
clipcl_status ds_write_file(const char *path, const void *data, size_t n);
/* Temp file, flush, fsync, rename (src/io/atomic). */
/* mkdir -p; existing directories are fine. */
clipcl_status ds_mkdirs(const char *path);
/* Creates `dir` (and parents) or accepts an existing empty one; refuses a
 * non-empty one, so stale files from an earlier run cannot mix in. */
clipcl_status ds_prepare_out(const char *dir);
/* "a/b" + "c" -> malloc'd "a/b/c"; NULL when out of memory. */
char *ds_join(const char *a, const char *b);

/* ---- argument parsing ------------------------------------------------------ */
/* Whole-string decimal integer in [lo, hi]; 0 on success. */
int ds_parse_long(const char *s, long lo, long hi, long *out);
/* Whole-string decimal in [lo, hi]; 0 on success. */
int ds_parse_double(const char *s, double lo, double hi, double *out);
/* Number of online CPUs (at least 1). */
int ds_cpu_count(void);

/* ---- threads ----------------------------------------------------------------
 * Runs fn(ctx, i, thread) for every i in [0, n) on `threads` threads (the
 * caller's thread is one of them). Items are handed out in order from a
 * shared counter; fn must write only to item i's own outputs. Returns the
 * status of the lowest failing item (and its message), CLIPCL_OK if none. */
typedef clipcl_status (*ds_item_fn)(void *ctx, int i, int thread);
clipcl_status ds_parallel(int n, int threads, ds_item_fn fn, void *ctx);

/* ---- WebDataset tar shards -------------------------------------------------
 * POSIX ustar through libarchive with every header field fixed (mtime 0,
 * owner 0/0, mode 0644, no user names), so the same members give the same
 * bytes. Written to a temporary name and renamed when closed. */
typedef struct ds_tar ds_tar;
clipcl_status ds_tar_open(const char *path, ds_tar **out);
clipcl_status ds_tar_add(ds_tar *t, const char *name, const void *data, size_t n);
/* Finishes, fsyncs and renames; frees t on success and failure. */
clipcl_status ds_tar_close(ds_tar *t);
/* Drops the temporary; frees t (NULL is fine). */
void ds_tar_abort(ds_tar *t);

#endif

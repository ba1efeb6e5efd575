/* atomic.h: write a file the user keeps so that a crash or an error at any
 * point leaves either the old file or the complete new one, never a mix.
 *
 * The data goes to a fresh temporary file in the same directory (so rename
 * stays within one file system), then fflush, fsync, close, rename over the
 * target, fsync of the directory. Any failure before the rename removes the
 * temporary and leaves the old file byte-identical. Not here: formats (see
 * safetensors.h, npy.h), locking between concurrent writers (the last rename
 * wins), and preserving a symlink's target (rename replaces the link itself).
 * An existing target that is not a regular file (a device, a FIFO) is refused
 * rather than replaced.
 *
 * Usage:
 *   cc_atomic *a;
 *   CC_TRY(cc_atomic_begin(path, &a));
 *   s = cc_atomic_write(a, buf, n);            // any number of times
 *   if (s != CLIPCL_OK) { cc_atomic_abort(a); return s; }
 *   return cc_atomic_commit(a);                // frees a, success or not
 */
#ifndef CC_IO_ATOMIC_H
#define CC_IO_ATOMIC_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"
#include "util/buf.h"

typedef struct cc_atomic cc_atomic;

/* Creates the temporary next to `path`. The new file gets the old file's
 * permission bits when one exists, else 0666 less the umask. */
clipcl_status cc_atomic_begin(const char *path, cc_atomic **out);
/* Appends n bytes. Errors are sticky: after one, later writes and the commit
 * fail with the same status and the first message. */
clipcl_status cc_atomic_write(cc_atomic *a, const void *data, size_t n);
/* Flushes, syncs and renames over the target; always frees `a`. */
clipcl_status cc_atomic_commit(cc_atomic *a);
/* Removes the temporary and frees `a` (NULL is fine); the target is untouched. */
void cc_atomic_abort(cc_atomic *a);
/* Bytes written so far. */
uint64_t cc_atomic_size(const cc_atomic *a);
/* The target path given to cc_atomic_begin (for messages). */
const char *cc_atomic_path(const cc_atomic *a);

/* Removes the temporaries ("<dir>/.<name>.tmp-<pid>-<n>") that processes
 * which no longer exist left in dir when they were killed mid-write; those
 * of live processes stay. Returns how many were removed. */
int cc_atomic_remove_stale(const char *dir);

/* Whole buffer in one call. */
clipcl_status cc_atomic_write_file(const char *path, const void *data, size_t n);
/* A text buffer (util/buf.h) to path; CLIPCL_ERR_NOMEM if an append failed. */
clipcl_status cc_buf_save(const cc_buf *b, const char *path);
/* Text and a final newline to path (JSON files). */
clipcl_status cc_save_line(const char *path, const char *text);

/* Test hook, per thread, one-shot: the next atomic write on this thread fails
 * with CLIPCL_ERR_IO once it has written `after_bytes` bytes to the
 * temporary, or at the fsync in commit if it writes fewer. -1 disarms it.
 * Lets tests check that a write failing half way leaves the old file intact
 * without needing a full disk or a read-only directory (root ignores those). */
void cc_atomic_inject_failure(int64_t after_bytes);
/* Crash tests: the next atomic file on this thread kills the process with
 * SIGKILL after writing after_bytes bytes of its temporary file. */
void cc_atomic_inject_kill(int64_t after_bytes);
#endif

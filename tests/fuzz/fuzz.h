/* fuzz.h: what every libFuzzer target in tests/fuzz/ shares: a private
 * scratch directory for the parsers that take a path (the input is written
 * to a file there on every run, so the real open/read path is what gets
 * fuzzed), and the error contract every parser promises.
 *
 * The contract checked on every failing call: the status is one of the
 * documented negative codes and clipcl_last_error() holds one non-empty line.
 * A breach aborts, which libFuzzer reports as a crash with the input saved.
 * Nothing here needs an OpenCL device.
 */
#ifndef CC_FUZZ_H
#define CC_FUZZ_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

/* The scratch directory (created on first use, removed at exit). */
const char *fz_dir(void);
/* Writes n bytes to fz_dir()/name, replacing it; returns the full path in a
 * static buffer per slot (0..3), so up to four paths can be alive at once. */
const char *fz_write(int slot, const char *name, const uint8_t *data, size_t n);
/* Aborts unless st is OK or a documented error with a one-line message. */
void fz_check(clipcl_status st, const char *what);
/* A NUL-terminated copy of data (free() it). */
char *fz_strdup(const uint8_t *data, size_t n);
/* Splits data at the first occurrence of sep: the part before in (*a, *an),
 * the rest after sep in (*b, *bn) (empty when sep does not occur). */
void fz_split(const uint8_t *data, size_t n, const char *sep, const uint8_t **a, size_t *an, const uint8_t **b,
              size_t *bn);
#endif

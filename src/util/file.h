/* file.h: reading a whole (bounded) file into memory. */
#ifndef CC_FILE_H
#define CC_FILE_H
#include <stddef.h>

#include "clipcl.h"

/* *out (malloc'd, NUL-terminated, caller frees) holds the file's *len bytes.
 * A file longer than max bytes is CLIPCL_ERR_FORMAT ("larger than N MiB");
 * errors name the path. */
clipcl_status cc_read_file(const char *path, size_t max, char **out, size_t *len);
#endif

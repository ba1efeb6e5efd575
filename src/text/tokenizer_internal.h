/* tokenizer_internal.h: tokenizer entry points for tests only, not part of
 * the public API. */
#ifndef CC_TOKENIZER_INTERNAL_H
#define CC_TOKENIZER_INTERNAL_H
#include <stddef.h>

#include "clipcl.h"

/* Runs only the split regex over UTF-8 text (no cleaning): *n pieces, the
 * first `max` of them as byte ranges ends[2i] .. ends[2i+1]. */
clipcl_status cc_tokenizer_split(const clipcl_tokenizer *t, const char *u8, size_t len, size_t *ends, size_t max,
                                 size_t *n);
#endif

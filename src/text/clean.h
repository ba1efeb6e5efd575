/* clean.h: text cleaning as open_clip 2.20's tokenizer does it before
 * splitting: ftfy.fix_text (its deterministic fixers, not mojibake repair),
 * html.unescape twice, strip, white-space runs to one space, str.lower().
 * Works on arrays of code points. Not the split or the BPE (tokenizer.c). */
#ifndef CC_TEXT_CLEAN_H
#define CC_TEXT_CLEAN_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

/* a growable array of code points; zero-initialise, free with cc_u32s_free */
typedef struct {
  uint32_t *p;
  size_t n, cap;
} cc_u32s;

void cc_u32s_free(cc_u32s *b);
clipcl_status cc_u32s_reserve(cc_u32s *b, size_t need);

/* Strict UTF-8 (no overlongs, surrogates or values past U+10FFFF); appends
 * to out. Invalid input: CLIPCL_ERR_FORMAT naming the byte offset. */
clipcl_status cc_utf8_decode(const char *s, size_t len, cc_u32s *out);
/* Writes cp as UTF-8 into dst (room for 4 bytes); returns the byte count. */
size_t cc_utf8_put(uint32_t cp, char *dst);

/* The individual steps, each appending its result to out. */
clipcl_status cc_ftfy_fix_text(const uint32_t *in, size_t n, cc_u32s *out);
clipcl_status cc_html_unescape(const uint32_t *in, size_t n, cc_u32s *out);
clipcl_status cc_py_lower(const uint32_t *in, size_t n, cc_u32s *out);

/* The whole cleaning; out is overwritten. */
clipcl_status cc_text_clean(const uint32_t *in, size_t n, cc_u32s *out);

/* Python's str.isspace() and the `regex` module's \s. */
int cc_py_isspace(uint32_t c);
int cc_regex_space(uint32_t c);
#endif

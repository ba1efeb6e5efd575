/* fuzz_tokenizer.c: arbitrary bytes as a caption: UTF-8 validation, text
 * cleaning (HTML entities, NFC, white space, lower case), the split regex
 * and BPE, at open_clip's context length and at a long one; the ids that
 * come out must detokenise. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static clipcl_tokenizer *tk;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!tk && clipcl_tokenizer_create(&tk) != CLIPCL_OK) abort();
  char *text = fz_strdup(data, size);
  int32_t ids[77];
  int n = -1;
  clipcl_status st = clipcl_tokenize(tk, text, 77, ids, &n);
  fz_check(st, "clipcl_tokenize");
  if (st == CLIPCL_OK) {
    int vocab = clipcl_tokenizer_vocab_size(tk);
    if (n < 2 || ids[0] != clipcl_tokenizer_sot(tk)) abort();
    for (int i = 0; i < 77; i++)
      if (ids[i] < 0 || ids[i] >= vocab) abort();
    /* the whole sequence, uncut */
    int32_t *all = malloc((size_t)n * sizeof *all);
    int m = -1;
    if (!all) abort();
    fz_check(clipcl_tokenize(tk, text, n, all, &m), "clipcl_tokenize (full length)");
    if (m != n || all[n - 1] != clipcl_tokenizer_eot(tk)) abort();
    size_t len = 0;
    fz_check(clipcl_detokenize(tk, all, n, CLIPCL_DETOK_TEXT_ONLY, NULL, 0, &len), "clipcl_detokenize (measure)");
    char *back = malloc(len + 1);
    if (!back) abort();
    fz_check(clipcl_detokenize(tk, all, n, CLIPCL_DETOK_TEXT_ONLY, back, len + 1, NULL), "clipcl_detokenize");
    free(back);
    free(all);
  }
  free(text);
  return 0;
}

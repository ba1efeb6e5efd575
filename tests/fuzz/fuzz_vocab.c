/* fuzz_vocab.c: a BPE vocabulary file (clipcl_tokenizer_load: gzip or plain
 * text, the header line, merge lines of two byte-symbols, symbols that must
 * exist, duplicates), then a caption through what loaded and its ids back
 * through the detokeniser. */
#include <stdlib.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write(0, "vocab.txt", data, size);
  clipcl_tokenizer *t = NULL;
  clipcl_status st = clipcl_tokenizer_load(path, &t);
  fz_check(st, "clipcl_tokenizer_load");
  if (st != CLIPCL_OK) {
    if (t) abort();
    return 0;
  }
  int32_t ids[32];
  int n = 0;
  st = clipcl_tokenize(t, "a photo of a cat &amp; the dog's 42 caf\xc3\xa9s!", 32, ids, &n);
  fz_check(st, "clipcl_tokenize");
  if (st == CLIPCL_OK) {
    int used = n < 32 ? n : 32;
    for (int i = 0; i < used; i++)
      if (ids[i] < 0 || ids[i] >= clipcl_tokenizer_vocab_size(t)) abort();
    size_t len = 0;
    fz_check(clipcl_detokenize(t, ids, used, 0, NULL, 0, &len), "clipcl_detokenize (measure)");
    char *back = malloc(len + 1);
    if (!back) abort();
    fz_check(clipcl_detokenize(t, ids, used, 0, back, len + 1, NULL), "clipcl_detokenize");
    free(back);
  }
  clipcl_tokenizer_free(t);
  return 0;
}

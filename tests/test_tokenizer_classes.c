/* test_tokenizer_classes.c: the split regex as PCRE2 runs it against the
 * `regex` module's classes for every code point (tests/data/
 * regex_classes.txt, written by tests/tools/gen_text_tables.py): letter run,
 * single number, other run, or dropped (white space and U+0345); and the
 * white-space predicates behind whitespace_clean()/strip(). Exact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "text/clean.h"
#include "text/tokenizer_internal.h"

static int pieces(clipcl_tokenizer *t, const uint32_t *cps, int n, size_t *first_len) {
  char u8[16];
  size_t len = 0, ends[8], np = 0;
  for (int i = 0; i < n; i++) len += cc_utf8_put(cps[i], u8 + len);
  TH_OK(cc_tokenizer_split(t, u8, len, ends, 4, &np));
  *first_len = np ? ends[1] - ends[0] : 0;
  return (int)np;
}

/* how the split treats c: 'D' dropped, 'L', 'N' or 'O' */
static char split_class(clipcl_tokenizer *t, uint32_t c) {
  size_t l;
  uint32_t one[1] = {c}, two[2] = {c, c}, bang[2] = {c, '!'};
  if (pieces(t, one, 1, &l) == 0) return 'D';
  int p2 = pieces(t, two, 2, &l);
  if (p2 == 2) return 'N';
  int pb = pieces(t, bang, 2, &l);
  return pb == 2 ? 'L' : 'O';
}

int main(void) {
  FILE *f = fopen("data/regex_classes.txt", "r");
  if (!f) {
    fprintf(stderr, "data/regex_classes.txt: cannot open (run from tests/)\n");
    return 1;
  }
  clipcl_tokenizer *t;
  TH_OK(clipcl_tokenizer_create(&t));
  char line[256];
  long checked = 0, bad_split = 0, bad_space = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned lo, hi;
    char cls;
    if (line[0] == '#') continue;
    if (sscanf(line, "%x %x %c", &lo, &hi, &cls) != 3) {
      th_assert("classes file", 0, "bad line: %s", line);
      break;
    }
    char want = cls == 'S' || cls == 'X' ? 'D' : cls;
    for (uint32_t c = lo; c <= hi; c++) {
      char got = split_class(t, c);
      if (got != want && bad_split++ < 10) printf("  U+%04X: split %c, regex module %c\n", (unsigned)c, got, cls);
      int sp = cc_regex_space(c), py = cc_py_isspace(c);
      int want_py = cls == 'S' || (c >= 0x1C && c <= 0x1F);
      if ((sp != (cls == 'S') || py != want_py) && bad_space++ < 10)
        printf("  U+%04X: \\s %d isspace %d, class %c\n", (unsigned)c, sp, py, cls);
      checked++;
    }
  }
  fclose(f);
  clipcl_tokenizer_free(t);
  th_assert("every code point read", checked == 0x110000 - 0x800, "%ld", checked);
  th_assert("split classes as the regex module", bad_split == 0, "%ld code points differ", bad_split);
  th_assert("white space as the regex module", bad_space == 0, "%ld code points differ", bad_space);
  return th_finish(NULL);
}

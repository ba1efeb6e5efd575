/* fuzz_text_list.c: class-name and template lists (clipcl_text_list_parse:
 * BOM, line ends, trimming, UTF-8 and control-character checks, duplicates,
 * the "{}" slot), the first input byte picking the kind; every template is
 * then formatted with every class name of the same list. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int kind = data[0] & 1 ? CLIPCL_LIST_TEMPLATES : CLIPCL_LIST_CLASSNAMES;
  clipcl_text_list l = {0, NULL};
  clipcl_status st = clipcl_text_list_parse((const char *)data + 1, size - 1, "fuzz.txt", kind, &l);
  fz_check(st, "clipcl_text_list_parse");
  if (st == CLIPCL_OK) {
    if (l.n < 1) abort();
    for (int i = 0; i < l.n; i++) {
      if (!l.items[i] || !*l.items[i]) abort();
      if (kind == CLIPCL_LIST_TEMPLATES) {
        if (!strstr(l.items[i], "{}")) abort();
        for (int j = 0; j < l.n && j < 8; j++) {
          char *out = NULL;
          fz_check(clipcl_template_format(l.items[i], l.items[j], &out), "clipcl_template_format");
          free(out);
        }
      }
    }
  } else if (l.n || l.items) {
    abort();
  }
  clipcl_text_list_free(&l);
  /* the file path and its size limit */
  const char *path = fz_write(0, "list.txt", data + 1, size - 1);
  st = clipcl_text_list_load(path, kind, &l);
  fz_check(st, "clipcl_text_list_load");
  clipcl_text_list_free(&l);
  return 0;
}

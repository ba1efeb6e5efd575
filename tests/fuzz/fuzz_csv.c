/* fuzz_csv.c: a CSV/TSV manifest from arbitrary bytes through
 * clipcl_dataset_open, then every row's path, caption and flaw description
 * as the loader would report them. The first byte picks the variant: comma
 * or tab separator, captions or integer labels, custom column names. */
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned mode = data[0];
  data++, size--;
  const char *path = fz_write(0, mode & 1 ? "m.tsv" : "m.csv", data, size);
  clipcl_dataset_options o;
  clipcl_dataset_options_init(&o);
  o.kind = CLIPCL_DATA_CSV;
  if (mode & 2) o.label_key = "label";
  if (mode & 4) o.img_key = "image", o.caption_key = "caption";
  if (mode & 8) o.separator = ";";
  clipcl_dataset *ds = NULL;
  clipcl_status st = clipcl_dataset_open(path, &o, &ds);
  fz_check(st, "clipcl_dataset_open");
  if (st == CLIPCL_OK) {
    int64_t n = clipcl_dataset_size(ds);
    if (n <= 0 || (size_t)n > size) abort(); /* a row takes at least one byte */
    char buf[4096];
    for (int64_t r = 0; r < n; r++) {
      const char *cap = clipcl_dataset_caption(ds, r);
      const char *p = clipcl_dataset_image_path(ds, r, buf, sizeof buf);
      if (!o.label_key && !cap) abort();
      (void)p;
      const cc_row *row = &ds->rows[r];
      char why[512], src[512];
      cc_row_flaw_text(ds, row, why, sizeof why);
      cc_row_source(ds, (size_t)r, src, sizeof src);
      if (row->flaw == CC_ROW_OK && !o.label_key && strlen(cap) > row->caption_len) abort();
    }
    clipcl_dataset_free(ds);
  }
  return 0;
}

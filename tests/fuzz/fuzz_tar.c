/* fuzz_tar.c: a WebDataset shard from arbitrary bytes through the tar
 * source (cc_tar_reader: libarchive, member grouping by key, image, txt and
 * json caption members, size limits, cut and damaged shards), every sample
 * read to the end of the shard. Inputs starting with the gzip magic go
 * through the .tar.gz path. */
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *name = size >= 2 && data[0] == 0x1f && data[1] == 0x8b ? "s.tar.gz" : "s.tar";
  const char *path = fz_write(0, name, data, size);
  cc_tar_reader *r = NULL;
  if (cc_tar_reader_open(path, &r) != CLIPCL_OK) abort();
  int samples = 0;
  for (;;) {
    cc_tar_sample s;
    int k = cc_tar_next(r, &s);
    if (k < 0) abort(); /* only out of memory may do this */
    if (k == 0) break;
    if (!s.key) abort();
    if (s.bad) {
      if (s.bad_status >= 0 || !*s.bad || strchr(s.bad, '\n')) abort();
    } else {
      /* a good sample has its image and a NUL-terminated caption */
      if (!s.image || !s.caption || s.caption[s.caption_len] != 0 || !s.image_ext[0]) abort();
    }
    cc_tar_sample_clear(&s);
    if (++samples > 1000000) abort(); /* the reader must make progress */
  }
  cc_tar_reader_free(r);
  return 0;
}

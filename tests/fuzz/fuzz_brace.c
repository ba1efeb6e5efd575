/* fuzz_brace.c: shard-spec brace expansion (cc_brace_expand: "::" parts,
 * alternatives, integer and letter ranges with steps and padding, escapes,
 * nesting) and, for small expansions, the tar data set open that follows it
 * (shards checked for existence, sizes.json read for the data set size).
 * Input: the spec, optionally followed by a NUL and the sizes.json text; the
 * spec is taken relative to a scratch directory that holds s0.tar and s1.tar.
 * The name cap is lowered to 65,536 (a million names is a fraction of a
 * second in a release build but over one under the fuzzer's instrumentation);
 * test_data_brace checks the real cap at the limit and one past. */
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cc_brace_set_max_names(65536);
  const uint8_t *a, *b;
  size_t an, bn;
  /* the spec ends at the first NUL (it is a C string) */
  const uint8_t *z = memchr(data, 0, size);
  a = data;
  an = z ? (size_t)(z - data) : size;
  b = z ? z + 1 : data + size;
  bn = z ? size - an - 1 : 0;
  char *spec = fz_strdup(a, an);
  char **names = NULL;
  int n = -1;
  clipcl_status st = cc_brace_expand(spec, &names, &n);
  fz_check(st, "cc_brace_expand");
  if (st == CLIPCL_OK) {
    if (n < 1 || n > 65536) abort();
    for (int i = 0; i < n; i++)
      if (!names[i]) abort();
  } else if (names || n != 0) {
    abort();
  }
  int small = st == CLIPCL_OK && n <= 64;
  free(names);
  if (small) {
    static int made;
    if (!made) {
      fz_write(1, "s0.tar", (const uint8_t *)"", 0);
      fz_write(1, "s1.tar", (const uint8_t *)"", 0);
      made = 1;
    }
    if (bn)
      fz_write(1, "sizes.json", b, bn);
    else
      fz_write(1, "sizes.json", (const uint8_t *)"{}", 2);
    size_t dl = strlen(fz_dir());
    char *full = malloc(dl + an + 2);
    if (!full) abort();
    memcpy(full, fz_dir(), dl);
    full[dl] = '/';
    memcpy(full + dl + 1, spec, an + 1);
    clipcl_dataset_options o;
    clipcl_dataset_options_init(&o);
    o.kind = CLIPCL_DATA_TAR;
    clipcl_dataset *ds = NULL;
    st = clipcl_dataset_open(full, &o, &ds);
    fz_check(st, "clipcl_dataset_open");
    if (st == CLIPCL_OK && (clipcl_dataset_num_shards(ds) < 1 || clipcl_dataset_size(ds) < -1)) abort();
    clipcl_dataset_free(ds);
    free(full);
  }
  free(spec);
  return 0;
}

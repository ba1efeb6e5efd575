/* fuzz_index.c: a search index folder (clip-retrieval's layout, src/search/
 * index.c) from arbitrary bytes: index.json, float16 img_emb/ and text_emb/
 * parts, metadata CSV parts. Opened both ways, memory-mapped
 * (clipcl_index_open without flags: rows read from the mapped parts when
 * asked) and in memory (clipcl_index_load), then every row's path, values
 * and embeddings read and a search made.
 * Input: index.json, then files, each after a line "--clipcl-fuzz-- NAME"
 * where NAME is one of the part files below (parts 0 and 1); other names
 * are ignored, so the fuzzer never writes outside its scratch folder. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define MARK "\n--clipcl-fuzz-- "

static const char *const files[] = {
    "img_emb/img_emb_0000.npy",   "img_emb/img_emb_0001.npy",   "text_emb/text_emb_0000.npy",
    "text_emb/text_emb_0001.npy", "metadata/metadata_0000.csv", "metadata/metadata_0001.csv"};
#define NFILES (sizeof files / sizeof *files)
static const char *const subdirs[] = {"img_emb", "text_emb", "metadata"};
static char paths[NFILES][1100];

static void clean(void) {
  char p[1100];
  for (size_t i = 0; i < NFILES; i++)
    if (paths[i][0]) unlink(paths[i]);
  for (size_t i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", fz_dir(), subdirs[i]);
    rmdir(p);
  }
}

static void setup(void) {
  char p[1100];
  for (size_t i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", fz_dir(), subdirs[i]);
    mkdir(p, 0700);
  }
  for (size_t i = 0; i < NFILES; i++) snprintf(paths[i], sizeof paths[i], "%s/%s", fz_dir(), files[i]);
  atexit(clean); /* runs before fz_dir's own clean-up (registered earlier) */
}

static void exercise(clipcl_index *ix, int in_memory) {
  size_t n = clipcl_index_count(ix);
  int dim = clipcl_index_dim(ix);
  if (dim < 1 || !clipcl_index_model(ix)) abort();
  const char *const *cols = NULL;
  int nc = clipcl_index_columns(ix, &cols);
  if (nc < 0 || (nc && !cols)) abort();
  float *v = calloc((size_t)dim, sizeof *v);
  if (!v) abort();
  for (size_t i = 0; i < n && i < 64; i++) {
    const char *p = clipcl_index_path(ix, i);
    if (!p || !clipcl_index_contains(ix, p)) abort();
    for (int c = 0; c < nc; c++) (void)clipcl_index_value(ix, i, c);
    fz_check(clipcl_index_row_embedding(ix, i, 0, v), "clipcl_index_row_embedding");
    if (clipcl_index_has_text(ix)) fz_check(clipcl_index_row_embedding(ix, i, 1, v), "clipcl_index_row_embedding");
  }
  if (clipcl_index_path(ix, n)) abort();
  if (in_memory && n && (size_t)dim * n <= 1u << 20) {
    clipcl_search_hit hits[3];
    int nh = 0;
    memset(v, 0, (size_t)dim * sizeof *v);
    v[0] = 1;
    fz_check(clipcl_index_search(ix, clipcl_index_model(ix), v, 3, 1, hits, &nh), "clipcl_index_search");
  }
  free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!paths[0][0]) setup();
  for (size_t i = 0; i < NFILES; i++) unlink(paths[i]);
  const uint8_t *j, *rest;
  size_t jn, rn;
  fz_split(data, size, MARK, &j, &jn, &rest, &rn);
  fz_write(0, "index.json", j, jn);
  while (rn) {
    const uint8_t *nl = memchr(rest, '\n', rn);
    size_t namelen = nl ? (size_t)(nl - rest) : rn;
    const uint8_t *body = nl ? nl + 1 : rest + rn;
    const uint8_t *b, *next;
    size_t bn, nn;
    fz_split(body, rn - (size_t)(body - rest), MARK, &b, &bn, &next, &nn);
    for (size_t i = 0; i < NFILES; i++)
      if (strlen(files[i]) == namelen && !memcmp(files[i], rest, namelen)) fz_write(1, files[i], b, bn);
    rest = next, rn = nn;
  }
  for (int in_memory = 0; in_memory < 2; in_memory++) {
    clipcl_index *ix = NULL;
    clipcl_status st = in_memory ? clipcl_index_load(fz_dir(), &ix) : clipcl_index_open(fz_dir(), 0, &ix);
    fz_check(st, in_memory ? "clipcl_index_load" : "clipcl_index_open");
    if (st == CLIPCL_OK) {
      exercise(ix, in_memory);
      clipcl_index_free(ix);
    } else if (ix) {
      abort();
    }
  }
  return 0;
}

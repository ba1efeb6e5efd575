/* test_index.c: the image search index: append skips known paths (and
 * repeats within a call), embeddings are stored normalised, save/load round
 * trips bit for bit (paths with backslashes, newlines, CR, non-ASCII and
 * invalid UTF-8 included), search equals a brute-force stable sort (ties by
 * duplicated rows go to the lower row), another model is refused for add and
 * search, a save that fails half way leaves the old index loadable, old
 * generations are removed, and damaged files are refused with the file and
 * line. `test_index html DIR` writes a results page for test_search_html.sh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "io/atomic.h"

#define DIM 12

static const char *tricky[] = {"plain.jpg",       "dir with space/img 1.png", "back\\slash.png", "new\nline.png",
                               "cr\rlf.png",      "caf\xc3\xa9/\xe5\x9b\xbe.jpg", "bad\xff\xfeutf8.png",
                               "quote\"&<tag>'.png", "trailing\\",             "%41%2F.jpg"};
#define NTRICKY (int)(sizeof tricky / sizeof *tricky)

static float ref_dot(const float *a, const float *b, int dim) {
  float s = 0;
  for (int e = 0; e < dim; e++) {
    float p = a[e] * b[e];
    s += p;
  }
  return s;
}

static int exists(const char *dir, const char *name) {
  char p[600];
  struct stat sb;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return stat(p, &sb) == 0;
}

static void write_text(const char *dir, const char *name, const char *text) {
  char p[600];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f || fputs(text, f) < 0 || fclose(f)) exit(1);
}

/* same rows, same paths, bit for bit */
static int same_index(const clipcl_index *a, const clipcl_index *b) {
  if (clipcl_index_count(a) != clipcl_index_count(b) || clipcl_index_dim(a) != clipcl_index_dim(b) ||
      strcmp(clipcl_index_model(a), clipcl_index_model(b)))
    return 0;
  size_t n = clipcl_index_count(a);
  for (size_t i = 0; i < n; i++)
    if (strcmp(clipcl_index_path(a, i), clipcl_index_path(b, i))) return 0;
  return n == 0 || !memcmp(clipcl_index_embeddings(a), clipcl_index_embeddings(b), n * DIM * sizeof(float));
}

static void check_index(const char *dir) {
  const int n0 = 40;
  float *emb = th_alloc((size_t)(n0 + NTRICKY) * DIM);
  for (int i = 0; i < (n0 + NTRICKY) * DIM; i++) emb[i] = (float)(3 * th_normal());
  /* duplicates make exact ties in search */
  memcpy(emb + 30 * DIM, emb + 10 * DIM, DIM * sizeof *emb);
  memcpy(emb + 20 * DIM, emb + 10 * DIM, DIM * sizeof *emb);
  char **paths = malloc((size_t)(n0 + NTRICKY) * sizeof *paths);
  for (int i = 0; i < n0; i++) {
    paths[i] = malloc(32);
    snprintf(paths[i], 32, "img/%03d.png", i);
  }
  for (int i = 0; i < NTRICKY; i++) paths[n0 + i] = (char *)tricky[i];

  clipcl_index *ix;
  TH_OK(clipcl_index_create("cfg:abc|weights:123", DIM, &ix));
  size_t added = 99;
  TH_OK(clipcl_index_add(ix, "cfg:abc|weights:123", (const char *const *)paths, emb, 25, &added));
  th_assert("add 25", added == 25 && clipcl_index_count(ix) == 25, "added %zu", added);
  double worst = 0;
  for (int i = 0; i < 25; i++) {
    double ss = 0;
    for (int e = 0; e < DIM; e++) ss += (double)clipcl_index_embeddings(ix)[i * DIM + e] * clipcl_index_embeddings(ix)[i * DIM + e];
    worst = fmax(worst, fabs(sqrt(ss) - 1));
  }
  th_assert("stored rows are unit length", worst < 1e-6, "max |norm-1| %.2g", worst);
  /* rows 15..49 again: 15..24 are known; path 30 repeated inside the call */
  const char **again = malloc(40 * sizeof *again);
  float *again_emb = th_alloc(40 * DIM);
  int m = 0;
  for (int i = 15; i < n0 + NTRICKY; i++, m++) {
    again[m] = paths[i];
    memcpy(again_emb + m * DIM, emb + i * DIM, DIM * sizeof *emb);
  }
  again[m] = paths[30];
  memcpy(again_emb + m * DIM, emb + 3 * DIM, DIM * sizeof *emb);
  m++;
  float before15[DIM];
  memcpy(before15, clipcl_index_embeddings(ix) + 15 * DIM, sizeof before15);
  TH_OK(clipcl_index_add(ix, "cfg:abc|weights:123", again, again_emb, (size_t)m, &added));
  th_assert("append skips known and repeated paths", added == (size_t)(n0 + NTRICKY - 25) &&
            clipcl_index_count(ix) == (size_t)(n0 + NTRICKY), "added %zu, count %zu", added, clipcl_index_count(ix));
  th_assert("a skipped path keeps its row", !memcmp(before15, clipcl_index_embeddings(ix) + 15 * DIM, sizeof before15), "row 15");
  int order_ok = 1;
  for (int i = 0; i < n0 + NTRICKY; i++) order_ok &= !strcmp(clipcl_index_path(ix, i), paths[i]);
  th_assert("rows in order of arrival", order_ok && clipcl_index_contains(ix, "new\nline.png") &&
            !clipcl_index_contains(ix, "img/999.png"), "paths checked");
  clipcl_status st = clipcl_index_add(ix, "cfg:abc|weights:999", again, again_emb, 1, &added);
  th_assert("add refuses another model", st == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "cfg:abc|weights:123") &&
            strstr(clipcl_last_error(), "cfg:abc|weights:999"), "status %d: %s", st, clipcl_last_error());
  float zero[DIM] = {0};
  const char *zp[] = {"zero.png"};
  st = clipcl_index_add(ix, "cfg:abc|weights:123", zp, zero, 1, &added);
  th_assert("add refuses a zero embedding", st == CLIPCL_ERR_NUMERIC && clipcl_index_count(ix) == (size_t)(n0 + NTRICKY),
            "status %d", st);

  /* search against a brute force: normalise the query as the library does, stable sort */
  float q[DIM], qn[DIM], s[64];
  memcpy(q, emb + 10 * DIM, sizeof q);
  for (int e = 0; e < DIM; e++) q[e] = 2.5f * q[e] + (float)(0.05 * th_normal());
  double ss = 0;
  for (int e = 0; e < DIM; e++) ss += (double)q[e] * q[e];
  for (int e = 0; e < DIM; e++) qn[e] = (float)(q[e] * (1.0 / sqrt(ss)));
  int N = n0 + NTRICKY, order[64];
  for (int i = 0; i < N; i++) {
    s[i] = ref_dot(qn, clipcl_index_embeddings(ix) + i * DIM, DIM);
    int j = i;
    while (j > 0 && s[order[j - 1]] < s[i]) order[j] = order[j - 1], j--;
    order[j] = i;
  }
  clipcl_search_hit hits[80];
  int nh = 0;
  TH_OK(clipcl_index_search(ix, "cfg:abc|weights:123", q, 7, 2, hits, &nh));
  int ok = nh == 7;
  for (int r = 0; r < nh && ok; r++)
    ok = hits[r].index == order[r] && hits[r].score == s[order[r]] && !strcmp(hits[r].path, paths[order[r]]);
  th_assert("search = stable sort of scores", ok, "top-3 rows %lld %lld %lld (ties 10, 20, 30 at the top)",
            (long long)hits[0].index, (long long)hits[1].index, (long long)hits[2].index);
  th_assert("search ties go to the lower row", nh >= 3 && hits[0].index == 10 && hits[1].index == 20 && hits[2].index == 30,
            "%lld %lld %lld", (long long)hits[0].index, (long long)hits[1].index, (long long)hits[2].index);
  TH_OK(clipcl_index_search(ix, "cfg:abc|weights:123", q, 500, 1, hits, &nh));
  th_assert("k beyond the index returns every row", nh == N, "%d hits", nh);
  st = clipcl_index_search(ix, "other-model", q, 5, 1, hits, &nh);
  th_assert("search refuses another model", st == CLIPCL_ERR_ARG && nh == 0 && strstr(clipcl_last_error(), "other-model"),
            "status %d: %s", st, clipcl_last_error());

  /* save, load, compare */
  char idir[600];
  snprintf(idir, sizeof idir, "%s/index", dir);
  th_assert("no index yet", !clipcl_index_exists(idir), "%s", idir);
  TH_OK(clipcl_index_save(ix, idir));
  clipcl_index *lx;
  TH_OK(clipcl_index_load(idir, &lx));
  th_assert("save/load round trip (paths and bits)", same_index(ix, lx), "count %zu", clipcl_index_count(lx));
  th_assert("generation 1 files", exists(idir, "embeddings-1.npy") && exists(idir, "paths-1.txt") && clipcl_index_exists(idir),
            "in %s", idir);
  /* add to the loaded one, save: generation 2 replaces 1 */
  const char *np[] = {"late.png"};
  TH_OK(clipcl_index_add(lx, "cfg:abc|weights:123", np, emb, 1, &added));
  TH_OK(clipcl_index_save(lx, idir));
  th_assert("generation 2 replaces 1", exists(idir, "embeddings-2.npy") && !exists(idir, "embeddings-1.npy") &&
            !exists(idir, "paths-1.txt"), "files checked");
  /* a save failing half way leaves generation 2 readable */
  TH_OK(clipcl_index_add(lx, "cfg:abc|weights:123", zp, emb + DIM, 1, &added));
  cc_atomic_inject_failure(200);
  st = clipcl_index_save(lx, idir);
  cc_atomic_inject_failure(-1);
  clipcl_index *cx = NULL;
  TH_OK(clipcl_index_load(idir, &cx));
  th_assert("failed save keeps the old index", st != CLIPCL_OK && clipcl_index_count(cx) == (size_t)N + 1 &&
            !exists(idir, "embeddings-3.npy"), "status %d, count %zu", st, clipcl_index_count(cx));
  clipcl_index_free(cx);
  clipcl_index_free(lx);

  /* damaged files */
  char bdir[600];
  snprintf(bdir, sizeof bdir, "%s/bad", dir);
  clipcl_index *small;
  TH_OK(clipcl_index_create("m", DIM, &small));
  const char *two[] = {"a.png", "b.png"};
  TH_OK(clipcl_index_add(small, "m", two, emb, 2, NULL));
  TH_OK(clipcl_index_save(small, bdir));
  write_text(bdir, "paths-1.txt", "a.png\nb\\t.png\n");
  st = clipcl_index_load(bdir, &cx);
  th_assert("unknown escape refused with file:line", st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "paths-1.txt:2:") && !cx,
            "status %d: %s", st, clipcl_last_error());
  write_text(bdir, "paths-1.txt", "a.png\na.png\n");
  st = clipcl_index_load(bdir, &cx);
  th_assert("repeated path refused", st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "paths-1.txt:2: path repeats line 1"),
            "status %d: %s", st, clipcl_last_error());
  write_text(bdir, "paths-1.txt", "a.png\n");
  st = clipcl_index_load(bdir, &cx);
  th_assert("too few paths refused", st == CLIPCL_ERR_FORMAT, "status %d: %s", st, clipcl_last_error());
  write_text(bdir, "paths-1.txt", "a.png\nb.png");
  st = clipcl_index_load(bdir, &cx);
  th_assert("truncated paths file refused", st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "no newline"),
            "status %d: %s", st, clipcl_last_error());
  write_text(bdir, "paths-1.txt", "a.png\r\nb.png\r\n");
  st = clipcl_index_load(bdir, &cx);
  th_assert("raw CR refused", st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "paths-1.txt:1:"), "status %d: %s",
            st, clipcl_last_error());
  write_text(bdir, "index.json", "{\"format\": \"something-else\"}\n");
  st = clipcl_index_load(bdir, &cx);
  th_assert("foreign index.json refused", st == CLIPCL_ERR_FORMAT, "status %d: %s", st, clipcl_last_error());
  st = clipcl_index_save(small, bdir);
  th_assert("save does not overwrite a foreign index.json", st == CLIPCL_ERR_FORMAT, "status %d: %s", st, clipcl_last_error());
  write_text(bdir, "index.json", "{\"format\": \"clipcl-index\", \"version\": 1, \"model\": \"m\", \"dim\": 12, "
                                 "\"count\": 2, \"generation\": 1}\n");
  write_text(bdir, "paths-1.txt", "a.png\nb.png\n");
  TH_OK(clipcl_index_load(bdir, &cx));
  clipcl_index_free(cx);
  float raw[2 * DIM];
  memcpy(raw, emb, sizeof raw); /* not normalised */
  char pe[700];
  snprintf(pe, sizeof pe, "%s/embeddings-1.npy", bdir);
  FILE *f = fopen(pe, "r+b");
  if (f) {
    fseek(f, 128, SEEK_SET);
    fwrite(raw, sizeof raw, 1, f);
    fclose(f);
  }
  st = clipcl_index_load(bdir, &cx);
  th_assert("rows that are not unit length refused", st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "not normalised"),
            "status %d: %s", st, clipcl_last_error());
  st = clipcl_index_load("/nonexistent/index", &cx);
  th_assert("missing index", st == CLIPCL_ERR_IO && strstr(clipcl_last_error(), "no index"), "status %d: %s", st,
            clipcl_last_error());
  clipcl_index *empty;
  TH_OK(clipcl_index_create("m", DIM, &empty));
  TH_OK(clipcl_index_search(empty, "m", q, 3, 1, hits, &nh));
  th_assert("empty index: no hits", nh == 0, "%d", nh);
  clipcl_index_free(empty);
  clipcl_index_free(small);
  clipcl_index_free(ix);
  for (int i = 0; i < n0; i++) free(paths[i]);
  free(paths);
  free(again);
}

/* A results page for test_search_html.sh: tricky paths, absolute and
 * relative, with a base directory for the relative ones. */
static int html_mode(const char *dir) {
  clipcl_search_hit hits[NTRICKY + 1];
  for (int i = 0; i < NTRICKY; i++) hits[i] = (clipcl_search_hit){i, 0.9f - 0.05f * i, tricky[i]};
  hits[NTRICKY] = (clipcl_search_hit){NTRICKY, 0.1f, "/abs/path/x y.png"};
  char path[600];
  snprintf(path, sizeof path, "%s/page.html", dir);
  TH_OK(clipcl_search_write_html(path, "query: \"red <circle>\" & more", hits, NTRICKY + 1, "../images"));
  snprintf(path, sizeof path, "%s/page_abs.html", dir);
  TH_OK(clipcl_search_write_html(path, "absolute base", hits, 3, "/data/set one"));
  return th_finish(NULL);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "html")) return html_mode(argv[2]);
  char dir[] = "/tmp/clipcl_test_index_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  check_index(dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return th_finish(NULL);
}

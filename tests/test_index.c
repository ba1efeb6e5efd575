/* test_index.c: the search index in clip-retrieval's layout. Append skips
 * known paths (and repeats within a call), rows are stored normalised and
 * rounded to float16, metadata columns (added later too, empty cells,
 * tricky bytes: newlines, CR, quotes, commas, invalid UTF-8) and caption
 * embeddings round trip through save/open bit for bit; search equals a
 * brute-force stable sort (ties by duplicated rows go to the lower row);
 * another model is refused; saving writes only new parts (part_rows splits
 * them), a save failing half way leaves the old index readable, removing
 * rows rewrites every part under new numbers and deletes the old files;
 * opening without embeddings reads rows from the mapped parts; the
 * collection root is stored relative to the index and found again after
 * both move; damaged files are refused naming the file (and line); the
 * automatic FAISS choice follows autofaiss's rule, and with FAISS an HNSW
 * and an IVF index built over the rows find what exact search finds, are
 * saved with the index, follow appends and are dropped by removals.
 * `test_index html DIR` writes a results page for test_search_html.sh.
 */
#define _DEFAULT_SOURCE /* realpath */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "io/atomic.h"
#include "search/search.h"

#define DIM 12

static const char *tricky[] = {"plain.jpg",       "dir with space/img 1.png", "back\\slash.png", "new\nline.png",
                               "cr\rlf.png",      "caf\xc3\xa9/\xe5\x9b\xbe.jpg", "bad\xff\xfeutf8.png",
                               "quote\"&<tag>'.png", "trailing\\",             "%41%2F.jpg", "comma,a.png",
                               " lead and trail .png"};
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
  char p[1200];
  struct stat sb;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return stat(p, &sb) == 0;
}

static void write_text(const char *dir, const char *name, const char *text) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f || fputs(text, f) < 0 || fclose(f)) exit(1);
}

static char *read_text(const char *dir, const char *name) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "rb");
  if (!f) return NULL;
  char *b = calloc(1 << 16, 1);
  if (b) fread(b, 1, (1 << 16) - 1, f);
  fclose(f);
  return b;
}

/* same rows, paths, metadata and embeddings, bit for bit */
static int same_index(const clipcl_index *a, const clipcl_index *b) {
  if (clipcl_index_count(a) != clipcl_index_count(b) || clipcl_index_dim(a) != clipcl_index_dim(b) ||
      strcmp(clipcl_index_model(a), clipcl_index_model(b)) || clipcl_index_has_text(a) != clipcl_index_has_text(b))
    return 0;
  const char *const *ca, *const *cb;
  int na = clipcl_index_columns(a, &ca), nb = clipcl_index_columns(b, &cb);
  size_t n = clipcl_index_count(a);
  for (int c = 0; c < na; c++) {
    int m = -1;
    for (int d = 0; d < nb; d++)
      if (!strcmp(ca[c], cb[d])) m = d;
    if (m < 0) return 0;
    for (size_t i = 0; i < n; i++) {
      const char *x = clipcl_index_value(a, i, c), *y = clipcl_index_value(b, i, m);
      if ((x == NULL) != (y == NULL) || (x && strcmp(x, y))) return 0;
    }
  }
  float ea[DIM], eb[DIM];
  for (size_t i = 0; i < n; i++)
    for (int t = 0; t < 1 + clipcl_index_has_text(a); t++) {
      if (clipcl_index_row_embedding(a, i, t, ea) || clipcl_index_row_embedding(b, i, t, eb) ||
          memcmp(ea, eb, sizeof ea))
        return 0;
    }
  return 1;
}

static void paths_and_helpers(void) {
  const char *norm[][2] = {{"a/./b//c/", "a/b/c"}, {"/x/../y", "/y"}, {"../a/../../b", "../../b"}, {".", "."},
                           {"/", "/"}, {"a/..", "."}, {"/../a", "/a"}};
  int ok = 1;
  for (size_t i = 0; i < sizeof norm / sizeof *norm; i++) {
    char *n = cc_path_normalise(norm[i][0]);
    if (!n || strcmp(n, norm[i][1])) ok = 0, fprintf(stderr, "normalise %s -> %s\n", norm[i][0], n ? n : "NULL");
    free(n);
  }
  th_assert("cc_path_normalise", ok, NULL);
  const char *rel[][3] = {{"/a/b", "/a/b", "."}, {"/a/b", "/a/c", "../c"}, {"/a/b/idx", "/a/photos", "../../photos"},
                          {"/a", "/a/b/c", "b/c"}, {"/ab", "/a/x", "../a/x"}, {"/", "/x/y", "x/y"}, {"/a/b", "/", "../.."}};
  ok = 1;
  for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
    char *r = cc_path_relative(rel[i][0], rel[i][1]);
    if (!r || strcmp(r, rel[i][2])) ok = 0, fprintf(stderr, "relative %s %s -> %s\n", rel[i][0], rel[i][1], r ? r : "NULL");
    free(r);
  }
  th_assert("cc_path_relative", ok, NULL);
  /* base64 both ways and its refusals */
  const char *plain = "any carnal pleas\xff\x00";
  char *enc = NULL;
  size_t el = 0, dl = 0;
  unsigned char *dec = NULL;
  TH_OK(cc_base64_encode(plain, 18, &enc, &el));
  th_assert("base64 encode", enc && !strcmp(enc, "YW55IGNhcm5hbCBwbGVhc/8A") && el == 24, "%s", enc ? enc : "");
  TH_OK(cc_base64_decode("YW55IGNh\ncm5hbCBwbGVhc/8A", 25, 100, &dec, &dl));
  th_assert("base64 decode (white space skipped)", dl == 18 && !memcmp(dec, plain, 18), "%zu bytes", dl);
  free(dec), free(enc);
  const char *bad[] = {"YW55=", "YW5*", "Y", "YW55IGNhcm5hbCBwbGVhc/8A"};
  size_t caps[] = {100, 100, 100, 10};
  ok = 1;
  for (int i = 0; i < 4; i++) {
    dec = NULL;
    clipcl_status st = cc_base64_decode(bad[i], strlen(bad[i]), caps[i], &dec, &dl);
    ok &= st == CLIPCL_ERR_FORMAT && dec == NULL;
    free(dec);
  }
  th_assert("base64 refuses bad padding, foreign bytes, a cut quantum and oversize", ok, NULL);
  /* the automatic FAISS choice */
  char f[64];
  struct {
    size_t n, budget;
    const char *want;
  } ch[] = {{5000, 0, "Flat"},
            {10000, (size_t)16 << 30, "IVF256,Flat"},
            {200000, (size_t)16 << 30, "IVF2048,Flat"},
            {1000000, (size_t)16 << 30, "IVF4096,Flat"},
            {200000, (size_t)100 << 20, "IVF2048,PQ64x8"},
            {1000000, (size_t)1 << 30, "IVF16384,PQ64x8"},
            {50000000, (size_t)16 << 30, "IVF65536,PQ64x8"}};
  ok = 1;
  for (size_t i = 0; i < sizeof ch / sizeof *ch; i++) {
    TH_OK(clipcl_ann_choose(ch[i].n, 512, ch[i].budget ? ch[i].budget : (size_t)16 << 30, f, sizeof f));
    if (strcmp(f, ch[i].want)) ok = 0, fprintf(stderr, "choose %zu: %s, want %s\n", ch[i].n, f, ch[i].want);
  }
  th_assert("clipcl_ann_choose: exact, IVF with flat lists while they fit, then IVF-PQ", ok, NULL);
}

static void check_index(const char *dir) {
  const int n0 = 40, N = n0 + NTRICKY;
  float *emb = th_alloc((size_t)N * DIM), *temb = th_alloc((size_t)N * DIM);
  for (int i = 0; i < N * DIM; i++) emb[i] = (float)(3 * th_normal()), temb[i] = (float)th_normal();
  /* duplicates make exact ties in search */
  memcpy(emb + 30 * DIM, emb + 10 * DIM, DIM * sizeof *emb);
  memcpy(emb + 20 * DIM, emb + 10 * DIM, DIM * sizeof *emb);
  char **paths = malloc((size_t)N * sizeof *paths);
  for (int i = 0; i < n0; i++) {
    paths[i] = malloc(32);
    snprintf(paths[i], 32, "img/%03d.png", i);
  }
  for (int i = 0; i < NTRICKY; i++) paths[n0 + i] = (char *)tricky[i];
  const char *names[2] = {"caption", "url"};
  const char **vals = calloc((size_t)N * 2, sizeof *vals);
  for (int i = 0; i < N; i++) {
    vals[2 * i] = i % 3 ? tricky[i % NTRICKY] : NULL; /* some captions empty */
    vals[2 * i + 1] = i % 2 ? "http://example.com/a,b\"c" : "";
  }

  clipcl_index *ix;
  const char *M = "cfg:abc|weights:123";
  TH_OK(clipcl_index_create(M, DIM, &ix));
  size_t added = 99;
  clipcl_index_rows rows = {25, (const char *const *)paths, 2, names, vals, emb, temb};
  TH_OK(clipcl_index_append(ix, M, &rows, &added));
  th_assert("add 25", added == 25 && clipcl_index_count(ix) == 25 && clipcl_index_has_text(ix), "added %zu", added);
  double worst = 0, werr = 0;
  for (int i = 0; i < 25; i++) {
    double ss = 0, n2 = 0;
    for (int e = 0; e < DIM; e++) n2 += (double)emb[i * DIM + e] * emb[i * DIM + e];
    for (int e = 0; e < DIM; e++) {
      float v = clipcl_index_embeddings(ix)[i * DIM + e];
      ss += (double)v * v;
      werr = fmax(werr, fabs(v - emb[i * DIM + e] / sqrt(n2)));
    }
    worst = fmax(worst, fabs(sqrt(ss) - 1));
  }
  th_assert("stored rows are unit length and float16-rounded", worst < 2e-3 && werr <= 1.0 / 2048 && werr > 0,
            "max |norm-1| %.2g, max |stored - exact| %.2g", worst, werr);
  /* rows 15..N-1 again: 15..24 are known; path 30 repeated inside the call */
  const char **again = malloc((size_t)N * sizeof *again), **again_v = calloc((size_t)N * 2, sizeof *again_v);
  float *again_emb = th_alloc((size_t)N * DIM), *again_t = th_alloc((size_t)N * DIM);
  int m = 0;
  for (int i = 15; i < N; i++, m++) {
    again[m] = paths[i];
    again_v[2 * m] = vals[2 * i], again_v[2 * m + 1] = vals[2 * i + 1];
    memcpy(again_emb + m * DIM, emb + i * DIM, DIM * sizeof *emb);
    memcpy(again_t + m * DIM, temb + i * DIM, DIM * sizeof *emb);
  }
  again[m] = paths[30];
  memcpy(again_emb + m * DIM, emb + 3 * DIM, DIM * sizeof *emb);
  memcpy(again_t + m * DIM, temb + 3 * DIM, DIM * sizeof *emb);
  m++;
  float before15[DIM];
  memcpy(before15, clipcl_index_embeddings(ix) + 15 * DIM, sizeof before15);
  clipcl_index_rows r2 = {(size_t)m, again, 2, names, again_v, again_emb, again_t};
  TH_OK(clipcl_index_append(ix, M, &r2, &added));
  th_assert("append skips known and repeated paths", added == (size_t)(N - 25) && clipcl_index_count(ix) == (size_t)N,
            "added %zu, count %zu", added, clipcl_index_count(ix));
  th_assert("a skipped path keeps its row", !memcmp(before15, clipcl_index_embeddings(ix) + 15 * DIM, sizeof before15),
            "row 15");
  int order_ok = 1;
  for (int i = 0; i < N; i++) {
    order_ok &= !strcmp(clipcl_index_path(ix, i), paths[i]) && clipcl_index_find(ix, paths[i]) == i;
    const char *c = clipcl_index_value(ix, i, 1);
    order_ok &= vals[2 * i] ? c && !strcmp(c, vals[2 * i]) : !c;
  }
  th_assert("rows and metadata in order of arrival", order_ok && clipcl_index_contains(ix, "new\nline.png") &&
            !clipcl_index_contains(ix, "img/999.png") && clipcl_index_find(ix, "img/999.png") == -1, "paths checked");
  clipcl_status st = clipcl_index_append(ix, "cfg:abc|weights:999", &r2, &added);
  th_assert("add refuses another model", st == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "cfg:abc|weights:123") &&
            strstr(clipcl_last_error(), "cfg:abc|weights:999"), "status %d: %s", st, clipcl_last_error());
  float zero[DIM] = {0};
  const char *zp[] = {"zero.png"};
  clipcl_index_rows rz = {1, zp, 0, NULL, NULL, zero, temb};
  st = clipcl_index_append(ix, M, &rz, &added);
  th_assert("add refuses a zero embedding", st == CLIPCL_ERR_NUMERIC && clipcl_index_count(ix) == (size_t)N, "status %d", st);
  rz.emb = emb;
  rz.text_emb = NULL;
  st = clipcl_index_append(ix, M, &rz, &added);
  th_assert("add refuses rows without caption embeddings here", st == CLIPCL_ERR_ARG && clipcl_index_count(ix) == (size_t)N,
            "status %d: %s", st, clipcl_last_error());
  const char *badname[] = {"image_path"};
  clipcl_index_rows rb = {1, zp, 1, badname, zp, emb, temb};
  st = clipcl_index_append(ix, M, &rb, &added);
  th_assert("add refuses a column named image_path", st == CLIPCL_ERR_ARG && clipcl_index_count(ix) == (size_t)N,
            "status %d", st);

  /* search against a brute force: normalise the query as the library does, stable sort */
  float q[DIM], qn[DIM], s[64];
  memcpy(q, emb + 10 * DIM, sizeof q);
  for (int e = 0; e < DIM; e++) q[e] = 2.5f * q[e] + (float)(0.05 * th_normal());
  double ss = 0;
  for (int e = 0; e < DIM; e++) ss += (double)q[e] * q[e];
  for (int e = 0; e < DIM; e++) qn[e] = (float)(q[e] * (1.0 / sqrt(ss)));
  int order[64];
  for (int i = 0; i < N; i++) {
    s[i] = ref_dot(qn, clipcl_index_embeddings(ix) + i * DIM, DIM);
    int j = i;
    while (j > 0 && s[order[j - 1]] < s[i]) order[j] = order[j - 1], j--;
    order[j] = i;
  }
  clipcl_search_hit hits[80];
  int nh = 0;
  TH_OK(clipcl_index_search(ix, M, q, 7, 2, hits, &nh));
  int ok = nh == 7;
  for (int r = 0; r < nh && ok; r++)
    ok = hits[r].index == order[r] && hits[r].score == s[order[r]] && !strcmp(hits[r].path, paths[order[r]]);
  th_assert("search = stable sort of scores", ok, "top-3 rows %lld %lld %lld (ties 10, 20, 30 at the top)",
            (long long)hits[0].index, (long long)hits[1].index, (long long)hits[2].index);
  th_assert("search ties go to the lower row", nh >= 3 && hits[0].index == 10 && hits[1].index == 20 && hits[2].index == 30,
            "%lld %lld %lld", (long long)hits[0].index, (long long)hits[1].index, (long long)hits[2].index);
  int nq1 = 0;
  TH_OK(clipcl_index_query(ix, q, 1, 7, NULL, hits, &nq1, NULL));
  ok = nq1 == 7;
  for (int r = 0; r < nq1 && ok; r++) ok = hits[r].index == order[r] && hits[r].score == s[order[r]];
  th_assert("clipcl_index_query without FAISS = exact search", ok, "%d hits", nq1);
  TH_OK(clipcl_index_search(ix, M, q, 500, 1, hits, &nh));
  th_assert("k beyond the index returns every row", nh == N, "%d hits", nh);
  st = clipcl_index_search(ix, "other-model", q, 5, 1, hits, &nh);
  th_assert("search refuses another model", st == CLIPCL_ERR_ARG && nh == 0 && strstr(clipcl_last_error(), "other-model"),
            "status %d: %s", st, clipcl_last_error());

  /* save, open, compare */
  char idir[600], coll[600];
  snprintf(idir, sizeof idir, "%s/index", dir);
  snprintf(coll, sizeof coll, "%s/photos", dir);
  mkdir(coll, 0777);
  TH_OK(clipcl_index_set_root(ix, coll));
  th_assert("no index yet", !clipcl_index_exists(idir), "%s", idir);
  clipcl_index_set_part_rows(ix, 20);
  TH_OK(clipcl_index_save(ix, idir));
  th_assert("parts of 20 rows, in clip-retrieval's layout",
            exists(idir, "img_emb/img_emb_0000.npy") && exists(idir, "img_emb/img_emb_0002.npy") &&
            !exists(idir, "img_emb/img_emb_0003.npy") && exists(idir, "text_emb/text_emb_0002.npy") &&
            exists(idir, "metadata/metadata_0002.csv") && clipcl_index_exists(idir), "in %s", idir);
  char *meta = read_text(idir, "metadata/metadata_0000.csv");
  th_assert("metadata CSV header and quoting", meta && !strncmp(meta, "image_path,caption,url\nimg/000.png,,\n", 37) &&
            strstr(meta, "\"http://example.com/a,b\"\"c\""), NULL);
  free(meta);
  char *js = read_text(idir, "index.json");
  th_assert("index.json: root relative to the index, parts, columns",
            js && strstr(js, "\"root\": \"../photos\"") && strstr(js, "\"count\": 52") && strstr(js, "\"url\""),
            NULL);
  free(js);
  clipcl_index *lx;
  TH_OK(clipcl_index_load(idir, &lx));
  th_assert("save/load round trip (paths, metadata, both embeddings, bits)", same_index(ix, lx), "count %zu",
            clipcl_index_count(lx));
  TH_OK(clipcl_index_search(lx, M, q, 7, 2, hits, &nh));
  th_assert("the loaded index searches the same", nh == 7 && hits[0].index == 10 && hits[3].index == order[3], NULL);
  clipcl_index *ox;
  TH_OK(clipcl_index_open(idir, 0, &ox));
  th_assert("opened without embeddings: none in memory, rows from the mapped parts",
            !clipcl_index_embeddings(ox) && same_index(ix, ox), NULL);
  st = clipcl_index_search(ox, M, q, 3, 1, hits, &nh);
  th_assert("exact search without embeddings in memory is refused", st == CLIPCL_ERR_ARG, "status %d", st);
  /* add to the opened one (rows stay mapped), save: one new part, the others untouched */
  struct stat before;
  char p0[700];
  snprintf(p0, sizeof p0, "%s/img_emb/img_emb_0000.npy", idir);
  stat(p0, &before);
  const char *np[] = {"late.png"};
  clipcl_index_rows rl = {1, np, 0, NULL, NULL, emb, temb};
  TH_OK(clipcl_index_append(ox, M, &rl, &added));
  TH_OK(clipcl_index_save(ox, idir));
  struct stat after;
  stat(p0, &after);
  th_assert("a save writes only the new rows as a new part", exists(idir, "img_emb/img_emb_0003.npy") &&
            before.st_ino == after.st_ino && before.st_mtime == after.st_mtime, NULL);
  clipcl_index_free(lx);
  TH_OK(clipcl_index_load(idir, &lx));
  th_assert("53 rows after the append", clipcl_index_count(lx) == (size_t)N + 1 && same_index(ox, lx) &&
            !strcmp(clipcl_index_path(lx, N), "late.png") && !clipcl_index_value(lx, N, 1), NULL);
  clipcl_index_free(lx);
  /* a save failing half way leaves the index readable as it was */
  const char *zp2[] = {"zz.png"};
  clipcl_index_rows r3 = {1, zp2, 0, NULL, NULL, emb + DIM, temb};
  TH_OK(clipcl_index_append(ox, M, &r3, &added));
  for (int64_t at = 100; at <= 300; at += 200) {
    cc_atomic_inject_failure(at);
    st = clipcl_index_save(ox, idir);
    cc_atomic_inject_failure(-1);
    clipcl_index *cx = NULL;
    TH_OK(clipcl_index_load(idir, &cx));
    th_assert("failed save keeps the old index", st != CLIPCL_OK && clipcl_index_count(cx) == (size_t)N + 1 &&
              !exists(idir, "img_emb/img_emb_0004.npy"), "status %d, count %zu", st, clipcl_index_count(cx));
    clipcl_index_free(cx);
  }
  TH_OK(clipcl_index_save(ox, idir));
  clipcl_index_free(ox);
  /* remove: every part rewritten under new numbers, the old files gone */
  TH_OK(clipcl_index_load(idir, &lx));
  uint8_t drop[64] = {0};
  drop[0] = drop[17] = drop[N] = 1;
  size_t removed = 0;
  TH_OK(clipcl_index_remove(lx, drop, &removed));
  th_assert("remove", removed == 3 && clipcl_index_count(lx) == (size_t)N - 1 &&
            !strcmp(clipcl_index_path(lx, 0), paths[1]) && !strcmp(clipcl_index_path(lx, 16), paths[18]) &&
            clipcl_index_find(lx, paths[17]) == -1 && clipcl_index_find(lx, paths[18]) == 16, NULL);
  TH_OK(clipcl_index_save(lx, idir));
  clipcl_index *rx;
  TH_OK(clipcl_index_load(idir, &rx));
  th_assert("after remove: new parts, old files deleted, same rows", same_index(lx, rx) &&
            !exists(idir, "img_emb/img_emb_0000.npy") && !exists(idir, "metadata/metadata_0004.csv") &&
            exists(idir, "img_emb/img_emb_0005.npy"), NULL);
  clipcl_index_free(rx);
  /* the index and its collection move together: the relative root still finds it */
  char idir2[600], coll2[600], sub[600];
  snprintf(sub, sizeof sub, "%s/moved", dir);
  mkdir(sub, 0777);
  snprintf(idir2, sizeof idir2, "%s/moved/index", dir);
  snprintf(coll2, sizeof coll2, "%s/moved/photos", dir);
  int mv = rename(idir, idir2) == 0 && rename(coll, coll2) == 0;
  TH_OK(clipcl_index_open(idir2, 0, &rx));
  char real[600];
  th_assert("moved together: the root follows", mv && clipcl_index_root(rx) && realpath(coll2, real) &&
            !strcmp(clipcl_index_root(rx), real), "root %s", clipcl_index_root(rx) ? clipcl_index_root(rx) : "NULL");
  clipcl_index_free(rx);
  rename(idir2, idir);
  rename(coll2, coll);

  /* damaged files */
  char bdir[600];
  snprintf(bdir, sizeof bdir, "%s/bad", dir);
  clipcl_index *small;
  TH_OK(clipcl_index_create("m", DIM, &small));
  const char *two[] = {"a.png", "b.png"};
  TH_OK(clipcl_index_add(small, "m", two, emb, 2, NULL));
  TH_OK(clipcl_index_save(small, bdir));
  clipcl_index *cx = NULL;
  struct {
    const char *name, *file, *text, *want;
  } dmg[] = {
      {"repeated path", "metadata/metadata_0000.csv", "image_path\na.png\na.png\n", "metadata_0000.csv:3: image_path \"a.png\" repeats row 0"},
      {"too few rows", "metadata/metadata_0000.csv", "image_path\na.png\n", "1 rows, index.json lists 2"},
      {"too many rows", "metadata/metadata_0000.csv", "image_path\na.png\nb.png\nc.png\n", "metadata_0000.csv:4: more than"},
      {"header without image_path", "metadata/metadata_0000.csv", "path\na.png\nb.png\n", "metadata_0000.csv:1: the header"},
      {"short row", "metadata/metadata_0000.csv", "image_path,caption\na.png,x\nb.png\n", "metadata_0000.csv:3: 1 fields"},
      {"unterminated quote", "metadata/metadata_0000.csv", "image_path\na.png\n\"b.png\n", "end of file inside a quoted field"},
      {"empty path", "metadata/metadata_0000.csv", "image_path,caption\na.png,x\n,y\n", "empty image_path"},
      {"foreign index.json", "index.json", "{\"format\": \"something-else\"}\n", "not a clipcl index"},
      {"version 1", "index.json", "{\"format\": \"clipcl-index\", \"version\": 1}\n", "rebuild it"},
      {"count mismatch", "index.json",
       "{\"format\": \"clipcl-index\", \"version\": 2, \"model\": \"m\", \"dim\": 12, \"count\": 3, \"generation\": 1,"
       " \"text_embeddings\": false, \"parts\": [{\"id\": 0, \"count\": 2}]}\n", "count says 3"},
      {"parts out of order", "index.json",
       "{\"format\": \"clipcl-index\", \"version\": 2, \"model\": \"m\", \"dim\": 12, \"count\": 2, \"generation\": 1,"
       " \"text_embeddings\": false, \"parts\": [{\"id\": 1, \"count\": 1}, {\"id\": 0, \"count\": 1}]}\n", "ids rise"},
      {"missing part file", "index.json",
       "{\"format\": \"clipcl-index\", \"version\": 2, \"model\": \"m\", \"dim\": 12, \"count\": 2, \"generation\": 1,"
       " \"text_embeddings\": false, \"parts\": [{\"id\": 7, \"count\": 2}]}\n", "metadata_0007.csv: cannot open"},
      {"shape mismatch", "index.json",
       "{\"format\": \"clipcl-index\", \"version\": 2, \"model\": \"m\", \"dim\": 13, \"count\": 2, \"generation\": 1,"
       " \"text_embeddings\": false, \"parts\": [{\"id\": 0, \"count\": 2}]}\n", "expected float16 2 x 13"},
  };
  char *good_meta = read_text(bdir, "metadata/metadata_0000.csv"), *good_json = read_text(bdir, "index.json");
  for (size_t i = 0; i < sizeof dmg / sizeof *dmg; i++) {
    write_text(bdir, dmg[i].file, dmg[i].text);
    st = clipcl_index_load(bdir, &cx);
    th_assert(dmg[i].name, st != CLIPCL_OK && !cx && strstr(clipcl_last_error(), dmg[i].want), "status %d: %s", st,
              clipcl_last_error());
    write_text(bdir, "metadata/metadata_0000.csv", good_meta);
    write_text(bdir, "index.json", good_json);
  }
  write_text(bdir, "index.json", "{\"format\": \"something-else\"}\n");
  st = clipcl_index_save(small, bdir);
  th_assert("save does not overwrite a foreign index.json", st == CLIPCL_ERR_FORMAT, "status %d: %s", st,
            clipcl_last_error());
  write_text(bdir, "index.json", good_json);
  TH_OK(clipcl_index_load(bdir, &cx));
  clipcl_index_free(cx);
  /* rows that are not unit length */
  char pe[700];
  snprintf(pe, sizeof pe, "%s/img_emb/img_emb_0000.npy", bdir);
  FILE *f = fopen(pe, "r+b");
  unsigned char half2[2] = {0x00, 0x40}; /* 2.0 */
  if (f) {
    fseek(f, 128, SEEK_SET);
    fwrite(half2, 2, 1, f);
    fclose(f);
  }
  st = clipcl_index_load(bdir, &cx);
  th_assert("rows that are not unit length refused", st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "not normalised"),
            "status %d: %s", st, clipcl_last_error());
  free(good_meta), free(good_json);
  st = clipcl_index_load("/nonexistent/index", &cx);
  th_assert("missing index", st == CLIPCL_ERR_IO && strstr(clipcl_last_error(), "no index"), "status %d: %s", st,
            clipcl_last_error());
  clipcl_index *empty;
  TH_OK(clipcl_index_create("m", DIM, &empty));
  TH_OK(clipcl_index_search(empty, "m", q, 3, 1, hits, &nh));
  th_assert("empty index: no hits", nh == 0, "%d", nh);
  clipcl_index_free(empty);
  clipcl_index_free(small);
  clipcl_index_free(lx);
  clipcl_index_free(ix);
  for (int i = 0; i < n0; i++) free(paths[i]);
  free(paths);
  free(again), free(again_v), free(vals);
}

/* clip-retrieval's deduplication: A' is within 0.94 of A, C only of A' (so
 * transitively of A), B of none; hits in the order A, B, A', C keep A, B. */
static void check_dedup(void) {
  float e[4 * DIM] = {0};
  e[0] = 1;                                            /* A */
  e[DIM + 3] = 1;                                      /* B */
  e[2 * DIM] = 1, e[2 * DIM + 1] = 0.15f;              /* A': 0.989 to A */
  e[3 * DIM] = 1, e[3 * DIM + 1] = 0.45f, e[3 * DIM + 2] = 0.2f; /* C: 0.947 to A', 0.897 to A */
  const char *p[] = {"A", "B", "A2", "C"};
  clipcl_index *ix;
  TH_OK(clipcl_index_create("m", DIM, &ix));
  TH_OK(clipcl_index_add(ix, "m", p, e, 4, NULL));
  clipcl_search_hit h[4] = {{0, 1, "A"}, {1, .5f, "B"}, {2, .4f, "A2"}, {3, .3f, "C"}};
  int n = cc_search_dedup(ix, 0, h, 4, 0.94f);
  th_assert("dedup: near duplicates, transitively, keep the best", n == 2 && h[0].index == 0 && h[1].index == 1,
            "%d kept", n);
  clipcl_search_hit g[4] = {{3, 1, "C"}, {2, .9f, "A2"}, {1, .5f, "B"}, {0, .3f, "A"}};
  n = cc_search_dedup(ix, 0, g, 4, 0.94f);
  th_assert("dedup: the group keeps its first in rank order", n == 2 && g[0].index == 3 && g[1].index == 1, "%d kept", n);
  clipcl_search_hit k[4] = {{0, 1, "A"}, {1, .5f, "B"}, {2, .4f, "A2"}, {3, .3f, "C"}};
  n = cc_search_dedup(ix, 0, k, 4, 0.995f);
  th_assert("dedup: a higher threshold keeps all", n == 4, "%d kept", n);
  clipcl_index_free(ix);
}

/* FAISS over a few hundred clustered rows: HNSW and IVF find the exact top
 * hits, the indexes are saved, follow appends and are dropped by removals. */
static void check_faiss(const char *dir) {
  if (!clipcl_faiss_available()) {
    char f[64];
    clipcl_index *ix;
    TH_OK(clipcl_index_create("m", DIM, &ix));
    float e[DIM] = {1};
    const char *p[] = {"a"};
    TH_OK(clipcl_index_add(ix, "m", p, e, 1, NULL));
    clipcl_status st = clipcl_index_build_ann(ix, 0, "HNSW16", NULL);
    th_assert("without FAISS an index type is refused", st == CLIPCL_ERR_UNSUPPORTED, "status %d", st);
    TH_OK(clipcl_ann_choose(10, DIM, 0, f, sizeof f));
    clipcl_index_free(ix);
    return;
  }
  const int n = 600, C = 12;
  float *cent = th_alloc((size_t)C * DIM), *emb = th_alloc((size_t)n * DIM);
  for (int i = 0; i < C * DIM; i++) cent[i] = (float)th_normal();
  char **paths = malloc((size_t)n * sizeof *paths);
  for (int i = 0; i < n; i++) {
    for (int e = 0; e < DIM; e++) emb[i * DIM + e] = cent[(i % C) * DIM + e] + (float)(0.4 * th_normal());
    paths[i] = malloc(16);
    snprintf(paths[i], 16, "r%04d", i);
  }
  const char *types[] = {"HNSW16", "IVF8,Flat"};
  for (int t = 0; t < 2; t++) {
    clipcl_index *ix;
    TH_OK(clipcl_index_create("m", DIM, &ix));
    TH_OK(clipcl_index_add(ix, "m", (const char *const *)paths, emb, (size_t)n - 50, NULL));
    TH_OK(clipcl_index_build_ann(ix, 0, types[t], NULL));
    th_assert("factory recorded", clipcl_index_ann_factory(ix, 0) && !strcmp(clipcl_index_ann_factory(ix, 0), types[t]),
              "%s", types[t]);
    /* every 25th row as a query: approximate top-5 = exact top-5 with a generous search */
    const int nq = 22, k = 5;
    float *q = th_alloc((size_t)nq * DIM);
    for (int i = 0; i < nq; i++) memcpy(q + i * DIM, emb + (size_t)(25 * i) * DIM, DIM * sizeof *q);
    clipcl_search_hit a[nq * k], x[nq * k];
    int na[nq], nx[nq], used = 0;
    clipcl_query_options qa = {0, 0, 8, 200, 1}, qx = {0, 1, 0, 0, 1};
    TH_OK(clipcl_index_query(ix, q, nq, k, &qa, a, na, &used));
    TH_OK(clipcl_index_query(ix, q, nq, k, &qx, x, nx, NULL));
    int same = used == 1, self = 1;
    double dmax = 0;
    for (int i = 0; i < nq; i++) {
      same &= na[i] == k && nx[i] == k;
      self &= a[i * k].index == 25 * i;
      for (int r = 0; r < k && same; r++) {
        same &= a[i * k + r].index == x[i * k + r].index;
        dmax = fmax(dmax, fabs(a[i * k + r].score - x[i * k + r].score));
      }
    }
    th_assert(types[t], same && self && dmax < 1e-5, "top-5 as exact search, each row finds itself (score diff %.2g)",
              dmax);
    /* the search parameters reach FAISS: ef 1 / nprobe 1 find less of the exact top-5 */
    clipcl_query_options qs = {0, 0, 1, 1, 1};
    TH_OK(clipcl_index_query(ix, q, nq, k, &qs, a, na, &used));
    int found = 0;
    for (int i = 0; i < nq; i++)
      for (int r = 0; r < na[i]; r++)
        for (int j = 0; j < k; j++) found += a[i * k + r].index == x[i * k + j].index;
    th_assert(t ? "nprobe 1 finds less than nprobe 8" : "efSearch 1 finds less than efSearch 200", found < nq * k,
              "%d of %d", found, nq * k);
    /* saved with the index, reopened, extended by an append */
    char idir[600];
    snprintf(idir, sizeof idir, "%s/faiss%d", dir, t);
    TH_OK(clipcl_index_save(ix, idir));
    clipcl_index_free(ix);
    TH_OK(clipcl_index_open(idir, CLIPCL_INDEX_ANN, &ix));
    TH_OK(clipcl_index_query(ix, q, nq, k, &qa, a, na, &used));
    th_assert("reopened FAISS index answers the same", used == 1 && a[k].index == x[k].index, NULL);
    TH_OK(clipcl_index_add(ix, "m", (const char *const *)paths + n - 50, emb + (size_t)(n - 50) * DIM, 50, NULL));
    TH_OK(clipcl_index_save(ix, idir));
    clipcl_index_free(ix);
    TH_OK(clipcl_index_open(idir, CLIPCL_INDEX_ANN, &ix));
    memcpy(q, emb + (size_t)(n - 3) * DIM, DIM * sizeof *q);
    TH_OK(clipcl_index_query(ix, q, 1, 1, &qa, a, na, &used));
    th_assert("an appended row is found through FAISS after save", used == 1 && na[0] == 1 && a[0].index == n - 3,
              "row %lld", (long long)a[0].index);
    clipcl_index_free(ix);
    /* opened without it: exact with embeddings; removal drops it */
    TH_OK(clipcl_index_load(idir, &ix));
    TH_OK(clipcl_index_query(ix, q, 1, 1, NULL, a, na, &used));
    th_assert("not loaded: exact search", used == 0 && a[0].index == n - 3, NULL);
    uint8_t *drop = calloc((size_t)n, 1);
    drop[1] = 1;
    TH_OK(clipcl_index_remove(ix, drop, NULL));
    free(drop);
    TH_OK(clipcl_index_save(ix, idir));
    clipcl_index_free(ix);
    TH_OK(clipcl_index_open(idir, CLIPCL_INDEX_ANN, &ix));
    char *js = read_text(idir, "index.json");
    th_assert("removal drops the FAISS index and its file", !clipcl_index_ann_factory(ix, 0) && js &&
              !strstr(js, ".index\""), NULL);
    free(js);
    clipcl_index_free(ix);
  }
  /* efSearch past FAISS's default of 16 takes effect: on structureless rows
   * HNSW8 with ef 400 finds the exact top-10, with ef 10 it does not */
  {
    const int un = 3000, uq = 40, uk = 10;
    float *ue = th_alloc((size_t)un * DIM), *uqv = th_alloc((size_t)uq * DIM);
    for (int i = 0; i < un * DIM; i++) ue[i] = (float)th_normal();
    for (int i = 0; i < uq * DIM; i++) uqv[i] = (float)th_normal();
    char **up = malloc((size_t)un * sizeof *up);
    for (int i = 0; i < un; i++) {
      up[i] = malloc(16);
      snprintf(up[i], 16, "u%05d", i);
    }
    clipcl_index *ux;
    TH_OK(clipcl_index_create("m", DIM, &ux));
    TH_OK(clipcl_index_add(ux, "m", (const char *const *)up, ue, (size_t)un, NULL));
    TH_OK(clipcl_index_build_ann(ux, 0, "HNSW8", NULL));
    clipcl_search_hit *ex = malloc((size_t)uq * uk * sizeof *ex), *ap = malloc((size_t)uq * uk * sizeof *ap);
    int nex[uq], nap[uq], found[2] = {0, 0};
    clipcl_query_options qx = {0, 1, 0, 0, 1};
    TH_OK(clipcl_index_query(ux, uqv, uq, uk, &qx, ex, nex, NULL));
    for (int e = 0; e < 2; e++) {
      clipcl_query_options qe = {0, 0, 0, e ? 400 : 10, 1};
      TH_OK(clipcl_index_query(ux, uqv, uq, uk, &qe, ap, nap, NULL));
      for (int i = 0; i < uq; i++)
        for (int r = 0; r < nap[i]; r++)
          for (int j = 0; j < uk; j++) found[e] += ap[i * uk + r].index == ex[i * uk + j].index;
    }
    th_assert("efSearch 400 finds the exact top-10, efSearch 10 less", found[1] >= uq * uk * 99 / 100 && found[0] < found[1],
              "ef 10: %d, ef 400: %d of %d", found[0], found[1], uq * uk);
    free(ex), free(ap);
    for (int i = 0; i < un; i++) free(up[i]);
    free(up);
    clipcl_index_free(ux);
  }
  clipcl_index *ix;
  TH_OK(clipcl_index_create("m", DIM, &ix));
  TH_OK(clipcl_index_add(ix, "m", (const char *const *)paths, emb, 10, NULL));
  clipcl_status st = clipcl_index_build_ann(ix, 0, "IVF64,Flat", NULL);
  th_assert("IVF with more clusters than rows is refused", st == CLIPCL_ERR_ARG, "status %d: %s", st, clipcl_last_error());
  st = clipcl_index_build_ann(ix, 0, "NoSuchIndex", NULL);
  th_assert("an unknown factory string is refused", st == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "NoSuchIndex"),
            "status %d: %s", st, clipcl_last_error());
  clipcl_index_free(ix);
  for (int i = 0; i < n; i++) free(paths[i]);
  free(paths);
}

/* A results page for test_search_html.sh: the first ten tricky paths
 * (the ones it knows), an absolute one, a base directory for the relative
 * ones. */
#define NHTML 10
static int html_mode(const char *dir) {
  clipcl_search_hit hits[NHTML + 1];
  for (int i = 0; i < NHTML; i++) hits[i] = (clipcl_search_hit){i, 0.9f - 0.05f * i, tricky[i]};
  hits[NHTML] = (clipcl_search_hit){NHTML, 0.1f, "/abs/path/x y.png"};
  char path[600];
  snprintf(path, sizeof path, "%s/page.html", dir);
  TH_OK(clipcl_search_write_html(path, "query: \"red <circle>\" & more", hits, NHTML + 1, "../images"));
  snprintf(path, sizeof path, "%s/page_abs.html", dir);
  TH_OK(clipcl_search_write_html(path, "absolute base", hits, 3, "/data/set one"));
  return th_finish(NULL);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "html")) return html_mode(argv[2]);
  char dir[] = "/tmp/clipcl_test_index_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  paths_and_helpers();
  check_index(dir);
  check_dedup();
  check_faiss(dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return th_finish(NULL);
}

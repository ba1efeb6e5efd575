/* test_data_tar.c: WebDataset tar shards (src/data/source_tar.c) and the
 * loader over them. Shards are written here with libarchive: grouping by key
 * (directories in keys, upper-case suffixes, a repeated suffix starting a new
 * sample, multi-dot suffixes, skipped directories / meta / hidden / dotless
 * names), captions from txt or a json member's "caption" (txt wins), the bad
 * samples (no image, no caption, WebP, json without a caption), a gzip'd
 * shard, a garbage shard, a missing shard, shard sizes from sizes.json and
 * __len__, and a shard cut at every 512-byte boundary (read up to the cut,
 * the cut reported once with the shard's name, nothing after it). Loader:
 * every sample exactly once per epoch through the shuffle buffer, same seed
 * -> identical batches with 1 and 4 workers, another epoch -> another order,
 * seek -> identical following batches, evaluation in file order.
 * No device needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "data_testutil.h"

#define IMG "data/images/"
static char dir[512];
static unsigned char *jpg, *png;
static size_t jpg_len, png_len;

typedef struct {
  const char *key;
  const char *caption; /* NULL: expect a bad sample */
  const char *ext;
  const char *bad_part;
} want_sample;

static void read_all(const char *name, const char *shard, const want_sample *w, int nw) {
  cc_tar_reader *r;
  if (cc_tar_reader_open(shard, &r) != CLIPCL_OK) dt_die("reader");
  int i = 0, ok = 1;
  cc_tar_sample s;
  int got;
  while ((got = cc_tar_next(r, &s)) == 1) {
    char what[256];
    snprintf(what, sizeof what, "%s #%d key %s", name, i, s.key);
    if (i >= nw) {
      ok = th_assert(what, 0, "unexpected extra sample (bad: %s)", s.bad ? s.bad : "no");
    } else if (w[i].caption) {
      ok &= th_assert(what,
                      !s.bad && strcmp(s.key, w[i].key) == 0 && s.caption && strcmp(s.caption, w[i].caption) == 0 &&
                          strcmp(s.image_ext, w[i].ext) == 0 && s.image && s.image_len > 0,
                      "bad=%s caption=%s ext=%s", s.bad ? s.bad : "-", s.caption ? s.caption : "-", s.image_ext);
    } else {
      ok &= th_assert(what, s.bad && strcmp(s.key, w[i].key) == 0 && strstr(s.bad, w[i].bad_part), "bad=%s",
                      s.bad ? s.bad : "(good)");
    }
    cc_tar_sample_clear(&s);
    i++;
  }
  th_assert(name, got == 0 && i == nw, "%d samples, want %d", i, nw);
  cc_tar_reader_free(r);
}

static void grouping(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/group.tar", dir);
  struct archive *a = dt_tar_begin(path, 0);
  dt_tar_add(a, "000.jpg", jpg, jpg_len);
  dt_tar_add_str(a, "000.txt", "a cat");
  dt_tar_add(a, "001.png", png, png_len);
  dt_tar_add_str(a, "001.json", "{\"caption\": \"from \\u00e9 json\", \"url\": \"x\"}");
  dt_tar_add(a, "002.jpg", jpg, jpg_len);
  dt_tar_add_str(a, "002.json", "{\"caption\": \"json loses\"}");
  dt_tar_add_str(a, "002.txt", "txt wins");
  dt_tar_add_dir(a, "sub/");
  dt_tar_add(a, "sub/003.PNG", png, png_len);
  dt_tar_add_str(a, "sub/003.TXT", "upper case suffixes");
  dt_tar_add_str(a, "__index__", "{}");
  dt_tar_add_str(a, "noextension", "x");
  dt_tar_add_str(a, ".hidden.txt", "x");
  dt_tar_add_str(a, "004.txt", "caption without image");
  dt_tar_add_str(a, "005.webp", "RIFF....WEBP");
  dt_tar_add_str(a, "005.txt", "webp only");
  dt_tar_add(a, "006.png", png, png_len);
  dt_tar_add(a, "007.png", png, png_len);
  dt_tar_add_str(a, "007.json", "{\"other\": 1}");
  dt_tar_add(a, "008.seg.png", png, png_len);
  dt_tar_add(a, "008.jpg", jpg, jpg_len);
  dt_tar_add(a, "008.png", png, png_len);
  dt_tar_add_str(a, "008.txt", "jpg preferred over png");
  dt_tar_add(a, "009.png", png, png_len);
  dt_tar_add_str(a, "009.txt", "first");
  dt_tar_add_str(a, "009.txt", "repeated suffix starts a new sample");
  dt_tar_add(a, "./010.png", png, png_len);
  dt_tar_add_str(a, "./010.txt", "leading ./ dropped");
  dt_tar_add(a, "011.png", png, png_len);
  dt_tar_add_str(a, "011.json", "{\"caption\": ");
  dt_tar_end(a);
  const want_sample w[] = {
      {"000", "a cat", "jpg", NULL},
      {"001", "from \xc3\xa9 json", "png", NULL},
      {"002", "txt wins", "jpg", NULL},
      {"sub/003", "upper case suffixes", "png", NULL},
      {"004", NULL, NULL, "no image member"},
      {"005", NULL, NULL, "WebP images are not supported"},
      {"006", NULL, NULL, "no caption member"},
      {"007", NULL, NULL, "no string \"caption\""},
      {"008", "jpg preferred over png", "jpg", NULL},
      {"009", "first", "png", NULL},
      {"009", NULL, NULL, "no image member"},
      {"010", "leading ./ dropped", "png", NULL},
      {"011", NULL, NULL, "json member"},
  };
  read_all("grouping", path, w, (int)(sizeof w / sizeof *w));

  /* the same through gzip */
  snprintf(path, sizeof path, "%s/gz.tar.gz", dir);
  a = dt_tar_begin(path, 1);
  dt_tar_add(a, "k1.png", png, png_len);
  dt_tar_add_str(a, "k1.txt", "gzip one");
  dt_tar_add(a, "k2.jpg", jpg, jpg_len);
  dt_tar_add_str(a, "k2.txt", "gzip two");
  dt_tar_end(a);
  const want_sample wg[] = {{"k1", "gzip one", "png", NULL}, {"k2", "gzip two", "jpg", NULL}};
  read_all("gzip shard", path, wg, 2);

  /* not a tar, and no file at all: one bad sample each, naming the problem */
  snprintf(path, sizeof path, "%s/garbage.tar", dir);
  unsigned char junk[3000];
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 7 + 3);
  dt_write(path, junk, sizeof junk);
  const want_sample wj[] = {{"", NULL, NULL, ""}};
  read_all("garbage shard", path, wj, 1);
  snprintf(path, sizeof path, "%s/absent.tar", dir);
  const want_sample wm[] = {{"", NULL, NULL, "cannot open shard"}};
  read_all("missing shard", path, wm, 1);
}

/* A shard of n samples "sNNNNN" with a png (side about `side`) and the
 * caption "sample N" each. */
static void write_numbered_ex(const char *path, int n, int first, int side, int gzip) {
  struct archive *a = dt_tar_begin(path, gzip);
  for (int i = 0; i < n; i++) {
    char name[64], cap[64];
    clipcl_image img;
    dt_make_image(&img, side + i % 7, side - 4 + i % 5, (uint32_t)(first + i));
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/tmp.png", dir);
    if (clipcl_image_save_png(tmp, &img) != CLIPCL_OK) dt_die("png");
    clipcl_image_free(&img);
    size_t len;
    unsigned char *d = dt_read(tmp, &len);
    snprintf(name, sizeof name, "s%05d.png", first + i);
    dt_tar_add(a, name, d, len);
    free(d);
    snprintf(name, sizeof name, "s%05d.txt", first + i);
    snprintf(cap, sizeof cap, "sample %d", first + i);
    dt_tar_add_str(a, name, cap);
  }
  dt_tar_end(a);
}

static void write_numbered(const char *path, int n, int first) { write_numbered_ex(path, n, first, 20, 0); }

static void cut_shards(void) {
  char full[1024], cut[1024];
  snprintf(full, sizeof full, "%s/full.tar", dir);
  snprintf(cut, sizeof cut, "%s/cut.tar", dir);
  const int n = 12;
  write_numbered(full, n, 0);
  size_t len;
  unsigned char *d = dt_read(full, &len);
  /* where the last member's data ends: from there on only zero blocks */
  size_t data_end = len;
  while (data_end > 0 && d[data_end - 1] == 0) data_end--;
  int cuts = 0, all_ok = 1, saw_partial = 0;
  for (size_t c = 0; c < data_end; c += 512) {
    dt_write(cut, d, c);
    cc_tar_reader *r;
    if (cc_tar_reader_open(cut, &r) != CLIPCL_OK) dt_die("reader");
    cc_tar_sample s;
    int good = 0, bad = 0, order_ok = 1, got;
    char lastbad[1100] = "";
    while ((got = cc_tar_next(r, &s)) == 1) {
      if (s.bad) {
        bad++;
        snprintf(lastbad, sizeof lastbad, "%s", s.bad);
      } else {
        char k[32], cap[32];
        snprintf(k, sizeof k, "s%05d", good);
        snprintf(cap, sizeof cap, "sample %d", good);
        if (bad || strcmp(s.key, k) || strcmp(s.caption, cap)) order_ok = 0;
        good++;
      }
      cc_tar_sample_clear(&s);
    }
    cc_tar_reader_free(r);
    /* the samples before the cut stand, in order; the cut is reported once,
     * as the last thing read (an empty file is just an empty shard) */
    int ok = got == 0 && order_ok && good < n && (c == 0 ? bad <= 1 : bad == 1);
    if (ok && c > 0) ok = strstr(lastbad, "damaged or cut") != NULL || strstr(lastbad, "runcated") != NULL;
    if (!ok) {
      th_assert("cut shard", 0, "cut at %zu of %zu: good %d bad %d order %d last bad: %s", c, len, good, bad, order_ok,
                lastbad);
      all_ok = 0;
    }
    if (good > 0 && good < n - 1) saw_partial = 1;
    cuts++;
  }
  free(d);
  th_assert("cut shard at every 512-byte boundary", all_ok && saw_partial, "%d cuts of a %zu-byte shard", cuts, len);

  /* gzip'd: the decompressor reports the cut; libarchive drops what is left
   * in its output buffer (up to 64 KiB) before it, so only "some samples
   * in order, then one bad one" holds */
  snprintf(full, sizeof full, "%s/full.tar.gz", dir);
  snprintf(cut, sizeof cut, "%s/cut.tar.gz", dir);
  write_numbered_ex(full, 60, 0, 48, 1);
  d = dt_read(full, &len);
  dt_write(cut, d, len / 2);
  free(d);
  cc_tar_reader *r;
  if (cc_tar_reader_open(cut, &r) != CLIPCL_OK) dt_die("reader");
  cc_tar_sample s;
  int good = 0, bad = 0, order_ok = 1;
  char lastbad[1100] = "";
  while (cc_tar_next(r, &s) == 1) {
    if (s.bad) {
      bad++;
      snprintf(lastbad, sizeof lastbad, "%s", s.bad);
    } else {
      char k[32];
      snprintf(k, sizeof k, "s%05d", good);
      if (bad || strcmp(s.key, k)) order_ok = 0;
      good++;
    }
    cc_tar_sample_clear(&s);
  }
  cc_tar_reader_free(r);
  th_assert("cut gzip shard", good > 5 && good < 30 && bad == 1 && order_ok && strstr(lastbad, "gzip"),
            "good %d bad %d (%s), shard %zu bytes", good, bad, lastbad, len);
}

static void sizes(void) {
  char sub[600], p[1100];
  snprintf(sub, sizeof sub, "%s/sized", dir);
  dt_mkdir(sub);
  snprintf(p, sizeof p, "%s/shard-0.tar", sub);
  write_numbered(p, 3, 0);
  snprintf(p, sizeof p, "%s/shard-1.tar", sub);
  write_numbered(p, 4, 3);
  char spec[1400];
  snprintf(spec, sizeof spec, "%s/shard-{0..1}.tar", sub);
  clipcl_dataset *ds = NULL;
  TH_OK(clipcl_dataset_open(spec, NULL, &ds));
  th_assert("no size file: unknown size", clipcl_dataset_size(ds) == -1 && clipcl_dataset_num_shards(ds) == 2 &&
                                               clipcl_dataset_kind(ds) == CLIPCL_DATA_TAR, NULL);
  clipcl_dataset_free(ds);
  snprintf(p, sizeof p, "%s/__len__", sub);
  dt_write_str(p, "7\n");
  TH_OK(clipcl_dataset_open(spec, NULL, &ds));
  th_assert("__len__ size", clipcl_dataset_size(ds) == 7, "%lld", (long long)clipcl_dataset_size(ds));
  clipcl_dataset_free(ds);
  snprintf(p, sizeof p, "%s/sizes.json", sub);
  dt_write_str(p, "{\"shard-0.tar\": 3, \"shard-1.tar\": \"4\", \"other.tar\": 100}");
  TH_OK(clipcl_dataset_open(spec, NULL, &ds));
  th_assert("sizes.json size", clipcl_dataset_size(ds) == 7, "%lld", (long long)clipcl_dataset_size(ds));
  clipcl_dataset_free(ds);
  /* a single .tar name and a "::" list are tar specs too */
  snprintf(spec, sizeof spec, "%s/shard-0.tar::%s/shard-1.tar", sub, sub);
  TH_OK(clipcl_dataset_open(spec, NULL, &ds));
  th_assert(":: list", clipcl_dataset_num_shards(ds) == 2 && clipcl_dataset_size(ds) == 7, NULL);
  clipcl_dataset_free(ds);
  snprintf(spec, sizeof spec, "%s/nothing-{0..3}.tar", sub);
  clipcl_status s = clipcl_dataset_open(spec, NULL, &ds);
  th_assert("no shard exists", s == CLIPCL_ERR_IO && strstr(clipcl_last_error(), "none of its 4 shard(s)"), "%s",
            clipcl_last_error());
}

/* ---- loader over shards ------------------------------------------------------ */
static clipcl_tokenizer *tok;

/* The sample number in "sample N" from a row of ids (-1 if not that); the
 * tokenizer splits numbers into digits, which decode as "1 0". */
static int sample_number(const int32_t *ids, int ctx) {
  char text[256], digits[32];
  if (clipcl_detokenize(tok, ids, ctx, CLIPCL_DETOK_TEXT_ONLY, text, sizeof text, NULL) != CLIPCL_OK) return -1;
  if (strncmp(text, "sample ", 7) != 0) return -1;
  size_t n = 0;
  for (const char *p = text + 7; *p && n < sizeof digits - 1; p++) {
    if (*p == ' ') continue;
    if (*p < '0' || *p > '9') return -1;
    digits[n++] = *p;
  }
  digits[n] = 0;
  return n ? atoi(digits) : -1;
}

typedef struct {
  int count;
  char last[1024];
} bad_log;

static void on_bad(void *user, const clipcl_bad_sample *b) {
  bad_log *g = user;
  g->count++;
  snprintf(g->last, sizeof g->last, "%s | %s", b->source, b->reason);
}

static void loader(void) {
  char sub[1024], p[1100], spec[1200];
  snprintf(sub, sizeof sub, "%s/ld", dir);
  dt_mkdir(sub);
  const int per = 9, nshards = 5, total = per * nshards;
  for (int i = 0; i < nshards; i++) {
    snprintf(p, sizeof p, "%s/part-%03d.tar", sub, i);
    write_numbered(p, per, i * per);
  }
  snprintf(spec, sizeof spec, "%s/part-{000..004}.tar", sub);
  clipcl_dataset *ds = NULL;
  TH_OK(clipcl_dataset_open(spec, NULL, &ds));
  const int B = 4, S = 16, ctx = 16;
  clipcl_loader_options o;
  clipcl_loader_options_init(&o);
  o.batch_size = B;
  o.image_size = S;
  o.context_length = ctx;
  o.tokenizer = tok;
  o.seed = 1234;
  o.shuffle_buffer = 10;
  o.workers = 1;

  /* one epoch: 45 samples, 11 full batches, then n = 0 */
  clipcl_loader *l = dt_loader(ds, &o);
  dt_run a;
  TH_OK(dt_record(l, B, S, ctx, 24, &a));
  int seen[64] = {0}, zero_at = -1, bad_ids = 0;
  for (int i = 0; i < 12; i++) {
    if (a.n[i] == 0) {
      if (zero_at < 0) zero_at = i;
      continue;
    }
    for (int j = 0; j < a.n[i]; j++) {
      int v = sample_number(a.ids + ((size_t)i * B + j) * ctx, ctx);
      if (v < 0 || v >= total) bad_ids++;
      else seen[v]++;
    }
  }
  int once = 1, dropped = 0;
  for (int v = 0; v < total; v++) {
    if (seen[v] > 1) once = 0;
    if (seen[v] == 0) dropped++;
  }
  th_assert("tar epoch: each sample at most once, partial batch dropped", zero_at == 11 && once && dropped == 1 &&
                                                                            bad_ids == 0,
            "end at %d, dropped %d, bad ids %d", zero_at, dropped, bad_ids);
  int in_order = 1;
  for (int i = 0; i < 11 && in_order; i++)
    for (int j = 0; j < B; j++)
      if (sample_number(a.ids + ((size_t)i * B + j) * ctx, ctx) != i * B + j) in_order = 0;
  th_assert("tar epoch is shuffled", !in_order, NULL);
  int same_order = 1;
  for (int i = 0; i < 11; i++)
    for (int j = 0; j < B; j++)
      if (sample_number(a.ids + ((size_t)i * B + j) * ctx, ctx) !=
          sample_number(a.ids + ((size_t)(i + 12) * B + j) * ctx, ctx))
        same_order = 0;
  th_assert("tar: next epoch in another order", !same_order && a.epoch[12] == 1 && a.n[23] == 0, NULL);
  clipcl_loader_free(l);

  /* 4 workers, small prefetch: byte-identical */
  o.workers = 4;
  o.prefetch_batches = 1;
  l = dt_loader(ds, &o);
  dt_run b;
  TH_OK(dt_record(l, B, S, ctx, 24, &b));
  dt_same_runs("tar: 1 and 4 workers give identical batches", &a, &b);
  dt_run_free(&b);

  /* seek back to a saved position (inside the shuffle) and replay */
  clipcl_loader_free(l);
  l = dt_loader(ds, &o);
  dt_run head, tail1, tail2;
  TH_OK(dt_record(l, B, S, ctx, 5, &head));
  clipcl_loader_pos pos;
  TH_OK(clipcl_loader_get_pos(l, &pos));
  TH_OK(dt_record(l, B, S, ctx, 10, &tail1));
  clipcl_loader *l2 = dt_loader(ds, &o);
  TH_OK(clipcl_loader_seek(l2, &pos));
  TH_OK(dt_record(l2, B, S, ctx, 10, &tail2));
  dt_same_runs("tar: seek in a fresh loader replays the batches", &tail1, &tail2);
  th_assert("tar: position after 5 batches", pos.epoch == 0 && pos.index == 20 && pos.samples_seen == 20, "%lld %lld",
            (long long)pos.epoch, (long long)pos.index);
  int match_a = !memcmp(tail1.images, a.images + (size_t)5 * B * tail1.plane, (size_t)10 * B * tail1.plane * 4);
  th_assert("tar: the replay matches the uninterrupted run", match_a, NULL);
  dt_run_free(&tail2);
  TH_OK(clipcl_loader_seek(l, &pos)); /* the same loader, back in time */
  TH_OK(dt_record(l, B, S, ctx, 10, &tail2));
  dt_same_runs("tar: seek back in the same loader", &tail1, &tail2);
  dt_run_free(&head), dt_run_free(&tail1), dt_run_free(&tail2);
  clipcl_loader_free(l);
  clipcl_loader_free(l2);

  /* evaluation: file order, every sample, the short last batch kept */
  o.training = 0;
  o.augment = 0;
  l = dt_loader(ds, &o);
  dt_run e;
  TH_OK(dt_record(l, B, S, ctx, 13, &e));
  int k = 0, eval_ok = 1;
  for (int i = 0; i < 12; i++)
    for (int j = 0; j < e.n[i]; j++)
      if (sample_number(e.ids + ((size_t)i * B + j) * ctx, ctx) != k++) eval_ok = 0;
  th_assert("tar eval: file order, partial batch kept, then the end", eval_ok && k == total && e.n[11] == 1 &&
                                                                         e.n[12] == 0,
            "%d samples", k);
  dt_run_free(&e);
  clipcl_loader_free(l);
  clipcl_dataset_free(ds);

  /* a cut shard among good ones: the samples before the cut are used, the
   * cut is reported once per epoch with the shard's name */
  char full[1100];
  snprintf(full, sizeof full, "%s/part-002.tar", sub);
  size_t len;
  unsigned char *d = dt_read(full, &len);
  dt_write(full, d, len / 2);
  free(d);
  TH_OK(clipcl_dataset_open(spec, NULL, &ds));
  o.training = 1;
  o.augment = 1;
  o.max_bad_fraction = 0.1;
  bad_log g = {0, ""};
  o.on_bad = on_bad;
  o.user = &g;
  l = dt_loader(ds, &o);
  dt_run c;
  TH_OK(dt_record(l, B, S, ctx, 12, &c));
  int good = 0, end = -1;
  for (int i = 0; i < 12; i++) {
    if (c.n[i] == 0 && end < 0) end = i;
    if (end < 0) good += c.n[i];
  }
  th_assert("cut shard in a run: reported once with the shard name",
            g.count == 1 && strstr(g.last, "part-002.tar") && strstr(g.last, "damaged or cut"), "%d reports, last: %s",
            g.count, g.last);
  th_assert("cut shard in a run: the other samples train", end > 0 && good >= total - per - (B - 1), "%d good before the end",
            good);
  dt_run_free(&c);
  dt_run_free(&a);
  clipcl_loader_free(l);
  clipcl_dataset_free(ds);

  /* a member name with a line break still gives a one-line report */
  snprintf(p, sizeof p, "%s/ctl.tar", sub);
  struct archive *w = dt_tar_begin(p, 0);
  dt_tar_add(w, "ok.png", png, png_len);
  dt_tar_add_str(w, "ok.txt", "sample 1");
  dt_tar_add_str(w, "we\nird.txt", "caption without image");
  dt_tar_end(w);
  TH_OK(clipcl_dataset_open(p, NULL, &ds));
  o.training = 0;
  o.max_bad_fraction = 0.5;
  memset(&g, 0, sizeof g);
  l = dt_loader(ds, &o);
  TH_OK(dt_record(l, B, S, ctx, 2, &c));
  th_assert("control characters in a report become '?'",
            g.count == 1 && strstr(g.last, "key we?ird |") && !strchr(g.last, '\n') && c.n[0] == 1, "%s", g.last);
  dt_run_free(&c);
  clipcl_loader_free(l);
  clipcl_dataset_free(ds);
}

int main(void) {
  dt_tmpdir(dir, sizeof dir);
  jpg = dt_read(IMG "jpg_rgb_45x31.jpg", &jpg_len);
  png = dt_read(IMG "png_grey8_33x65.png", &png_len);
  TH_OK(clipcl_tokenizer_create(&tok));
  grouping();
  cut_shards();
  sizes();
  loader();
  clipcl_tokenizer_free(tok);
  free(jpg);
  free(png);
  dt_rm_rf(dir);
  return th_finish(NULL);
}

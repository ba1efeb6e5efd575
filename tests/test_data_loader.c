/* test_data_loader.c: the threaded loader (src/data/loader.c) over CSV
 * manifests. Content: token ids equal clipcl_tokenize of each row's caption;
 * evaluation pixels bit-identical to clipcl_image_preprocess of the file;
 * training pixels equal RandomResizedCrop drawn from the documented seed
 * (seed, epoch, index in the epoch). Order: every row exactly once per epoch
 * (partial batch dropped when training, kept when evaluating), another
 * epoch or seed -> another order, the same seed -> the same order.
 * Determinism: 1 and 4 workers with different prefetch depths give
 * byte-identical batches over three epochs. Resume: a position saved
 * mid-epoch, at an epoch's end and after it, restored in a fresh loader,
 * reproduces the following batches. Bad samples: a manifest with a missing
 * file, a corrupt JPEG, an empty caption, a non-UTF-8 caption and a row with
 * too many fields trains on the good rows and reports each bad one with its
 * line and row; max_bad_fraction stops next() with a clear, repeated error;
 * an epoch without one full batch is an error. No device needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "data_testutil.h"

#define IMG "data/images/"
static char dir[512];
static clipcl_tokenizer *tok;
enum { B = 8, S = 24, CTX = 20 };

/* A manifest of n rows over images img/iK.png (K < 40): caption "a photo of
 * item <K spelled>"; `bad` receives the row body for special rows. */
static void write_manifest(const char *path, int n, const char *(*special)(int row)) {
  FILE *f = fopen(path, "wb");
  if (!f) dt_die(path);
  fprintf(f, "filepath,title\n");
  static const char *w[] = {"red", "green", "blue", "cyan", "gold", "pink", "gray", "teal"};
  for (int i = 0; i < n; i++) {
    const char *sp = special ? special(i) : NULL;
    if (sp)
      fprintf(f, "%s\n", sp);
    else
      fprintf(f, "img/i%d.png,\"a photo of the %s %s item, number %d\"\n", i % 40, w[i % 8], w[(i / 8) % 8], i);
  }
  fclose(f);
}

static clipcl_dataset *open_ds(const char *path) {
  clipcl_dataset *ds = NULL;
  TH_OK(clipcl_dataset_open(path, NULL, &ds));
  return ds;
}

static void base_opts(clipcl_loader_options *o) {
  clipcl_loader_options_init(o);
  o->batch_size = B;
  o->image_size = S;
  o->context_length = CTX;
  o->tokenizer = tok;
  o->seed = 42;
  o->workers = 2;
}

typedef struct {
  int n;
  char src[16][512], why[16][512];
  int64_t epoch[16], index[16];
} bad_log;

static void on_bad(void *user, const clipcl_bad_sample *b) {
  bad_log *g = user;
  if (g->n < 16) {
    snprintf(g->src[g->n], sizeof g->src[0], "%s", b->source);
    snprintf(g->why[g->n], sizeof g->why[0], "%s", b->reason);
    g->epoch[g->n] = b->epoch;
    g->index[g->n] = b->index;
  }
  g->n++;
}

/* ---- content and order ---------------------------------------------------- */
static void content_and_order(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/train.csv", dir);
  write_manifest(path, 40, NULL);
  clipcl_dataset *ds = open_ds(path);
  clipcl_loader_options o;
  base_opts(&o);
  o.training = 0;
  o.augment = 0;
  clipcl_loader *l = dt_loader(ds, &o);
  dt_run r;
  TH_OK(dt_record(l, B, S, CTX, 6, &r));
  int ok_rows = 1, ok_ids = 1, ok_px = 1;
  float *want = malloc((size_t)3 * S * S * sizeof *want);
  int32_t ids[CTX];
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < B; j++) {
      size_t at = (size_t)i * B + j;
      int64_t row = r.rows[at];
      if (row != (int64_t)at) ok_rows = 0;
      TH_OK(clipcl_tokenize(tok, clipcl_dataset_caption(ds, row), CTX, ids, NULL));
      if (memcmp(ids, r.ids + at * CTX, sizeof ids)) ok_ids = 0;
      char p[1024];
      clipcl_image img;
      TH_OK(clipcl_image_load(clipcl_dataset_image_path(ds, row, p, sizeof p), &img));
      TH_OK(clipcl_image_preprocess(&img, S, want));
      clipcl_image_free(&img);
      if (memcmp(want, r.images + at * r.plane, r.plane * sizeof(float))) ok_px = 0;
    }
  th_assert("eval: rows in file order, then the end", ok_rows && r.n[4] == B && r.n[5] == 0, NULL);
  th_assert("eval: ids = clipcl_tokenize(caption)", ok_ids, NULL);
  th_assert("eval: pixels = clipcl_image_preprocess(file)", ok_px, NULL);
  int64_t seen, bad;
  clipcl_loader_counters(l, &seen, &bad);
  th_assert("eval counters", seen == 40 && bad == 0, "%lld %lld", (long long)seen, (long long)bad);
  dt_run_free(&r);
  clipcl_loader_free(l);

  /* training: seeded order, each row once per epoch, crops from the seed */
  base_opts(&o);
  l = dt_loader(ds, &o);
  TH_OK(dt_record(l, B, S, CTX, 12, &r));
  int once = 1, crops = 1, differs_from_eval = 0;
  for (int e = 0; e < 2; e++) {
    int count[40] = {0};
    for (int i = 0; i < 5; i++)
      for (int j = 0; j < B; j++) {
        size_t at = (size_t)(e * 6 + i) * B + j;
        int64_t row = r.rows[at];
        if (row < 0 || row >= 40 || r.epoch[e * 6 + i] != e) {
          once = 0;
          continue;
        }
        count[row]++;
        char p[1024];
        clipcl_image img;
        TH_OK(clipcl_image_load(clipcl_dataset_image_path(ds, row, p, sizeof p), &img));
        uint64_t rng = cc_data_seed(42, 4, (uint64_t)e, (uint64_t)(i * B + j));
        TH_OK(clipcl_image_random_resized_crop(&img, S, &rng, want));
        if (memcmp(want, r.images + at * r.plane, r.plane * sizeof(float))) crops = 0;
        TH_OK(clipcl_image_preprocess(&img, S, want));
        if (memcmp(want, r.images + at * r.plane, r.plane * sizeof(float))) differs_from_eval++;
        clipcl_image_free(&img);
      }
    for (int k = 0; k < 40; k++)
      if (count[k] != 1) once = 0;
    if (r.n[e * 6 + 5] != 0) once = 0;
  }
  th_assert("train: every row exactly once per epoch, then n = 0", once, NULL);
  th_assert("train: crops drawn from (seed, epoch, index)", crops, NULL);
  th_assert("train: augmented pixels differ from the eval crop", differs_from_eval >= 70, "%d of 80", differs_from_eval);
  int same = 1, in_order = 1;
  for (int k = 0; k < 40; k++) {
    if (r.rows[k] != r.rows[6 * B + k]) same = 0;
    if (r.rows[k] != k) in_order = 0;
  }
  th_assert("train: shuffled, and epoch 1 in another order than epoch 0", !same && !in_order, NULL);
  clipcl_loader_free(l);

  /* same seed, same order; another seed, another order */
  dt_run r2;
  l = dt_loader(ds, &o);
  TH_OK(dt_record(l, B, S, CTX, 6, &r2));
  th_assert("train: same seed, same batches", !memcmp(r.rows, r2.rows, 40 * sizeof(int64_t)) &&
                                                  !memcmp(r.images, r2.images, 40 * r.plane * sizeof(float)),
            NULL);
  clipcl_loader_free(l);
  dt_run_free(&r2);
  o.seed = 43;
  l = dt_loader(ds, &o);
  TH_OK(dt_record(l, B, S, CTX, 6, &r2));
  th_assert("train: another seed, another order", memcmp(r.rows, r2.rows, 40 * sizeof(int64_t)) != 0, NULL);
  clipcl_loader_free(l);
  dt_run_free(&r2);
  dt_run_free(&r);
  clipcl_dataset_free(ds);

  /* 43 rows: training drops the partial batch, evaluation keeps it */
  snprintf(path, sizeof path, "%s/odd.csv", dir);
  write_manifest(path, 43, NULL);
  ds = open_ds(path);
  base_opts(&o);
  l = dt_loader(ds, &o);
  TH_OK(dt_record(l, B, S, CTX, 6, &r));
  int distinct = 1;
  char hit[43] = {0};
  for (int k = 0; k < 40; k++) {
    if (r.rows[k] < 0 || r.rows[k] >= 43 || hit[r.rows[k]]) distinct = 0;
    else hit[r.rows[k]] = 1;
  }
  th_assert("train: 43 rows -> 5 batches of 8, 3 dropped, none twice", distinct && r.n[4] == B && r.n[5] == 0, NULL);
  clipcl_loader_free(l);
  dt_run_free(&r);
  o.training = 0;
  l = dt_loader(ds, &o);
  TH_OK(dt_record(l, B, S, CTX, 7, &r));
  th_assert("eval: 43 rows -> 5 batches of 8 and one of 3, then the end", r.n[4] == B && r.n[5] == 3 && r.n[6] == 0 &&
                                                                           r.rows[42] == 42,
            "%d %d %d", r.n[4], r.n[5], r.n[6]);
  clipcl_loader_free(l);
  dt_run_free(&r);
  clipcl_dataset_free(ds);
  free(want);
}

/* ---- determinism and resume ------------------------------------------------ */
static void determinism_and_resume(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/train.csv", dir);
  clipcl_dataset *ds = open_ds(path);
  clipcl_loader_options o;
  base_opts(&o);
  o.workers = 1;
  o.prefetch_batches = 1;
  clipcl_loader *l = dt_loader(ds, &o);
  dt_run a, b;
  TH_OK(dt_record(l, B, S, CTX, 18, &a));
  clipcl_loader_free(l);
  o.workers = 4;
  o.prefetch_batches = 3;
  l = dt_loader(ds, &o);
  TH_OK(dt_record(l, B, S, CTX, 18, &b));
  clipcl_loader_free(l);
  dt_same_runs("1 worker vs 4 workers, three epochs", &a, &b);
  dt_run_free(&b);

  /* positions: mid-epoch (after 3 batches), at an epoch's end (5), after
   * the end marker (6), in epoch 1 (8) */
  const int cut[] = {3, 5, 6, 8};
  for (int c = 0; c < 4; c++) {
    l = dt_loader(ds, &o);
    dt_run head, rest;
    TH_OK(dt_record(l, B, S, CTX, cut[c], &head));
    clipcl_loader_pos pos;
    TH_OK(clipcl_loader_get_pos(l, &pos));
    clipcl_loader_free(l); /* as if the process ended */
    l = dt_loader(ds, &o);
    TH_OK(clipcl_loader_seek(l, &pos));
    TH_OK(dt_record(l, B, S, CTX, 18 - cut[c], &rest));
    clipcl_loader_pos end;
    TH_OK(clipcl_loader_get_pos(l, &end));
    clipcl_loader_free(l);
    int same = 1;
    for (int i = 0; i < 18 - cut[c]; i++) {
      size_t at = (size_t)(cut[c] + i);
      if (rest.n[i] != a.n[at] || rest.epoch[i] != a.epoch[at] ||
          memcmp(rest.images + (size_t)i * B * a.plane, a.images + at * B * a.plane, B * a.plane * sizeof(float)) ||
          memcmp(rest.ids + (size_t)i * B * CTX, a.ids + at * B * CTX, B * CTX * sizeof(int32_t)) ||
          memcmp(rest.rows + (size_t)i * B, a.rows + at * B, B * sizeof(int64_t)))
        same = 0;
    }
    char name[128];
    snprintf(name, sizeof name, "resume after %d calls replays the rest", cut[c]);
    th_assert(name, same, "position epoch %lld index %lld seen %lld", (long long)pos.epoch, (long long)pos.index,
              (long long)pos.samples_seen);
    snprintf(name, sizeof name, "resume after %d calls: counters carried", cut[c]);
    th_assert(name, end.samples_seen == 120 && end.epoch == 3 && end.index == 0, "seen %lld epoch %lld index %lld",
              (long long)end.samples_seen, (long long)end.epoch, (long long)end.index);
    dt_run_free(&head);
    dt_run_free(&rest);
  }
  clipcl_loader_pos bad_pos = {0, 41, 0, 0};
  l = dt_loader(ds, &o);
  th_assert("seek past the epoch refused", clipcl_loader_seek(l, &bad_pos) == CLIPCL_ERR_ARG, "%s",
            clipcl_last_error());
  clipcl_loader_free(l);
  dt_run_free(&a);
  clipcl_dataset_free(ds);
}

/* ---- bad samples ---------------------------------------------------------- */
static const char *bad_rows(int row) {
  switch (row) {
    case 2: return "img/missing.png,a caption for a file that is not there";
    case 4: return "img/corrupt.jpg,a caption for a broken jpeg";
    case 6: return "img/i6.png,\"   \"";
    case 8: return "img/i8.png,caf\xe9 latin-1 caption";
    case 10: return "img/i10.png,too,many,fields";
    default: return NULL;
  }
}

static void bad_samples(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/bad.csv", dir);
  write_manifest(path, 21, bad_rows);
  clipcl_dataset *ds = open_ds(path);
  clipcl_loader_options o;
  base_opts(&o);
  o.training = 0;
  o.augment = 0;
  o.max_bad_fraction = 0.3;
  bad_log g;
  memset(&g, 0, sizeof g);
  o.on_bad = on_bad;
  o.user = &g;
  clipcl_loader *l = dt_loader(ds, &o);
  dt_run r;
  TH_OK(dt_record(l, B, S, CTX, 3, &r));
  /* good rows in order: 0 1 3 5 7 9 11 .. 20 */
  int64_t want_rows[16];
  int nw = 0;
  for (int i = 0; i < 21; i++)
    if (!bad_rows(i)) want_rows[nw++] = i;
  int ok = r.n[0] == B && r.n[1] == nw - B && r.n[2] == 0;
  for (int i = 0; i < nw && ok; i++)
    if (r.rows[i] != want_rows[i]) ok = 0;
  th_assert("bad rows skipped, batches filled from the following rows", ok, "%d + %d samples", r.n[0], r.n[1]);
  const struct {
    int line, row;
    const char *why;
  } want[] = {{4, 3, "missing.png: cannot open"},
              {6, 5, "corrupt.jpg"},
              {8, 7, "empty caption"},
              {10, 9, "not valid UTF-8"},
              {12, 11, "more than the header"}};
  int rep_ok = g.n == 5;
  for (int i = 0; i < 5 && rep_ok; i++) {
    char src[1100];
    snprintf(src, sizeof src, "%s:%d (row %d)", path, want[i].line, want[i].row);
    if (strcmp(g.src[i], src) || !strstr(g.why[i], want[i].why) || g.epoch[i] != 0 || g.index[i] != want[i].row - 1) {
      rep_ok = 0;
      th_assert("bad sample report", 0, "#%d: [%s] [%s] index %lld; want [%s] [%s]", i, g.src[i], g.why[i],
                (long long)g.index[i], src, want[i].why);
    }
  }
  th_assert("each bad row reported once with line, row and reason", rep_ok, "%d reports", g.n);
  for (int i = 0; i < g.n && i < 5; i++) printf("     report: %s: %s\n", g.src[i], g.why[i]);
  int64_t seen, bad;
  clipcl_loader_counters(l, &seen, &bad);
  th_assert("counters after one epoch", seen == 21 && bad == 5, "%lld %lld", (long long)seen, (long long)bad);
  clipcl_loader_free(l);
  dt_run_free(&r);

  /* training on it: 16 good rows = 2 batches per epoch, 5 reports each */
  o.training = 1;
  o.augment = 1;
  memset(&g, 0, sizeof g);
  l = dt_loader(ds, &o);
  TH_OK(dt_record(l, B, S, CTX, 6, &r));
  int hit[21] = {0}, t_ok = r.n[2] == 0 && r.n[5] == 0 && g.n == 10;
  for (int i = 0; i < 2 * B; i++) {
    if (r.rows[i] < 0 || r.rows[i] >= 21 || bad_rows((int)r.rows[i])) t_ok = 0;
    else hit[r.rows[i]]++;
  }
  for (int i = 0; i < 21; i++)
    if (!bad_rows(i) && hit[i] != 1) t_ok = 0;
  th_assert("training uses each good row once per epoch, reports the bad ones each epoch", t_ok, "%d reports", g.n);
  clipcl_loader_free(l);
  dt_run_free(&r);

  /* too few usable samples for one training batch */
  o.batch_size = 17;
  o.max_bad_fraction = 0.5;
  l = dt_loader(ds, &o);
  clipcl_batch bb = {malloc((size_t)17 * 3 * S * S * sizeof(float)), NULL, NULL, NULL, 0, 0};
  clipcl_status s = clipcl_loader_next(l, &bb);
  th_assert("an epoch without one full batch is an error", s == CLIPCL_ERR_FORMAT &&
                                                               strstr(clipcl_last_error(), "no full batch of 17") &&
                                                               strstr(clipcl_last_error(), "16 usable"),
            "%s", clipcl_last_error());
  free(bb.images);
  clipcl_loader_free(l);
  clipcl_dataset_free(ds);

  /* max_bad_fraction: 3 bad of 200 rows (rows 9, 49, 149 point at missing
   * files); with 1% the check starts at 100 samples and 2 > 1 stops it */
  snprintf(path, sizeof path, "%s/many.csv", dir);
  FILE *f = fopen(path, "wb");
  if (!f) dt_die(path);
  fprintf(f, "filepath\ttitle\n");
  for (int i = 0; i < 200; i++)
    fprintf(f, "%s%d.png\tcaption %d\n", (i == 9 || i == 49 || i == 149) ? "img/gone" : "img/i", i % 40, i);
  fclose(f);
  f = NULL;
  char tsv[1100];
  snprintf(tsv, sizeof tsv, "%s/many.tsv", dir);
  if (rename(path, tsv) != 0) dt_die("rename");
  ds = open_ds(tsv);
  base_opts(&o);
  o.training = 0;
  o.augment = 0;
  l = dt_loader(ds, &o);
  clipcl_batch b1 = {malloc((size_t)B * 3 * S * S * sizeof(float)), NULL, NULL, NULL, 0, 0};
  int batches = 0;
  while ((s = clipcl_loader_next(l, &b1)) == CLIPCL_OK && b1.n > 0) batches++;
  char msg[2048];
  snprintf(msg, sizeof msg, "%s", clipcl_last_error());
  th_assert("max bad fraction stops next()", s == CLIPCL_ERR_FORMAT && batches == 12 &&
                                                 strstr(msg, "too many bad samples: 2 of 100 seen (2.00%)") &&
                                                 strstr(msg, "many.tsv:51 (row 50)") && strstr(msg, "gone9.png"),
            "%d batches: %s", batches, msg);
  s = clipcl_loader_next(l, &b1);
  th_assert("the stop repeats", s == CLIPCL_ERR_FORMAT && !strcmp(clipcl_last_error(), msg), NULL);
  clipcl_loader_free(l);
  o.max_bad_fraction = 0.02;
  l = dt_loader(ds, &o);
  int total = 0;
  while ((s = clipcl_loader_next(l, &b1)) == CLIPCL_OK && b1.n > 0) total += b1.n;
  th_assert("2% allows 3 bad of 200", s == CLIPCL_OK && total == 197, "%d samples: %s", total,
            s ? clipcl_last_error() : "");
  clipcl_loader_free(l);
  free(b1.images);
  clipcl_dataset_free(ds);
}

/* evaluation CSV with a label column: labels come out with the images */
static void label_csv(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/eval.csv", dir);
  FILE *f = fopen(path, "wb");
  if (!f) dt_die(path);
  fprintf(f, "label,filepath\n");
  for (int i = 0; i < 11; i++) fprintf(f, "%d,img/i%d.png\n", (i * 3) % 5, i);
  fclose(f);
  clipcl_dataset_options dopt;
  clipcl_dataset_options_init(&dopt);
  dopt.label_key = "label";
  clipcl_dataset *ds = NULL;
  TH_OK(clipcl_dataset_open(path, &dopt, &ds));
  clipcl_loader_options o;
  base_opts(&o);
  o.training = 0;
  o.augment = 0;
  clipcl_loader *l = dt_loader(ds, &o);
  dt_run r;
  memset(&r, 0, sizeof r);
  TH_OK(dt_record(l, B, S, CTX, 3, &r));
  int ok = r.n[0] == B && r.n[1] == 3 && r.n[2] == 0 && clipcl_dataset_num_classes(ds) == 5;
  for (int i = 0; i < 11 && ok; i++)
    if (r.labels[i] != (i * 3) % 5 || r.rows[i] != i) ok = 0;
  int32_t zero[CTX] = {0};
  ok = ok && !memcmp(r.ids, zero, sizeof zero); /* no captions: ids untouched */
  th_assert("label CSV: labels in file order", ok, NULL);
  dt_run_free(&r);
  clipcl_loader_free(l);
  clipcl_dataset_free(ds);
}

static void bad_options(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/train.csv", dir);
  clipcl_dataset *ds = open_ds(path);
  clipcl_loader_options o;
  clipcl_loader *l = NULL;
  base_opts(&o);
  o.batch_size = 41;
  th_assert("batch larger than the data set", clipcl_loader_create(ds, &o, &l) == CLIPCL_ERR_ARG &&
                                                  strstr(clipcl_last_error(), "fewer than one batch"),
            "%s", clipcl_last_error());
  base_opts(&o);
  o.image_size = 0;
  th_assert("image size 0", clipcl_loader_create(ds, &o, &l) == CLIPCL_ERR_ARG, "%s", clipcl_last_error());
  base_opts(&o);
  o.max_bad_fraction = 1.5;
  th_assert("bad fraction 1.5", clipcl_loader_create(ds, &o, &l) == CLIPCL_ERR_ARG, "%s", clipcl_last_error());
  base_opts(&o);
  o.context_length = 1;
  th_assert("context length 1", clipcl_loader_create(ds, &o, &l) == CLIPCL_ERR_ARG, "%s", clipcl_last_error());
  clipcl_dataset_free(ds);
}

int main(void) {
  dt_tmpdir(dir, sizeof dir);
  char p[1024];
  snprintf(p, sizeof p, "%s/img", dir);
  dt_mkdir(p);
  for (int i = 0; i < 40; i++) {
    snprintf(p, sizeof p, "%s/img/i%d.png", dir, i);
    dt_png(p, 24 + (i * 7) % 17, 24 + (i * 5) % 13, (uint32_t)i);
  }
  size_t len;
  unsigned char *d = dt_read(IMG "bad_trunc.jpg", &len);
  snprintf(p, sizeof p, "%s/img/corrupt.jpg", dir);
  dt_write(p, d, len);
  free(d);
  TH_OK(clipcl_tokenizer_create(&tok));
  content_and_order();
  determinism_and_resume();
  bad_samples();
  label_csv();
  bad_options();
  clipcl_tokenizer_free(tok);
  dt_rm_rf(dir);
  return th_finish(NULL);
}

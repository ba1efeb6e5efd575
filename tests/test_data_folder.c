/* test_data_folder.c: image folders (src/data/source_folder.c) as
 * torchvision's ImageFolder lists them: classes are the sorted
 * sub-directories, files are found recursively by extension (any case) and
 * ordered by (directory, name) -- which differs from sorting whole paths
 * when a directory name is a prefix of another -- hidden names skipped, a
 * class without images or a root without classes refused. The expected
 * order below was checked once with torchvision 0.14's ImageFolder on the
 * same tree. Then the evaluation loader over it: file order, labels, rows,
 * images bit-identical to clipcl_image_preprocess of each file, the WebP
 * file reported as a bad sample with its path, the short last batch kept.
 * No device needed. */
#include <stdio.h>
#include <string.h>

#include "data/data.h"
#include "data_testutil.h"

static char root[512];

static void png_at(const char *rel, int w, int h, uint32_t seed) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  dt_png(p, w, h, seed);
}

static void file_at(const char *rel, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  dt_write_str(p, text);
}

static void dir_at(const char *rel) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  dt_mkdir(p);
}

typedef struct {
  int n;
  char last[1024];
} bad_log;

static void on_bad(void *user, const clipcl_bad_sample *b) {
  bad_log *g = user;
  g->n++;
  snprintf(g->last, sizeof g->last, "%s | %s", b->source, b->reason);
}

int main(void) {
  char base[400];
  dt_tmpdir(base, sizeof base);
  snprintf(root, sizeof root, "%s/set", base);
  dt_mkdir(root);
  dir_at("b_dog");
  dir_at("a_cat");
  dir_at("C_upper");
  dir_at(".hidden");
  dir_at("a_cat/s");
  dir_at("a_cat/s b");
  dir_at("a_cat/s/deeper");
  png_at(".hidden/x.png", 9, 9, 1);
  file_at("readme.txt", "not a class");
  png_at("a_cat/2.png", 30, 20, 2);
  png_at("a_cat/10.PNG", 20, 30, 3);
  png_at("a_cat/s/z.png", 17, 19, 4);
  png_at("a_cat/s b/y.png", 19, 17, 5);
  png_at("a_cat/s/deeper/w.png", 25, 25, 6);
  png_at("a_cat/.x.png", 9, 9, 7);
  file_at("a_cat/notes.txt", "ignored");
  {
    char p[1024];
    snprintf(p, sizeof p, "%s/b_dog/a.webp", root);
    dt_write(p, "RIFF\x10\0\0\0WEBPVP8 ", 16);
  }
  png_at("b_dog/b.png", 40, 12, 8);
  png_at("C_upper/one.png", 12, 40, 9);
  const char *order[] = {"C_upper/one.png", "a_cat/10.PNG",  "a_cat/2.png",   "a_cat/s/z.png",
                         "a_cat/s b/y.png", "a_cat/s/deeper/w.png", "b_dog/a.webp", "b_dog/b.png"};
  const int labels[] = {0, 1, 1, 1, 1, 1, 2, 2};
  const int n = 8;

  clipcl_dataset *ds = NULL;
  TH_OK(clipcl_dataset_open(root, NULL, &ds));
  th_assert("folder kind", clipcl_dataset_kind(ds) == CLIPCL_DATA_FOLDER && clipcl_dataset_has_labels(ds) &&
                               !clipcl_dataset_has_captions(ds), NULL);
  th_assert("classes", clipcl_dataset_num_classes(ds) == 3 && !strcmp(clipcl_dataset_class_name(ds, 0), "C_upper") &&
                           !strcmp(clipcl_dataset_class_name(ds, 1), "a_cat") &&
                           !strcmp(clipcl_dataset_class_name(ds, 2), "b_dog") && !clipcl_dataset_class_name(ds, 3),
            NULL);
  th_assert("folder size", clipcl_dataset_size(ds) == n, "%lld", (long long)clipcl_dataset_size(ds));
  int order_ok = clipcl_dataset_size(ds) == n;
  for (int i = 0; i < n && order_ok; i++) {
    char buf[1024], want[1024];
    snprintf(want, sizeof want, "%s/%s", root, order[i]);
    const char *p = clipcl_dataset_image_path(ds, i, buf, sizeof buf);
    if (!p || strcmp(p, want) || ds->rows[i].label != labels[i]) {
      order_ok = 0;
      th_assert("folder order", 0, "item %d: %s (label %d), want %s (label %d)", i, p ? p : "-", ds->rows[i].label,
                want, labels[i]);
    }
  }
  th_assert("folder order as ImageFolder", order_ok, NULL);

  /* evaluation loader: every file in order, labels, exact preprocessing */
  const int B = 3, S = 20;
  clipcl_loader_options o;
  clipcl_loader_options_init(&o);
  o.batch_size = B;
  o.image_size = S;
  o.training = 0;
  o.augment = 0;
  o.workers = 3;
  o.max_bad_fraction = 0.5;
  bad_log g = {0, ""};
  o.on_bad = on_bad;
  o.user = &g;
  clipcl_loader *l = dt_loader(ds, &o);
  dt_run r;
  TH_OK(dt_record(l, B, S, 8, 4, &r));
  th_assert("folder eval batches", r.n[0] == 3 && r.n[1] == 3 && r.n[2] == 1 && r.n[3] == 0, "%d %d %d %d", r.n[0],
            r.n[1], r.n[2], r.n[3]);
  int k = 0, same = 1;
  float *want = malloc((size_t)3 * S * S * sizeof *want);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < r.n[i]; j++, k++) {
      int idx = k >= 6 ? k + 1 : k; /* the WebP item (6) is skipped */
      size_t at = (size_t)i * B + j;
      char p[1024];
      snprintf(p, sizeof p, "%s/%s", root, order[idx]);
      clipcl_image img;
      TH_OK(clipcl_image_load(p, &img));
      TH_OK(clipcl_image_preprocess(&img, S, want));
      clipcl_image_free(&img);
      if (r.rows[at] != idx || r.labels[at] != labels[idx] || memcmp(want, r.images + at * r.plane, r.plane * 4))
        same = 0;
    }
  free(want);
  th_assert("folder eval: rows, labels and pixels per file", same && k == 7, "%d samples", k);
  th_assert("folder eval: the WebP file reported with its path",
            g.n == 1 && strstr(g.last, "b_dog/a.webp |") && strstr(g.last, "WebP"), "%d: %s", g.n, g.last);
  dt_run_free(&r);
  clipcl_loader_free(l);

  /* the default bad fraction (1%) refuses 1 bad file in 8 */
  clipcl_loader_options_init(&o);
  o.batch_size = B;
  o.image_size = S;
  o.training = 0;
  o.augment = 0;
  l = dt_loader(ds, &o);
  clipcl_status s = dt_record(l, B, S, 8, 4, &r);
  th_assert("folder eval: 1 bad of 8 is over the default 1%", s == CLIPCL_ERR_FORMAT &&
                                                                  strstr(clipcl_last_error(), "too many bad samples: 1 of"),
            "%s", clipcl_last_error());
  dt_run_free(&r);
  clipcl_loader_free(l);
  clipcl_dataset_free(ds);

  /* refused at open */
  char p[1024];
  snprintf(p, sizeof p, "%s/emptyclass", base);
  dt_mkdir(p);
  snprintf(p, sizeof p, "%s/emptyclass/full", base);
  dt_mkdir(p);
  snprintf(p, sizeof p, "%s/emptyclass/full/a.jpg", base);
  dt_write_str(p, "x");
  snprintf(p, sizeof p, "%s/emptyclass/empty", base);
  dt_mkdir(p);
  snprintf(p, sizeof p, "%s/emptyclass/empty/notes.txt", base);
  dt_write_str(p, "x");
  snprintf(p, sizeof p, "%s/emptyclass", base);
  s = clipcl_dataset_open(p, NULL, &ds);
  th_assert("class without images refused", s == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "class 'empty'"),
            "%s", clipcl_last_error());
  snprintf(p, sizeof p, "%s/noclass", base);
  dt_mkdir(p);
  snprintf(p, sizeof p, "%s/noclass/a.png", base);
  dt_write_str(p, "x");
  snprintf(p, sizeof p, "%s/noclass", base);
  s = clipcl_dataset_open(p, NULL, &ds);
  th_assert("root without class folders refused", s == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "no class"),
            "%s", clipcl_last_error());

  dt_rm_rf(base);
  return th_finish(NULL);
}

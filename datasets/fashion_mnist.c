/* fashion_mnist.c: clipcl-fashion-mnist, converts the Fashion-MNIST IDX
 * files (Debian's dataset-fashion-mnist: gzipped, in
 * /usr/share/datasets/fashion-mnist) into PNG files in class folders, a
 * caption CSV per split with varied phrasings, label CSVs and a class-names
 * file, for CLIP training, zero-shot and linear-probe runs. Layout and
 * options: datasets/README.md.
 *
 * The IDX files are untrusted: magic, rank, sizes and the exact payload
 * length are checked before anything is written, and a bad file is refused
 * with one line naming it. Not here: any other data set, training.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <jansson.h>

#include "common.h"
#include "image/image.h"
#include "util/error.h"

#define DEFAULT_SRC "/usr/share/datasets/fashion-mnist"
#define N_CLASSES 10
/* Caps that a forged header cannot get past: Fashion-MNIST has 60,000
 * 28x28 images per file at most. */
#define IDX_MAX_ITEMS 10000000u
#define IDX_MAX_SIDE 1024u
#define IDX_MAX_BYTES ((uint64_t)1 << 30)

/* Label order of the data set. The folder names sort into ImageFolder's
 * class order; np[0] is the class text used in classnames.txt's phrase and
 * the other noun phrases vary the captions. */
static const struct {
  const char *name;      /* the data set's own name */
  const char *folder;    /* class folder */
  const char *classname; /* class text for zero-shot prompts */
  const char *np[4];     /* noun phrases for captions; np[0] is the plain one */
} CLASSES[N_CLASSES] = {
    {"T-shirt/top", "t-shirt_top", "t-shirt or top", {"a t-shirt or top", "a t-shirt", "a top", "a tee"}},
    {"Trouser", "trouser", "trousers", {"a pair of trousers", "trousers", "a pair of pants", "pants"}},
    {"Pullover", "pullover", "pullover", {"a pullover", "a sweater", "a jumper", "a knitted pullover"}},
    {"Dress", "dress", "dress", {"a dress", "a summer dress", "a long dress", "a sleeveless dress"}},
    {"Coat", "coat", "coat", {"a coat", "a jacket", "a winter coat", "an overcoat"}},
    {"Sandal", "sandal", "sandal", {"a sandal", "a pair of sandals", "an open shoe", "a summer sandal"}},
    {"Shirt", "shirt", "shirt", {"a shirt", "a button-up shirt", "a collared shirt", "a blouse"}},
    {"Sneaker", "sneaker", "sneaker", {"a sneaker", "a trainer", "a running shoe", "a sports shoe"}},
    {"Bag", "bag", "bag", {"a bag", "a handbag", "a purse", "a tote bag"}},
    {"Ankle boot", "ankle_boot", "ankle boot", {"an ankle boot", "a boot", "a short boot", "a leather ankle boot"}},
};

static const char *const TEMPLATES[] = {
    "%s",
    "a photo of %s",
    "a black and white photo of %s",
    "a grayscale image of %s",
    "a low resolution photo of %s",
    "a product photo of %s",
    "a picture of %s",
    "a small photo of %s on a black background",
    "%s, from a fashion catalogue",
    "there is %s in this picture",
    "a centred photo of %s",
    "an image of %s",
};
#define N_TEMPLATES (int)(sizeof TEMPLATES / sizeof *TEMPLATES)

/* ---- IDX files -------------------------------------------------------------- */
typedef struct {
  uint32_t n, rows, cols; /* rows = cols = 1 for a label file */
  uint8_t *data;          /* n * rows * cols bytes */
} idx_data;

/* gzerror's text starts with the path, which our message already names. */
static const char *gz_reason(gzFile gz, const char *path) {
  int err = 0;
  const char *m = gzerror(gz, &err);
  size_t n = strlen(path);
  if (strncmp(m, path, n) == 0 && m[n] == ':' && m[n + 1] == ' ') m += n + 2;
  return m;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads a gzipped (or plain: zlib passes it through) IDX file of unsigned
 * bytes with `rank` dimensions (3 for images, 1 for labels). */
static clipcl_status read_idx(const char *path, int rank, idx_data *out) {
  memset(out, 0, sizeof *out);
  gzFile gz = gzopen(path, "rb");
  if (!gz)
    return cc_fail(CLIPCL_ERR_IO, "%s: cannot open (install Debian's dataset-fashion-mnist or pass --src)", path);
  clipcl_status s = CLIPCL_OK;
  uint8_t head[16];
  int hlen = 4 + 4 * rank;
  int got = gzread(gz, head, (unsigned)hlen);
  if (got < 0) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: corrupt gzip data: %s", path, gz_reason(gz, path));
    goto done;
  }
  if (got < hlen) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: truncated IDX header (%d of %d bytes)", path, got, hlen);
    goto done;
  }
  uint32_t magic = be32(head), want = 0x0800u | (uint32_t)rank;
  if (magic != want) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: bad IDX magic 0x%08x, expected 0x%08x (unsigned bytes, %d dimension%s)",
                path, magic, want, rank, rank > 1 ? "s" : "");
    goto done;
  }
  out->n = be32(head + 4);
  out->rows = rank == 3 ? be32(head + 8) : 1;
  out->cols = rank == 3 ? be32(head + 12) : 1;
  if (out->n == 0 || out->n > IDX_MAX_ITEMS) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: IDX header says %u items (1..%u accepted)", path, out->n, IDX_MAX_ITEMS);
    goto done;
  }
  if (out->rows == 0 || out->cols == 0 || out->rows > IDX_MAX_SIDE || out->cols > IDX_MAX_SIDE) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: IDX header says %ux%u images (1..%u accepted)", path, out->rows, out->cols,
                IDX_MAX_SIDE);
    goto done;
  }
  uint64_t total = (uint64_t)out->n * out->rows * out->cols;
  if (total > IDX_MAX_BYTES) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: IDX header announces %llu bytes of data, more than accepted", path,
                (unsigned long long)total);
    goto done;
  }
  out->data = malloc((size_t)total);
  if (!out->data) {
    s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory for %llu bytes", path, (unsigned long long)total);
    goto done;
  }
  uint64_t have = 0;
  while (have < total) {
    uint64_t left = total - have;
    unsigned take = left > (1u << 20) ? (1u << 20) : (unsigned)left;
    int r = gzread(gz, out->data + have, take);
    if (r < 0) {
      s = cc_fail(CLIPCL_ERR_FORMAT, "%s: corrupt gzip data: %s", path, gz_reason(gz, path));
      goto done;
    }
    if (r == 0) break;
    have += (uint64_t)r;
  }
  if (have < total) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: truncated: %llu of the %llu data bytes the IDX header announces", path,
                (unsigned long long)have, (unsigned long long)total);
    goto done;
  }
  /* Reading on to the end also makes zlib check the gzip CRC. */
  uint8_t extra;
  int r = gzread(gz, &extra, 1);
  if (r < 0) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: corrupt gzip data: %s", path, gz_reason(gz, path));
    goto done;
  }
  if (r > 0) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: data continues after the %u items the IDX header announces", path, out->n);
    goto done;
  }
done:
  if (gzclose(gz) != Z_OK && s == CLIPCL_OK) s = cc_fail(CLIPCL_ERR_FORMAT, "%s: corrupt gzip data at its end", path);
  if (s != CLIPCL_OK) {
    free(out->data);
    out->data = NULL;
  }
  return s;
}

/* ---- conversion ------------------------------------------------------------ */
typedef struct {
  const char *out;
  const char *name; /* "train" or "test" */
  int split_id;
  uint64_t seed;
  int size;
  const idx_data *img, *lab;
  int n;
  char (*rel)[64];
  char (*caption)[160];
  uint8_t **rgb_in, **rgb_out, **grey; /* per thread scratch */
  cc_buf *png;                         /* per thread */
} conv_ctx;

static clipcl_status conv_item(void *vctx, int i, int thread) {
  conv_ctx *c = vctx;
  int label = c->lab->data[i];
  uint64_t rng = ds_stream(c->seed, (uint64_t)c->split_id, (uint64_t)i);
  const char *np = CLASSES[label].np[ds_below(&rng, 2) ? 0 : 1 + ds_below(&rng, 3)];
  const char *t = TEMPLATES[ds_below(&rng, N_TEMPLATES)];
  snprintf(c->caption[i], sizeof c->caption[i], t, np);
  snprintf(c->rel[i], sizeof c->rel[i], "%s/%s/%05d.png", c->name, CLASSES[label].folder, i);
  int w = (int)c->img->cols, h = (int)c->img->rows;
  const uint8_t *src = c->img->data + (size_t)i * w * h;
  const uint8_t *pix = src;
  if (c->size != w || c->size != h) {
    /* The library's PIL-compatible bicubic works on RGB: spread the grey,
     * resample, keep one channel (all three stay equal). */
    uint8_t *in = c->rgb_in[thread], *outp = c->rgb_out[thread], *g = c->grey[thread];
    for (int k = 0; k < w * h; k++) in[3 * k] = in[3 * k + 1] = in[3 * k + 2] = src[k];
    CC_TRY(cc_resample_bicubic(in, (size_t)w * 3, w, h, c->size, c->size, 0, 0, c->size, c->size, outp));
    for (int k = 0; k < c->size * c->size; k++) g[k] = outp[3 * k];
    w = h = c->size;
    pix = g;
  }
  cc_buf *png = &c->png[thread];
  CC_TRY(ds_png_encode(pix, w, h, 1, png, c->rel[i]));
  char *path = ds_join(c->out, c->rel[i]);
  if (!path) return cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  clipcl_status s = ds_write_file(path, png->p, png->len);
  free(path);
  return s;
}

static clipcl_status write_text(const char *out, const char *rel, const cc_buf *b) {
  char *path = ds_join(out, rel);
  if (!path) return cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  clipcl_status s = cc_buf_save(b, path);
  free(path);
  return s;
}

static clipcl_status convert_split(conv_ctx *c, int threads) {
  for (int k = 0; k < N_CLASSES; k++) {
    char rel[64];
    snprintf(rel, sizeof rel, "%s/%s", c->name, CLASSES[k].folder);
    char *path = ds_join(c->out, rel);
    if (!path) return cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
    clipcl_status s = ds_mkdirs(path);
    free(path);
    CC_TRY(s);
  }
  size_t in_px = (size_t)c->img->rows * c->img->cols, out_px = (size_t)c->size * c->size;
  size_t m = c->n > 0 ? (size_t)c->n : 1;
  c->rel = calloc(m, sizeof *c->rel);
  c->caption = calloc(m, sizeof *c->caption);
  c->rgb_in = calloc((size_t)threads, sizeof *c->rgb_in);
  c->rgb_out = calloc((size_t)threads, sizeof *c->rgb_out);
  c->grey = calloc((size_t)threads, sizeof *c->grey);
  c->png = calloc((size_t)threads, sizeof *c->png);
  clipcl_status s = CLIPCL_OK;
  if (!c->rel || !c->caption || !c->rgb_in || !c->rgb_out || !c->grey || !c->png)
    s = cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  for (int t = 0; s == CLIPCL_OK && t < threads; t++) {
    c->rgb_in[t] = malloc(in_px * 3);
    c->rgb_out[t] = malloc(out_px * 3);
    c->grey[t] = malloc(out_px);
    if (!c->rgb_in[t] || !c->rgb_out[t] || !c->grey[t]) s = cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  }
  if (s == CLIPCL_OK) s = ds_parallel(c->n, threads, conv_item, c);
  if (s == CLIPCL_OK) {
    cc_buf csv = {0}, lab = {0};
    cc_buf_str(&csv, "filepath,title\n");
    cc_buf_str(&lab, "filepath,label,class\n");
    for (int i = 0; i < c->n; i++) {
      ds_buf_csv(&csv, c->rel[i], ',');
      cc_buf_add(&csv, ",", 1);
      ds_buf_csv(&csv, c->caption[i], ',');
      cc_buf_add(&csv, "\n", 1);
      ds_buf_csv(&lab, c->rel[i], ',');
      cc_buf_printf(&lab, ",%d,", c->lab->data[i]);
      ds_buf_csv(&lab, CLASSES[c->lab->data[i]].classname, ',');
      cc_buf_add(&lab, "\n", 1);
    }
    char rel[64];
    snprintf(rel, sizeof rel, "%s.csv", c->name);
    s = write_text(c->out, rel, &csv);
    snprintf(rel, sizeof rel, "%s_labels.csv", c->name);
    if (s == CLIPCL_OK) s = write_text(c->out, rel, &lab);
    cc_buf_free(&csv);
    cc_buf_free(&lab);
  }
  for (int t = 0; t < threads; t++) {
    if (c->rgb_in) free(c->rgb_in[t]);
    if (c->rgb_out) free(c->rgb_out[t]);
    if (c->grey) free(c->grey[t]);
    if (c->png) cc_buf_free(&c->png[t]);
  }
  free(c->rel);
  free(c->caption);
  free(c->rgb_in);
  free(c->rgb_out);
  free(c->grey);
  free(c->png);
  return s;
}

static int cmp_folder(const void *a, const void *b) {
  return strcmp(CLASSES[*(const int *)a].folder, CLASSES[*(const int *)b].folder);
}

static clipcl_status write_meta(const char *out, const char *src, int size, uint64_t seed, const int *counts) {
  int order[N_CLASSES];
  for (int k = 0; k < N_CLASSES; k++) order[k] = k;
  qsort(order, N_CLASSES, sizeof *order, cmp_folder);
  cc_buf names = {0};
  for (int k = 0; k < N_CLASSES; k++) cc_buf_printf(&names, "%s\n", CLASSES[order[k]].classname);
  clipcl_status s = write_text(out, "classnames.txt", &names);
  cc_buf_free(&names);
  CC_TRY(s);

  json_t *root = json_object(), *arr = json_array();
  json_object_set_new(root, "generator", json_string("clipcl-fashion-mnist"));
  json_object_set_new(root, "format_version", json_integer(1));
  json_object_set_new(root, "source", json_string(src));
  json_object_set_new(root, "licence", json_string("MIT (Zalando SE), https://github.com/zalandoresearch/fashion-mnist"));
  json_object_set_new(root, "seed", json_integer((json_int_t)seed));
  json_object_set_new(root, "image_size", json_integer(size));
  for (int k = 0; k < N_CLASSES; k++) {
    json_t *e = json_object();
    json_object_set_new(e, "label", json_integer(k));
    json_object_set_new(e, "name", json_string(CLASSES[k].name));
    json_object_set_new(e, "folder", json_string(CLASSES[k].folder));
    json_object_set_new(e, "classname", json_string(CLASSES[k].classname));
    json_array_append_new(arr, e);
  }
  json_object_set_new(root, "classes", arr);
  json_object_set_new(root, "classnames", json_string("classnames.txt"));
  json_t *sj = json_object();
  static const char *const SPLITS[2] = {"train", "test"};
  for (int k = 0; k < 2; k++) {
    char t[64];
    json_t *e = json_object();
    json_object_set_new(e, "images", json_integer(counts[k]));
    snprintf(t, sizeof t, "%s.csv", SPLITS[k]);
    json_object_set_new(e, "csv", json_string(t));
    snprintf(t, sizeof t, "%s_labels.csv", SPLITS[k]);
    json_object_set_new(e, "labels", json_string(t));
    json_object_set_new(e, "folders", json_string(SPLITS[k]));
    json_object_set_new(sj, SPLITS[k], e);
  }
  json_object_set_new(root, "splits", sj);
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!text) return cc_fail(CLIPCL_ERR_NOMEM, "dataset.json: out of memory");
  cc_buf b = {0};
  cc_buf_str(&b, text);
  cc_buf_add(&b, "\n", 1);
  free(text);
  s = write_text(out, "dataset.json", &b);
  cc_buf_free(&b);
  return s;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: clipcl-fashion-mnist --out DIR [options]\n"
          "Converts Fashion-MNIST (Debian's dataset-fashion-mnist) into PNG class folders,\n"
          "caption CSVs and a class-names file.\n\n"
          "  --out DIR      output folder (created; must be empty)\n"
          "  --src DIR      folder of the four IDX files (default " DEFAULT_SRC ")\n"
          "  --limit N      convert only the first N images of each split (default: all)\n"
          "  --size PX      resample to PX x PX, bicubic as PIL (default: keep 28x28)\n"
          "  --seed N       seed of the caption phrasings (default 0)\n"
          "  --threads N    worker threads (default: all CPUs)\n"
          "  --quiet        no summary\n");
}

int main(int argc, char **argv) {
  const char *out = NULL, *src = DEFAULT_SRC;
  long limit = -1, size = -1, seed = 0, threads = ds_cpu_count();
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int bad = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--quiet")) {
      quiet = 1;
      continue;
    }
    if (!v) bad = 1;
    else if (!strcmp(a, "--out")) out = v;
    else if (!strcmp(a, "--src")) src = v;
    else if (!strcmp(a, "--limit")) bad = ds_parse_long(v, 0, IDX_MAX_ITEMS, &limit);
    else if (!strcmp(a, "--size")) bad = ds_parse_long(v, 8, 1024, &size);
    else if (!strcmp(a, "--seed")) bad = ds_parse_long(v, 0, 0x7fffffffffffffffL, &seed);
    else if (!strcmp(a, "--threads")) bad = ds_parse_long(v, 1, 256, &threads);
    else {
      fprintf(stderr, "clipcl-fashion-mnist: unknown option '%s' (see --help)\n", a);
      return 2;
    }
    if (bad) {
      fprintf(stderr, "clipcl-fashion-mnist: %s needs %s\n", a, v ? "a valid value in range (see --help)" : "a value");
      return 2;
    }
    i++;
  }
  if (!out) {
    usage(stderr);
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  static const char *const FILES[2][2] = {{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
                                          {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}};
  static const char *const SPLITS[2] = {"train", "test"};
  idx_data img[2], lab[2];
  memset(img, 0, sizeof img);
  memset(lab, 0, sizeof lab);
  clipcl_status s = CLIPCL_OK;
  /* Every file is validated before the output folder is touched. */
  for (int k = 0; s == CLIPCL_OK && k < 2; k++) {
    char *pi = ds_join(src, FILES[k][0]), *pl = ds_join(src, FILES[k][1]);
    if (!pi || !pl) s = cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
    if (s == CLIPCL_OK) s = read_idx(pi, 3, &img[k]);
    if (s == CLIPCL_OK) s = read_idx(pl, 1, &lab[k]);
    if (s == CLIPCL_OK && img[k].n != lab[k].n)
      s = cc_fail(CLIPCL_ERR_FORMAT, "%s: %u labels for the %u images of %s", pl, lab[k].n, img[k].n, pi);
    for (uint32_t i = 0; s == CLIPCL_OK && i < lab[k].n; i++)
      if (lab[k].data[i] >= N_CLASSES)
        s = cc_fail(CLIPCL_ERR_FORMAT, "%s: label %u of item %u is not a class (0..%d)", pl, lab[k].data[i], i,
                    N_CLASSES - 1);
    free(pi);
    free(pl);
  }
  if (s == CLIPCL_OK && (img[0].rows != img[1].rows || img[0].cols != img[1].cols))
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: train images are %ux%u but test images %ux%u", src, img[0].rows, img[0].cols,
                img[1].rows, img[1].cols);
  if (s == CLIPCL_OK && size > 0 && img[0].rows != img[0].cols)
    s = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: --size needs square images, these are %ux%u", src, img[0].rows,
                img[0].cols);
  if (s == CLIPCL_OK && size < 0) size = (long)img[0].cols; /* keep the stored size */
  if (s == CLIPCL_OK) s = ds_prepare_out(out);
  int counts[2] = {0, 0};
  for (int k = 0; s == CLIPCL_OK && k < 2; k++) {
    int n = (int)img[k].n;
    if (limit >= 0 && limit < n) n = (int)limit;
    conv_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out;
    c.name = SPLITS[k];
    c.split_id = k + 1;
    c.seed = (uint64_t)seed;
    c.size = (int)size;
    c.img = &img[k];
    c.lab = &lab[k];
    c.n = n;
    s = convert_split(&c, (int)threads);
    counts[k] = n;
  }
  if (s == CLIPCL_OK) s = write_meta(out, src, (int)size, (uint64_t)seed, counts);
  for (int k = 0; k < 2; k++) {
    free(img[k].data);
    free(lab[k].data);
  }
  if (s != CLIPCL_OK) {
    fprintf(stderr, "clipcl-fashion-mnist: %s\n", clipcl_last_error());
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  if (!quiet)
    printf("clipcl-fashion-mnist: %d train + %d test images (%ldx%ld) in %.2f s into %s\n", counts[0], counts[1],
           size, size, secs, out);
  return 0;
}

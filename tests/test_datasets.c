/* test_datasets.c: the data set programs in datasets/, run as a user runs
 * them (build/datasets/clipcl-synth, clipcl-fashion-mnist) into a temporary
 * folder, with their output checked by code independent of theirs: the
 * project's PNG decoder, a CSV reader and pixel statistics written here, and
 * the held-out pairs computed from the documented rule, not read back.
 *
 * clipcl-synth: same seed -> byte-identical trees (2 threads vs 1), another
 * seed -> different images; captions name exactly the labelled colour and
 * shape; held-out pairs never in train/val; every colour, shape and allowed
 * pair in train; zero-shot folders hold exactly the held-out pairs (seen
 * folders exactly the others) with class files in sorted folder order; every
 * image decodes at the asked size and its saturated pixels have the labelled
 * colour (majority of nearest palette colours: all images), lie in the
 * labelled third of the image (bounding-box centre, 1.5 px slack at the
 * borders) and have the labelled size class (small boxes all narrower than
 * large ones); tar shards hold the same PNG bytes and captions; bad
 * arguments are refused; speed is reported.
 * clipcl-fashion-mnist: a small IDX set made here converts to PNGs whose
 * pixels equal the IDX bytes, in the right class folders, deterministically;
 * seven kinds of corrupt IDX file are each refused with one line naming the
 * file and nothing written; Debian's package (required: CI installs it)
 * converts with --limit to the expected counts and exact pixels.
 *
 * Binaries: $CLIPCL_DATASETS_DIR, else <build>/datasets next to this test's
 * own <build>/tests. No device needed. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <archive.h>
#include <archive_entry.h>

#include "harness.h"

/* The generator's documented palettes, in order (datasets/README.md). */
static const char *const COLOURS[8] = {"red", "green", "blue", "yellow", "purple", "orange", "pink", "cyan"};
static const int COLOUR_RGB[8][3] = {{215, 35, 35},   {35, 160, 60},   {35, 85, 225},   {245, 205, 25},
                                     {135, 55, 190},  {245, 130, 20},  {245, 115, 185}, {25, 190, 210}};
static const char *const SHAPES[8] = {"circle", "square", "triangle", "star", "cross", "heart", "diamond", "ring"};
static const char *const POSITIONS[9] = {"top left",    "top",    "top right",   "left",        "centre",
                                         "right",       "bottom left", "bottom", "bottom right"};

static char tmp[256];
static char bin[1100];

/* ---- small utilities ---------------------------------------------------------- */
static int sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int r = system(cmd);
  if (r == -1 || !WIFEXITED(r)) return -1;
  return WEXITSTATUS(r);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *p = malloc(cap + 1);
  size_t r;
  while (p && (r = fread(p + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      char *q = realloc(p, cap * 2 + 1);
      if (!q) {
        free(p);
        p = NULL;
        break;
      }
      p = q;
      cap *= 2;
    }
  }
  fclose(f);
  if (p) p[n] = 0;
  if (len) *len = n;
  return p;
}

static int same_file(const char *a, const char *b) {
  size_t na, nb;
  char *pa = slurp(a, &na), *pb = slurp(b, &nb);
  int same = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
  free(pa);
  free(pb);
  return same;
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

typedef struct {
  char **name;
  int n;
} names;

static int cmp_strp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted entries of a folder (without . and ..); n = -1 if it cannot be read. */
static names list_dir(const char *path) {
  names r = {NULL, 0};
  DIR *d = opendir(path);
  if (!d) {
    r.n = -1;
    return r;
  }
  struct dirent *e;
  int cap = 0;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (r.n == cap) {
      cap = cap ? cap * 2 : 16;
      r.name = realloc(r.name, sizeof *r.name * (size_t)cap);
    }
    r.name[r.n++] = strdup(e->d_name);
  }
  closedir(d);
  if (r.n > 0) qsort(r.name, (size_t)r.n, sizeof *r.name, cmp_strp);
  return r;
}

static void names_free(names *r) {
  for (int i = 0; i < r->n; i++) free(r->name[i]);
  free(r->name);
  r->name = NULL;
  r->n = 0;
}

/* A CSV as RFC 4180 (quoted fields, doubled quotes); rows[0] is the header. */
typedef struct {
  char ***f;
  int *nf;
  int n;
} table;

static int csv_load(const char *path, table *t) {
  memset(t, 0, sizeof *t);
  size_t len;
  char *s = slurp(path, &len);
  if (!s) return -1;
  int cap = 0;
  size_t i = 0;
  while (i < len) {
    char **fields = NULL;
    int nf = 0;
    for (;;) {
      char *field = malloc(len - i + 1);
      size_t k = 0;
      if (s[i] == '"') {
        i++;
        while (i < len) {
          if (s[i] == '"' && i + 1 < len && s[i + 1] == '"') field[k++] = '"', i += 2;
          else if (s[i] == '"') {
            i++;
            break;
          } else field[k++] = s[i++];
        }
      } else {
        while (i < len && s[i] != ',' && s[i] != '\n') field[k++] = s[i++];
      }
      field[k] = 0;
      fields = realloc(fields, sizeof *fields * (size_t)(nf + 1));
      fields[nf++] = field;
      if (i < len && s[i] == ',') {
        i++;
        continue;
      }
      if (i < len && s[i] == '\n') i++;
      break;
    }
    if (t->n == cap) {
      cap = cap ? cap * 2 : 64;
      t->f = realloc(t->f, sizeof *t->f * (size_t)cap);
      t->nf = realloc(t->nf, sizeof *t->nf * (size_t)cap);
    }
    t->f[t->n] = fields;
    t->nf[t->n++] = nf;
  }
  free(s);
  return 0;
}

static void table_free(table *t) {
  for (int r = 0; r < t->n; r++) {
    for (int k = 0; k < t->nf[r]; k++) free(t->f[r][k]);
    free(t->f[r]);
  }
  free(t->f);
  free(t->nf);
  memset(t, 0, sizeof *t);
}

static int index_of(const char *const *list, int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (!strcmp(list[i], s)) return i;
  return -1;
}

/* Which of the 8 colours and 8 shapes a caption names, as whole words. */
static void caption_words(const char *cap, int *n_colour, int *colour, int *n_shape, int *shape) {
  *n_colour = *n_shape = 0;
  *colour = *shape = -1;
  const char *p = cap;
  while (*p) {
    while (*p && !(*p >= 'a' && *p <= 'z')) p++;
    const char *b = p;
    while (*p >= 'a' && *p <= 'z') p++;
    if (p == b) continue;
    char w[32];
    size_t n = (size_t)(p - b) < sizeof w - 1 ? (size_t)(p - b) : sizeof w - 1;
    memcpy(w, b, n);
    w[n] = 0;
    int c = index_of(COLOURS, 8, w), s = index_of(SHAPES, 8, w);
    if (c >= 0) (*n_colour)++, *colour = c;
    if (s >= 0) (*n_shape)++, *shape = s;
  }
}

/* ---- clipcl-synth ----------------------------------------------------------- */
#define NC 6
#define NS 6
#define HOLD_K 2
#define SYN_SIZE 32
#define SYN_TRAIN 600
#define SYN_VAL 40
#define ZS_PER 5
#define SEEN_PER 2

/* The documented Latin square: colour i loses shapes i .. i+K-1 (mod S). */
static int held(int c, int s) {
  for (int j = 0; j < HOLD_K; j++)
    if ((c + j) % NS == s) return 1;
  return 0;
}

typedef struct {
  int colour_ok, colour_bad, pos_ok, pos_bad, decoded, decode_bad;
  double small_max, large_min;
  char first_decode[512], first_colour[512], first_pos[512];
} pixel_stats;

/* Checks one image's pixels against its label row (colour, shape, size,
 * position); see the banner for what is checked. */
static void check_pixels(const char *path, const char *colour, const char *size, const char *pos, int want_side,
                         pixel_stats *st) {
  clipcl_image im = {0, 0, NULL};
  if (clipcl_image_load(path, &im) != CLIPCL_OK || im.w != want_side || im.h != want_side) {
    st->decode_bad++;
    if (!st->first_decode[0])
      snprintf(st->first_decode, sizeof st->first_decode, "%s: %s", path, clipcl_last_error());
    clipcl_image_free(&im);
    return;
  }
  st->decoded++;
  int votes[8] = {0}, x0 = im.w, x1 = -1, y0 = im.h, y1 = -1;
  for (int y = 0; y < im.h; y++)
    for (int x = 0; x < im.w; x++) {
      const uint8_t *p = im.rgb + ((size_t)y * im.w + x) * 3;
      int mx = p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]);
      int mn = p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
      if (mx - mn < 60) continue; /* neutral: background or clutter */
      int best = 0;
      double bd = 1e30;
      for (int c = 0; c < 8; c++) {
        double d = 0;
        for (int k = 0; k < 3; k++) d += (double)(p[k] - COLOUR_RGB[c][k]) * (p[k] - COLOUR_RGB[c][k]);
        if (d < bd) bd = d, best = c;
      }
      votes[best]++;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  int top = 0;
  for (int c = 1; c < 8; c++)
    if (votes[c] > votes[top]) top = c;
  if (votes[top] > 0 && !strcmp(COLOURS[top], colour)) st->colour_ok++;
  else {
    st->colour_bad++;
    if (!st->first_colour[0])
      snprintf(st->first_colour, sizeof st->first_colour, "%s: saturated pixels look %s, label says %s", path,
               votes[top] ? COLOURS[top] : "absent", colour);
  }
  if (x1 < 0) return;
  double cx = (x0 + x1 + 1) / 2.0, cy = (y0 + y1 + 1) / 2.0, third = im.w / 3.0;
  int p = index_of(POSITIONS, 9, pos);
  int col = p % 3, row = p / 3;
  /* The box centre must lie in the labelled third, give or take 1.5 px
   * plus a tenth of the box: the label is the turning centre's, and a turned
   * triangle's box moves off it by up to ~0.15 radius. */
  double wb = x1 - x0 + 1 > y1 - y0 + 1 ? x1 - x0 + 1 : y1 - y0 + 1, slack = 1.5 + 0.1 * wb;
  int ok = p >= 0 && cx >= col * third - slack && cx <= (col + 1) * third + slack && cy >= row * third - slack &&
           cy <= (row + 1) * third + slack;
  if (ok) st->pos_ok++;
  else {
    st->pos_bad++;
    if (!st->first_pos[0])
      snprintf(st->first_pos, sizeof st->first_pos, "%s: shape box centred at (%.1f, %.1f), label says %s", path,
               cx, cy, pos);
  }
  double wbox = (double)(x1 - x0 + 1) > (double)(y1 - y0 + 1) ? (double)(x1 - x0 + 1) : (double)(y1 - y0 + 1);
  if (!strcmp(size, "small") && wbox > st->small_max) st->small_max = wbox;
  if (!strcmp(size, "large") && wbox < st->large_min) st->large_min = wbox;
  clipcl_image_free(&im);
}

static double expect_partial = 0; /* share of one-attribute train captions asked for */

static void check_split_rows(const char *dir, const char *split, int want_n, int allow_held) {
  char path[1024];
  table cap, lab;
  snprintf(path, sizeof path, "%s/%s.csv", dir, split);
  int rc1 = csv_load(path, &cap);
  snprintf(path, sizeof path, "%s/%s_labels.csv", dir, split);
  int rc2 = csv_load(path, &lab);
  char name[96];
  snprintf(name, sizeof name, "synth %s: csv and labels", split);
  if (!th_assert(name,
                 rc1 == 0 && rc2 == 0 && cap.n == want_n + 1 && lab.n == want_n + 1 && cap.nf[0] == 2 &&
                     !strcmp(cap.f[0][0], "filepath") && !strcmp(cap.f[0][1], "title") && lab.nf[0] == 7,
                 "%d caption rows, %d label rows, want %d", cap.n - 1, lab.n - 1, want_n)) {
    table_free(&cap);
    table_free(&lab);
    return;
  }
  int bad_caption = 0, bad_path = 0, n_held = 0, n_partial = 0, pair_count[8][8] = {{0}};
  char first[512] = "";
  pixel_stats st;
  memset(&st, 0, sizeof st);
  st.large_min = 1e9;
  for (int r = 1; r < cap.n; r++) {
    if (cap.nf[r] != 2 || lab.nf[r] != 7 || strcmp(cap.f[r][0], lab.f[r][0]) != 0) {
      bad_path++;
      continue;
    }
    int c = index_of(COLOURS, NC, lab.f[r][1]), s = index_of(SHAPES, NS, lab.f[r][2]);
    int nc, cc, ns, ss;
    caption_words(cap.f[r][1], &nc, &cc, &ns, &ss);
    /* every caption names the label's colour and/or shape and nothing else;
     * train/val ones may name just one of them (--partial) */
    int partial_ok = !strcmp(split, "train") || !strcmp(split, "val");
    if (nc + ns == 1) n_partial++;
    if (c < 0 || s < 0 || nc > 1 || ns > 1 || nc + ns == 0 || (nc && cc != c) || (ns && ss != s) ||
        (!partial_ok && (nc != 1 || ns != 1))) {
      bad_caption++;
      if (!first[0])
        snprintf(first, sizeof first, "'%s' for a %s %s", cap.f[r][1], lab.f[r][1], lab.f[r][2]);
      continue;
    }
    if (held(c, s)) n_held++;
    pair_count[c][s]++;
    snprintf(path, sizeof path, "%s/%s", dir, cap.f[r][0]);
    check_pixels(path, lab.f[r][1], lab.f[r][3], lab.f[r][4], SYN_SIZE, &st);
  }
  snprintf(name, sizeof name, "synth %s: rows aligned", split);
  th_assert(name, bad_path == 0, "%d rows whose paths differ between the CSVs", bad_path);
  snprintf(name, sizeof name, "synth %s: captions name the label", split);
  th_assert(name, bad_caption == 0, "%d of %d captions wrong %s", bad_caption, want_n, first);
  if (!strcmp(split, "train")) {
    snprintf(name, sizeof name, "synth %s: one-attribute captions at --partial %.2f", split, expect_partial);
    th_assert(name, expect_partial == 0 ? n_partial == 0
                                        : fabs((double)n_partial / want_n - expect_partial) < 0.08,
              "%d of %d", n_partial, want_n);
  }
  if (!allow_held) {
    snprintf(name, sizeof name, "synth %s: no held-out pair", split);
    th_assert(name, n_held == 0, "%d images of held-out pairs", n_held);
  }
  int colours_seen = 0, shapes_seen = 0, pairs_missing = 0;
  for (int c = 0; c < NC; c++) {
    int any = 0;
    for (int s = 0; s < NS; s++) any += pair_count[c][s];
    colours_seen += any > 0;
  }
  for (int s = 0; s < NS; s++) {
    int any = 0;
    for (int c = 0; c < NC; c++) any += pair_count[c][s];
    shapes_seen += any > 0;
  }
  for (int c = 0; c < NC; c++)
    for (int s = 0; s < NS; s++)
      if (!held(c, s) && pair_count[c][s] == 0) pairs_missing++;
  if (want_n >= 300) {
    snprintf(name, sizeof name, "synth %s: every colour, shape, pair", split);
    th_assert(name, colours_seen == NC && shapes_seen == NS && pairs_missing == 0,
              "%d/%d colours, %d/%d shapes, %d allowed pairs missing", colours_seen, NC, shapes_seen, NS,
              pairs_missing);
  }
  snprintf(name, sizeof name, "synth %s: images decode", split);
  th_assert(name, st.decode_bad == 0 && st.decoded == want_n, "%d decoded %dx%d, %d bad %s", st.decoded,
            SYN_SIZE, SYN_SIZE, st.decode_bad, st.first_decode);
  snprintf(name, sizeof name, "synth %s: pixels have the colour", split);
  th_assert(name, st.colour_bad == 0, "%d right, %d wrong %s", st.colour_ok, st.colour_bad, st.first_colour);
  snprintf(name, sizeof name, "synth %s: shape in labelled third", split);
  th_assert(name, st.pos_bad == 0, "%d right, %d wrong %s", st.pos_ok, st.pos_bad, st.first_pos);
  snprintf(name, sizeof name, "synth %s: small narrower than large", split);
  th_assert(name, st.small_max < st.large_min, "widest small %.0f px, narrowest large %.0f px", st.small_max,
            st.large_min);
  table_free(&cap);
  table_free(&lab);
}

/* Zero-shot folders: pair/colour/shape hold exactly the expected classes,
 * with the same image under all three; class files in folder order. */
static void check_zeroshot(const char *dir, const char *zs, int heldout, int per_pair) {
  char path[1024], name[96];
  int want_pairs[64], n_pairs = 0;
  for (int c = 0; c < NC; c++)
    for (int s = 0; s < NS; s++)
      if (held(c, s) == heldout) want_pairs[n_pairs++] = c * 8 + s;
  /* expected folder names, sorted */
  char *want[64];
  for (int k = 0; k < n_pairs; k++) {
    want[k] = malloc(40);
    snprintf(want[k], 40, "%s_%s", COLOURS[want_pairs[k] / 8], SHAPES[want_pairs[k] % 8]);
  }
  qsort(want, (size_t)n_pairs, sizeof *want, cmp_strp);
  snprintf(path, sizeof path, "%s/%s/pair", dir, zs);
  names got = list_dir(path);
  int same = got.n == n_pairs;
  for (int k = 0; same && k < n_pairs; k++) same = !strcmp(got.name[k], want[k]);
  snprintf(name, sizeof name, "synth %s: pair folders", zs);
  th_assert(name, same, "%d folders, want exactly the %d %s pairs", got.n, n_pairs,
            heldout ? "held-out" : "training");

  /* each pair folder: per_pair images, the same bytes under colour/ and shape/ */
  int bad_count = 0, bad_copy = 0, n_images = 0, colour_n[8] = {0}, shape_n[8] = {0};
  for (int k = 0; k < got.n; k++) {
    char sub[2100];
    snprintf(sub, sizeof sub, "%s/%s", path, got.name[k]);
    names files = list_dir(sub);
    if (files.n != per_pair) bad_count++;
    char colour[32] = "", shape[32] = "";
    sscanf(got.name[k], "%31[^_]_%31s", colour, shape);
    for (int f = 0; f < files.n; f++) {
      char a[4200], b[4200], c2[4200];
      snprintf(a, sizeof a, "%s/%s", sub, files.name[f]);
      snprintf(b, sizeof b, "%s/%s/colour/%s/%s", dir, zs, colour, files.name[f]);
      snprintf(c2, sizeof c2, "%s/%s/shape/%s/%s", dir, zs, shape, files.name[f]);
      if (!same_file(a, b) || !same_file(a, c2)) bad_copy++;
      n_images++;
    }
    int ci = index_of(COLOURS, 8, colour), si = index_of(SHAPES, 8, shape);
    if (ci >= 0) colour_n[ci] += files.n;
    if (si >= 0) shape_n[si] += files.n;
    names_free(&files);
  }
  snprintf(name, sizeof name, "synth %s: images per pair", zs);
  th_assert(name, bad_count == 0, "%d folders without %d images", bad_count, per_pair);
  snprintf(name, sizeof name, "synth %s: colour/shape copies", zs);
  th_assert(name, bad_copy == 0 && n_images == n_pairs * per_pair, "%d of %d images lack identical copies",
            bad_copy, n_images);
  /* colour/ and shape/ hold exactly those counts, nothing else */
  int bad_group = 0;
  for (int kind = 0; kind < 2; kind++) {
    snprintf(path, sizeof path, "%s/%s/%s", dir, zs, kind ? "shape" : "colour");
    names g = list_dir(path);
    int total = 0;
    for (int k = 0; k < g.n; k++) {
      char sub[1200];
      snprintf(sub, sizeof sub, "%s/%s", path, g.name[k]);
      names files = list_dir(sub);
      int i = index_of(kind ? SHAPES : COLOURS, 8, g.name[k]);
      if (i < 0 || files.n != (kind ? shape_n[i] : colour_n[i])) bad_group++;
      total += files.n;
      names_free(&files);
    }
    if (total != n_images) bad_group++;
    /* class file: the folder names in order, '_' read as ' ' */
    char cls[1200];
    snprintf(cls, sizeof cls, "%s/%s/classnames_%s.txt", dir, zs, kind ? "shape" : "colour");
    char *text = slurp(cls, NULL);
    char expect[4096] = "";
    for (int k = 0; k < g.n; k++) {
      strncat(expect, g.name[k], sizeof expect - strlen(expect) - 2);
      strcat(expect, "\n");
    }
    if (!text || strcmp(text, expect) != 0) bad_group++;
    free(text);
    names_free(&g);
  }
  char cls[1200];
  snprintf(cls, sizeof cls, "%s/%s/classnames_pair.txt", dir, zs);
  char *text = slurp(cls, NULL);
  char expect[4096] = "";
  for (int k = 0; k < n_pairs; k++) {
    char line[64];
    snprintf(line, sizeof line, "%s\n", want[k]);
    for (char *q = line; *q; q++)
      if (*q == '_') *q = ' ';
    strncat(expect, line, sizeof expect - strlen(expect) - 1);
  }
  snprintf(name, sizeof name, "synth %s: colour, shape groups", zs);
  th_assert(name, bad_group == 0, "%d mismatches in colour/ and shape/ folders or their class files", bad_group);
  snprintf(name, sizeof name, "synth %s: classnames_pair.txt", zs);
  th_assert(name, text && !strcmp(text, expect), "%s", text ? "" : "missing");
  free(text);

  /* retrieval.csv: one row per image, paths relative to the folder, the
   * caption naming the image's pair */
  table t;
  snprintf(path, sizeof path, "%s/%s/retrieval.csv", dir, zs);
  int bad = csv_load(path, &t) != 0 || t.n != n_images + 1;
  for (int r = 1; !bad && r < t.n; r++) {
    char c[32] = "", s[32] = "", full[1200];
    sscanf(t.f[r][0], "pair/%31[^_]_%31[^/]", c, s);
    snprintf(full, sizeof full, "%s/%s/%s", dir, zs, t.f[r][0]);
    int nc, cc, ns, ss;
    caption_words(t.nf[r] > 1 ? t.f[r][1] : "", &nc, &cc, &ns, &ss);
    if (!exists(full) || nc != 1 || ns != 1 || strcmp(COLOURS[cc], c) || strcmp(SHAPES[ss], s)) bad = r;
  }
  snprintf(name, sizeof name, "synth %s: retrieval.csv", zs);
  th_assert(name, !bad, "%d rows, first bad row %d (0: none)", t.n - 1, bad);
  table_free(&t);
  names_free(&got);
  for (int k = 0; k < n_pairs; k++) free(want[k]);
}

/* Members of the train shards, in order, against train/ and train.csv. */
static void check_shards(const char *dir, int want_n, int shard_size) {
  table cap;
  char path[1024];
  snprintf(path, sizeof path, "%s/train.csv", dir);
  csv_load(path, &cap);
  int n_shards = (want_n + shard_size - 1) / shard_size, samples = 0, bad = 0;
  char first[512] = "";
  for (int k = 0; k < n_shards; k++) {
    snprintf(path, sizeof path, "%s/shards/train-%06d.tar", dir, k);
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, 10240) != ARCHIVE_OK) {
      bad++;
      snprintf(first, sizeof first, "%.400s: cannot open", path);
      archive_read_free(a);
      continue;
    }
    struct archive_entry *e;
    int members = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
      const char *mname = archive_entry_pathname(e);
      size_t sz = (size_t)archive_entry_size(e);
      char *data = malloc(sz + 1);
      la_ssize_t got = archive_read_data(a, data, sz);
      data[sz] = 0;
      int idx = -1;
      char ext[8] = "";
      sscanf(mname, "%d.%7s", &idx, ext);
      int want_idx = k * shard_size + members / 3;
      if (got != (la_ssize_t)sz || idx != want_idx || idx >= want_n) bad++;
      else if (!strcmp(ext, "png")) {
        char f[1200];
        snprintf(f, sizeof f, "%s/train/%06d.png", dir, idx);
        size_t n;
        char *disk = slurp(f, &n);
        if (!disk || n != sz || memcmp(disk, data, sz)) bad++;
        free(disk);
        samples++;
      } else if (!strcmp(ext, "txt")) {
        if (idx + 1 >= cap.n || strcmp(cap.f[idx + 1][1], data)) bad++;
      } else if (strcmp(ext, "json") != 0) {
        bad++;
      }
      if (bad && !first[0]) snprintf(first, sizeof first, "%.300s: member %.100s", path, mname);
      free(data);
      members++;
    }
    archive_read_free(a);
  }
  th_assert("synth shards: members match the files", bad == 0 && samples == want_n, "%d samples in %d shards, %d bad %s",
            samples, n_shards, bad, first);
  table_free(&cap);
}

/* Large shapes at 64 px, told apart by their pixels alone: a ring has a
 * hole at its box centre (no other shape does), a star fills under 43% of
 * its box (every other shape at least 44%), a circle has a square box it
 * fills 72-86%. */
static void check_shapes(const char *dir) {
  table lab;
  char path[1200];
  snprintf(path, sizeof path, "%s/train_labels.csv", dir);
  if (!th_assert("synth 64 px: labels", csv_load(path, &lab) == 0, "%s", path)) return;
  int n = 0, bad = 0, per_shape[8] = {0};
  char first[512] = "";
  for (int r = 1; r < lab.n; r++) {
    if (lab.nf[r] != 7 || strcmp(lab.f[r][3], "large")) continue;
    int s = index_of(SHAPES, 8, lab.f[r][2]);
    snprintf(path, sizeof path, "%s/%s", dir, lab.f[r][0]);
    clipcl_image im = {0, 0, NULL};
    if (s < 0 || clipcl_image_load(path, &im) != CLIPCL_OK) {
      bad++;
      continue;
    }
    int x0 = im.w, x1 = -1, y0 = im.h, y1 = -1, count = 0;
    for (int y = 0; y < im.h; y++)
      for (int x = 0; x < im.w; x++) {
        const uint8_t *p = im.rgb + ((size_t)y * im.w + x) * 3;
        int mx = p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]);
        int mn = p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
        if (mx - mn < 60) continue;
        count++;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    int ok = x1 >= 0;
    if (ok) {
      int w = x1 - x0 + 1, h = y1 - y0 + 1, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
      const uint8_t *c = im.rgb + ((size_t)cy * im.w + cx) * 3;
      int cmx = c[0] > c[1] ? (c[0] > c[2] ? c[0] : c[2]) : (c[1] > c[2] ? c[1] : c[2]);
      int cmn = c[0] < c[1] ? (c[0] < c[2] ? c[0] : c[2]) : (c[1] < c[2] ? c[1] : c[2]);
      int hole = cmx - cmn < 60;
      double fill = (double)count / ((double)w * h);
      int is_ring = !strcmp(SHAPES[s], "ring"), is_star = !strcmp(SHAPES[s], "star");
      ok = hole == is_ring && (is_star ? fill < 0.43 : fill >= 0.44);
      if (!strcmp(SHAPES[s], "circle")) ok = ok && abs(w - h) <= 1 && fill >= 0.72 && fill <= 0.86;
      if (!ok && !first[0])
        snprintf(first, sizeof first, "%.400s: %s with box %dx%d, fill %.2f, %s centre", path, SHAPES[s], w, h, fill,
                 hole ? "empty" : "filled");
    }
    bad += !ok;
    per_shape[s]++;
    n++;
    clipcl_image_free(&im);
  }
  int missing = 0;
  for (int s = 0; s < 8; s++) missing += per_shape[s] == 0;
  th_assert("synth 64 px: large shapes by their pixels", bad == 0 && missing == 0, "%d images, %d wrong, %d shapes unseen %s",
            n, bad, missing, first);
  table_free(&lab);
}

static void test_synth(void) {
  const char *common = "--size 32 --train 600 --val 40 --zeroshot-per-pair 5 --seen-per-pair 2 --format both "
                       "--shard-size 250 --quiet";
  int ra = sh("'%s/clipcl-synth' --out %s/a --seed 7 --threads 2 %s", bin, tmp, common);
  int rb = sh("'%s/clipcl-synth' --out %s/b --seed 7 --threads 1 %s", bin, tmp, common);
  int rc = sh("'%s/clipcl-synth' --out %s/c --seed 8 --threads 2 %s", bin, tmp, common);
  if (!th_assert("synth: three runs succeed", ra == 0 && rb == 0 && rc == 0, "exit codes %d %d %d", ra, rb, rc))
    return;
  th_assert("synth: same seed, same bytes", sh("diff -r -q %s/a %s/b >/dev/null", tmp, tmp) == 0,
            "seed 7 on 2 threads vs 1 thread");
  int same = 0;
  for (int i = 0; i < SYN_TRAIN; i++) {
    char pa[512], pc[512];
    snprintf(pa, sizeof pa, "%s/a/train/%06d.png", tmp, i);
    snprintf(pc, sizeof pc, "%s/c/train/%06d.png", tmp, i);
    same += same_file(pa, pc);
  }
  char p1[512], p2[512];
  snprintf(p1, sizeof p1, "%s/a/train.csv", tmp);
  snprintf(p2, sizeof p2, "%s/c/train.csv", tmp);
  th_assert("synth: another seed, other data", same == 0 && !same_file(p1, p2),
            "%d of %d training images identical between seeds 7 and 8", same, SYN_TRAIN);

  char dir[512];
  snprintf(dir, sizeof dir, "%s/a", tmp);
  check_split_rows(dir, "train", SYN_TRAIN, 0);
  check_split_rows(dir, "val", SYN_VAL, 0);
  /* --partial: some captions name only the colour or only the shape */
  int rp = sh("'%s/clipcl-synth' --out %s/p --seed 7 --partial 0.3 %s", bin, tmp, common);
  if (th_assert("synth --partial 0.3 runs", rp == 0, "exit code %d", rp)) {
    char pdir[512];
    snprintf(pdir, sizeof pdir, "%s/p", tmp);
    expect_partial = 0.3;
    check_split_rows(pdir, "train", SYN_TRAIN, 0);
    expect_partial = 0;
  }
  check_zeroshot(dir, "zeroshot", 1, ZS_PER);
  check_zeroshot(dir, "zeroshot_seen", 0, SEEN_PER);
  check_shards(dir, SYN_TRAIN, 250);

  /* Zero-shot images: their labels, decoding and pixels. */
  table lab;
  char path[1024];
  snprintf(path, sizeof path, "%s/zeroshot/labels.csv", dir);
  pixel_stats st;
  memset(&st, 0, sizeof st);
  st.large_min = 1e9;
  int bad_label = 0, rows = 0;
  if (csv_load(path, &lab) == 0) {
    for (int r = 1; r < lab.n; r++, rows++) {
      char c[32] = "", s[32] = "", full[1200];
      sscanf(lab.f[r][0], "pair/%31[^_]_%31[^/]", c, s);
      if (lab.nf[r] != 7 || strcmp(lab.f[r][1], c) || strcmp(lab.f[r][2], s)) {
        bad_label++;
        continue;
      }
      snprintf(full, sizeof full, "%s/zeroshot/%s", dir, lab.f[r][0]);
      check_pixels(full, lab.f[r][1], lab.f[r][3], lab.f[r][4], SYN_SIZE, &st);
    }
    table_free(&lab);
  }
  th_assert("synth zeroshot: labels match folders", bad_label == 0 && rows == 12 * ZS_PER, "%d rows, %d wrong", rows,
            bad_label);
  th_assert("synth zeroshot: pixels", st.decoded == rows && st.colour_bad == 0 && st.pos_bad == 0,
            "%d decoded, %d colour and %d position mismatches %s%s%s", st.decoded, st.colour_bad, st.pos_bad,
            st.first_decode, st.first_colour, st.first_pos);

  /* dataset.json names the held-out pairs of the rule */
  char *info = slurp((snprintf(path, sizeof path, "%s/dataset.json", dir), path), NULL);
  int listed = 0;
  for (int c = 0; info && c < NC; c++)
    for (int s = 0; s < NS; s++)
      if (held(c, s)) {
        char q[64];
        snprintf(q, sizeof q, "\"%s %s\"", COLOURS[c], SHAPES[s]);
        listed += strstr(info, q) != NULL;
      }
  th_assert("synth: dataset.json lists the held-out pairs", listed == 12, "%d of 12", listed);
  free(info);

  /* tar only: shards but no train/ folder or train.csv */
  int rt = sh("'%s/clipcl-synth' --out %s/t --train 30 --val 0 --zeroshot-per-pair 0 --seen-per-pair 0 --format tar "
              "--size 32 --quiet",
              bin, tmp);
  char tcsv[512], tdir[512], tshard[512];
  snprintf(tcsv, sizeof tcsv, "%s/t/train.csv", tmp);
  snprintf(tdir, sizeof tdir, "%s/t/train", tmp);
  snprintf(tshard, sizeof tshard, "%s/t/shards/train-000000.tar", tmp);
  th_assert("synth --format tar", rt == 0 && !exists(tcsv) && !exists(tdir) && exists(tshard), "exit %d", rt);

  /* explicit pairs, all 8 colours and shapes at 64 px */
  int re = sh("'%s/clipcl-synth' --out %s/e --train 500 --val 0 --zeroshot-per-pair 2 --seen-per-pair 0 --colours 8 "
              "--shapes 8 --holdout-pairs 'cyan ring, pink diamond' --quiet",
              bin, tmp);
  snprintf(path, sizeof path, "%s/e/zeroshot/pair", tmp);
  names ep = list_dir(path);
  th_assert("synth --holdout-pairs", re == 0 && ep.n == 2 && !strcmp(ep.name[0], "cyan_ring") &&
                                         !strcmp(ep.name[1], "pink_diamond"),
            "exit %d, %d pair folders", re, ep.n);
  names_free(&ep);
  clipcl_image im = {0, 0, NULL};
  snprintf(path, sizeof path, "%s/e", tmp);
  check_shapes(path);
  snprintf(path, sizeof path, "%s/e/train/000049.png", tmp);
  clipcl_status ls = clipcl_image_load(path, &im);
  th_assert("synth default size 64", ls == CLIPCL_OK && im.w == 64 && im.h == 64, "%dx%d", im.w, im.h);
  clipcl_image_free(&im);

  /* refusals: one line on stderr, non-zero exit */
  struct {
    const char *args, *want;
  } bad[] = {
      {"--out %s/r1 --holdout 6", "must be below the number of shapes"},
      {"--out %s/r2 --holdout-pairs 'red circle,brown cube'", "brown cube"},
      {"--out %s/r3 --shapes 2 --colours 2 --holdout-pairs 'red circle,green circle'", "leave shape 'circle'"},
      {"--out %s/a", "not empty"},
      {"--out %s/r4 --size 8", "--size"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    char args[512], errf[512];
    snprintf(args, sizeof args, bad[k].args, tmp);
    snprintf(errf, sizeof errf, "%s/err.txt", tmp);
    int r = sh("'%s/clipcl-synth' %s --train 5 --quiet 2>%s", bin, args, errf);
    char *msg = slurp(errf, NULL);
    int lines = 0;
    for (char *q = msg; q && *q; q++) lines += *q == '\n';
    th_assert("synth refuses bad arguments", r != 0 && msg && strstr(msg, bad[k].want) && lines == 1, "%s -> %s",
              args, msg ? msg : "(no message)");
    free(msg);
  }

  /* speed, reported (a floor far below the expected thousands per second,
   * so a loaded machine does not fail it) */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rs = sh("'%s/clipcl-synth' --out %s/s --train 3000 --val 0 --zeroshot-per-pair 0 --seen-per-pair 0 --quiet", bin,
              tmp);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  th_assert("synth speed", rs == 0 && 3000 / secs > 300, "%.0f images/s at 64x64 on %ld CPUs", 3000 / secs,
            sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---- clipcl-fashion-mnist --------------------------------------------------- */
static const char *const FM_FOLDERS[10] = {"t-shirt_top", "trouser", "pullover", "dress",   "coat",
                                           "sandal",      "shirt",   "sneaker",  "bag",     "ankle_boot"};
static const char *const FM_CLASSNAMES_SORTED =
    "ankle boot\nbag\ncoat\ndress\npullover\nsandal\nshirt\nsneaker\nt-shirt or top\ntrousers\n";

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Writes an IDX file (gzip unless plain) from a header and payload. */
static void write_gz(const char *path, const void *data, size_t n) {
  gzFile g = gzopen(path, "wb");
  gzwrite(g, data, (unsigned)n);
  gzclose(g);
}

static void make_idx(const char *dir, const char *prefix, int n, int side, uint32_t img_magic, uint32_t lab_magic,
                     int lab_n, int extra, uint8_t bad_label) {
  size_t isz = 16 + (size_t)n * side * side, lsz = 8 + (size_t)lab_n;
  uint8_t *img = malloc(isz + 4), *lab = malloc(lsz);
  put32(img, img_magic);
  put32(img + 4, (uint32_t)n);
  put32(img + 8, (uint32_t)side);
  put32(img + 12, (uint32_t)side);
  for (size_t i = 16; i < isz + 4; i++) img[i] = (uint8_t)((i * 37u) ^ (i >> 5));
  put32(lab, lab_magic);
  put32(lab + 4, (uint32_t)lab_n);
  for (int i = 0; i < lab_n; i++) lab[8 + i] = (uint8_t)((i * 7) % 10);
  if (bad_label && lab_n > 3) lab[8 + 3] = bad_label;
  char p[1024];
  snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
  write_gz(p, img, isz + (size_t)extra);
  snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
  write_gz(p, lab, lsz);
  free(img);
  free(lab);
}

/* Reads item i of a gzipped IDX file here, independently of the converter. */
static int idx_item(const char *path, int hdr, size_t item_bytes, int i, uint8_t *out) {
  gzFile g = gzopen(path, "rb");
  if (!g) return -1;
  int ok = gzseek(g, (z_off_t)(hdr + (size_t)i * item_bytes), SEEK_SET) >= 0 &&
           gzread(g, out, (unsigned)item_bytes) == (int)item_bytes;
  gzclose(g);
  return ok ? 0 : -1;
}

/* Every row of <out>/<split>_labels.csv: the file is in its class folder
 * and its pixels equal the IDX item (resampled only when side != idx side). */
static void check_fm_split(const char *out, const char *src, const char *split, const char *prefix, int want_n,
                           int side, int idx_side, const char *what) {
  char path[1024], name[128];
  table lab, cap;
  snprintf(path, sizeof path, "%s/%s_labels.csv", out, split);
  int r1 = csv_load(path, &lab);
  snprintf(path, sizeof path, "%s/%s.csv", out, split);
  int r2 = csv_load(path, &cap);
  snprintf(name, sizeof name, "fashion %s %s: csv rows", what, split);
  if (!th_assert(name, r1 == 0 && r2 == 0 && lab.n == want_n + 1 && cap.n == want_n + 1, "%d label rows, %d caption rows, want %d",
                 lab.n - 1, cap.n - 1, want_n)) {
    table_free(&lab);
    table_free(&cap);
    return;
  }
  char ip[1024], lp[1024];
  snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", src, prefix);
  snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", src, prefix);
  int bad_folder = 0, bad_pixels = 0, bad_caption = 0;
  char first[512] = "";
  for (int r = 1; r < lab.n; r++) {
    uint8_t label = 255;
    idx_item(lp, 8, 1, r - 1, &label);
    char want_prefix[96];
    snprintf(want_prefix, sizeof want_prefix, "%s/%s/", split, label < 10 ? FM_FOLDERS[label] : "?");
    if (lab.nf[r] != 3 || strncmp(lab.f[r][0], want_prefix, strlen(want_prefix)) || atoi(lab.f[r][1]) != label ||
        strcmp(cap.f[r][0], lab.f[r][0]))
      bad_folder++;
    if (cap.nf[r] != 2 || strlen(cap.f[r][1]) < 3) bad_caption++;
    snprintf(path, sizeof path, "%s/%s", out, lab.f[r][0]);
    clipcl_image im = {0, 0, NULL};
    int ok = clipcl_image_load(path, &im) == CLIPCL_OK && im.w == side && im.h == side;
    uint8_t raw[28 * 28];
    if (ok && side == idx_side && idx_item(ip, 16, (size_t)side * side, r - 1, raw) == 0) {
      for (int k = 0; ok && k < side * side; k++)
        ok = im.rgb[3 * k] == raw[k] && im.rgb[3 * k + 1] == raw[k] && im.rgb[3 * k + 2] == raw[k];
    } else if (ok) {
      /* resampled: grey stays grey (PIL parity of the resampler is
       * tested with the image code) */
      for (int k = 0; ok && k < side * side; k++) ok = im.rgb[3 * k] == im.rgb[3 * k + 1] && im.rgb[3 * k] == im.rgb[3 * k + 2];
    }
    if (!ok) {
      bad_pixels++;
      if (!first[0]) snprintf(first, sizeof first, "%.400s", path);
    }
    clipcl_image_free(&im);
  }
  snprintf(name, sizeof name, "fashion %s %s: class folders, labels", what, split);
  th_assert(name, bad_folder == 0, "%d of %d rows wrong", bad_folder, want_n);
  snprintf(name, sizeof name, "fashion %s %s: captions", what, split);
  th_assert(name, bad_caption == 0, "%d empty", bad_caption);
  snprintf(name, sizeof name, "fashion %s %s: pixels", what, split);
  th_assert(name, bad_pixels == 0, "%d of %d images differ from the IDX bytes %s", bad_pixels, want_n, first);
  /* the folders hold exactly the listed files */
  int files = 0;
  for (int k = 0; k < 10; k++) {
    snprintf(path, sizeof path, "%s/%s/%s", out, split, FM_FOLDERS[k]);
    names d = list_dir(path);
    files += d.n > 0 ? d.n : 0;
    names_free(&d);
  }
  snprintf(name, sizeof name, "fashion %s %s: file count", what, split);
  th_assert(name, files == want_n, "%d files in the class folders, want %d", files, want_n);
  table_free(&lab);
  table_free(&cap);
}

static void test_fashion(void) {
  char src[512], path[1024];
  /* a small valid set made here: 23 train and 17 test images of 12x12 */
  snprintf(src, sizeof src, "%s/fsrc", tmp);
  mkdir(src, 0777);
  make_idx(src, "train", 23, 12, 0x803, 0x801, 23, 0, 0);
  make_idx(src, "t10k", 17, 12, 0x803, 0x801, 17, 0, 0);
  int r1 = sh("'%s/clipcl-fashion-mnist' --src %s --out %s/f1 --quiet", bin, src, tmp);
  int r2 = sh("'%s/clipcl-fashion-mnist' --src %s --out %s/f2 --threads 1 --quiet", bin, src, tmp);
  if (th_assert("fashion small set: converts", r1 == 0 && r2 == 0, "exit codes %d %d", r1, r2)) {
    snprintf(path, sizeof path, "%s/f1", tmp);
    check_fm_split(path, src, "train", "train", 23, 12, 12, "small set");
    check_fm_split(path, src, "test", "t10k", 17, 12, 12, "small set");
    th_assert("fashion small set: deterministic", sh("diff -r -q %s/f1 %s/f2 >/dev/null", tmp, tmp) == 0, NULL);
    snprintf(path, sizeof path, "%s/f1/classnames.txt", tmp);
    char *cn = slurp(path, NULL);
    th_assert("fashion classnames.txt", cn && !strcmp(cn, FM_CLASSNAMES_SORTED), "%s", cn ? cn : "missing");
    free(cn);
    snprintf(path, sizeof path, "%s/f1/test", tmp);
    names d = list_dir(path);
    const char *want[10] = {"ankle_boot", "bag",   "coat",    "dress",       "pullover",
                            "sandal",     "shirt", "sneaker", "t-shirt_top", "trouser"};
    int same = d.n == 10;
    for (int k = 0; same && k < 10; k++) same = !strcmp(d.name[k], want[k]);
    th_assert("fashion test folders", same, "%d folders, want the 10 classes", d.n);
    names_free(&d);
  }
  int r3 = sh("'%s/clipcl-fashion-mnist' --src %s --out %s/f3 --size 20 --limit 9 --quiet", bin, src, tmp);
  snprintf(path, sizeof path, "%s/f3", tmp);
  if (th_assert("fashion --size 20 --limit 9", r3 == 0, "exit %d", r3)) {
    check_fm_split(path, src, "train", "train", 9, 20, 12, "resized");
  }

  /* corrupt IDX files: each refused with one line naming it, nothing written */
  struct {
    const char *what, *file;
    int n, img_magic, lab_n, extra;
    uint8_t bad_label;
    int flip; /* flip a byte of the gzip stream of `file` */
  } bad[] = {
      {"bad image magic", "train-images-idx3-ubyte.gz", 23, 0x802, 23, 0, 0, 0},
      {"truncated images", "train-images-idx3-ubyte.gz", 23, 0x803, 23, -100, 0, 0},
      {"trailing data", "train-images-idx3-ubyte.gz", 23, 0x803, 23, 3, 0, 0},
      {"label count", "train-labels-idx1-ubyte.gz", 23, 0x803, 22, 0, 0, 0},
      {"label value", "train-labels-idx1-ubyte.gz", 23, 0x803, 23, 0, 10, 0},
      {"corrupt gzip", "train-images-idx3-ubyte.gz", 23, 0x803, 23, 0, 0, 1},
      {"huge header", "train-images-idx3-ubyte.gz", -1, 0x803, 23, 0, 0, 0},
  };
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    char bdir[512], out[512], errf[512];
    snprintf(bdir, sizeof bdir, "%s/bad%zu", tmp, k);
    snprintf(out, sizeof out, "%s/badout%zu", tmp, k);
    snprintf(errf, sizeof errf, "%s/bad%zu.err", tmp, k);
    mkdir(bdir, 0777);
    make_idx(bdir, "t10k", 5, 12, 0x803, 0x801, 5, 0, 0);
    if (bad[k].n < 0) {
      /* header claiming 2^32-1 images of 4096x4096 */
      uint8_t h[16];
      put32(h, 0x803);
      put32(h + 4, 0xffffffffu);
      put32(h + 8, 4096);
      put32(h + 12, 4096);
      snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", bdir);
      make_idx(bdir, "train", 23, 12, 0x803, 0x801, 23, 0, 0);
      write_gz(path, h, sizeof h);
    } else {
      make_idx(bdir, "train", bad[k].n, 12, (uint32_t)bad[k].img_magic, 0x801, bad[k].lab_n, bad[k].extra,
               bad[k].bad_label);
    }
    snprintf(path, sizeof path, "%s/%s", bdir, bad[k].file);
    if (bad[k].flip) {
      size_t n;
      char *gz = slurp(path, &n);
      gz[n / 2] ^= 0x55;
      FILE *f = fopen(path, "wb");
      fwrite(gz, 1, n, f);
      fclose(f);
      free(gz);
    }
    int r = sh("'%s/clipcl-fashion-mnist' --src %s --out %s 2>%s", bin, bdir, out, errf);
    char *msg = slurp(errf, NULL);
    int lines = 0;
    for (char *q = msg; q && *q; q++) lines += *q == '\n';
    char nm[96];
    snprintf(nm, sizeof nm, "fashion refuses: %s", bad[k].what);
    th_assert(nm, r == 1 && msg && strstr(msg, path) && lines == 1 && !exists(out), "exit %d: %s", r,
              msg ? msg : "(no message)");
    free(msg);
  }

  /* Debian's package */
  const char *deb = "/usr/share/datasets/fashion-mnist";
  snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", deb);
  int have = exists(path);
  if (!th_assert("fashion: Debian's dataset-fashion-mnist installed", have, "%s%s", path,
                 have ? "" : " missing: apt-get install dataset-fashion-mnist (scripts/bootstrap deps)"))
    return;
  int rd = sh("'%s/clipcl-fashion-mnist' --out %s/fd --limit 30 --quiet", bin, tmp);
  snprintf(path, sizeof path, "%s/fd", tmp);
  if (th_assert("fashion Debian --limit 30: converts", rd == 0, "exit %d", rd)) {
    check_fm_split(path, deb, "train", "train", 30, 28, 28, "Debian");
    check_fm_split(path, deb, "test", "t10k", 30, 28, 28, "Debian");
  }
}

int main(void) {
  const char *env = getenv("CLIPCL_DATASETS_DIR");
  if (env && *env) {
    snprintf(bin, sizeof bin, "%s", env);
  } else {
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
      fprintf(stderr, "cannot find this test's path; set CLIPCL_DATASETS_DIR\n");
      return 1;
    }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0; /* <build>/tests */
    slash = strrchr(exe, '/');
    if (slash) *slash = 0; /* <build> */
    snprintf(bin, sizeof bin, "%s/datasets", exe);
  }
  char probe[1200];
  snprintf(probe, sizeof probe, "%s/clipcl-synth", bin);
  if (access(probe, X_OK) != 0) {
    fprintf(stderr, "%s: not built (cmake --build builds datasets/ too; or set CLIPCL_DATASETS_DIR)\n", probe);
    return 1;
  }
  const char *td = getenv("TMPDIR");
  snprintf(tmp, sizeof tmp, "%s/clipcl-datasets-XXXXXX", td && *td ? td : "/tmp");
  if (!mkdtemp(tmp)) {
    fprintf(stderr, "cannot create a temporary folder: %s\n", strerror(errno));
    return 1;
  }
  test_synth();
  test_fashion();
  sh("rm -rf '%s'", tmp);
  return th_finish(NULL);
}

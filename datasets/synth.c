/* synth.c: clipcl-synth, a seeded generator of a captioned synthetic image
 * set for CLIP training and zero-shot tests: one coloured shape per image
 * (anti-aliased, varied size, position and rotation) on a neutral plain,
 * gradient or noisy background, optional grey clutter, a caption in one of
 * twelve phrasings, and colour-shape pairs held out of training for a
 * zero-shot test of composition. Layout and options: datasets/README.md.
 *
 * Determinism: every image draws from its own random stream (seed, split,
 * index) and is drawn with arithmetic alone (sin/cos included, see
 * ds_sincos), so the output is byte-identical for the same arguments
 * whatever the thread count. Not here: training, the loader, evaluation.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "util/error.h"

/* ---- the palettes ---------------------------------------------------------
 * Shape colours are saturated and far apart; backgrounds are neutral, so an
 * image's only saturated region is the shape and the caption's one colour
 * word names it. --colours N / --shapes N take the first N of each list. */
typedef struct {
  const char *name;
  uint8_t rgb[3];
} named_rgb;

#define MAX_COLOURS 8
static const named_rgb COLOURS[MAX_COLOURS] = {
    {"red", {215, 35, 35}},    {"green", {35, 160, 60}},   {"blue", {35, 85, 225}},  {"yellow", {245, 205, 25}},
    {"purple", {135, 55, 190}}, {"orange", {245, 130, 20}}, {"pink", {245, 115, 185}}, {"cyan", {25, 190, 210}},
};

#define N_BACKGROUNDS 6
static const named_rgb BACKGROUNDS[N_BACKGROUNDS] = {
    {"white", {248, 248, 248}}, {"light grey", {200, 200, 200}}, {"grey", {128, 128, 128}},
    {"dark grey", {64, 64, 64}}, {"black", {12, 12, 12}},         {"beige", {226, 212, 182}},
};

enum { SH_CIRCLE, SH_SQUARE, SH_TRIANGLE, SH_STAR, SH_CROSS, SH_HEART, SH_DIAMOND, SH_RING, MAX_SHAPES };
static const char *const SHAPES[MAX_SHAPES] = {"circle", "square", "triangle", "star",
                                               "cross",  "heart",  "diamond",  "ring"};

/* Radius fractions of the image side for small, medium and large shapes. */
static const double SIZE_LO[3] = {0.11, 0.18, 0.26}, SIZE_HI[3] = {0.16, 0.23, 0.32};
static const char *const SIZE_NAMES[3] = {"small", "medium", "large"};
static const char *const SIZE_WORDS[3][2] = {{"small", "little"}, {"medium-sized", "medium"}, {"large", "big"}};

/* 3x3 grid of the shape's centre, row-major from the top left. */
static const char *const POS_NAMES[9] = {"top left", "top",    "top right",   "left",        "centre",
                                         "right",    "bottom left", "bottom", "bottom right"};
static const char *const POS_PHRASES[9] = {"in the top left", "at the top",    "in the top right",
                                           "on the left",     "in the centre", "on the right",
                                           "in the bottom left", "at the bottom", "in the bottom right"};

/* Shapes reach at most this far from their centre, in radii (the square's
 * corners; sd_shape's other shapes stay inside it). */
#define SHAPE_EXTENT 1.16
/* No background may lie closer than this (RGB distance) to the shape colour. */
#define MIN_CONTRAST 90.0

enum { BG_PLAIN, BG_GRADIENT, BG_NOISE };
enum { SPLIT_TRAIN = 1, SPLIT_VAL = 2, SPLIT_ZEROSHOT = 3, SPLIT_SEEN = 4 };

/* ---- options --------------------------------------------------------------- */
typedef struct {
  const char *out;
  uint64_t seed;
  int size, n_train, n_val, zs_per_pair, seen_per_pair;
  int n_colours, n_shapes, holdout_k;
  const char *holdout_list;
  double p_clutter, p_noise, p_gradient;
  int files, tar, shard_size, threads, quiet;
  double p_partial;
} options;

/* The data set's pairs: held[c][s] marks a pair kept out of training. */
typedef struct {
  options o;
  int held[MAX_COLOURS][MAX_SHAPES];
  int allowed[MAX_COLOURS * MAX_SHAPES]; /* pair ids c*MAX_SHAPES+s seen in training */
  int n_allowed;
  /* polygon vertices of the polygonal shapes, unit radius, pointing up */
  double tri[3][2], star[10][2], diamond[4][2];
} world;

/* ---- geometry: signed distances in shape units (negative inside) ------- */
static double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

static double sd_box(double x, double y, double hx, double hy) {
  double qx = fabs(x) - hx, qy = fabs(y) - hy;
  double ox = qx > 0 ? qx : 0, oy = qy > 0 ? qy : 0;
  double inside = qx > qy ? qx : qy;
  return sqrt(ox * ox + oy * oy) + (inside < 0 ? inside : 0);
}

/* Distance to the nearest edge, negative when an even-odd crossing count
 * says the point is inside. */
static double sd_polygon(double x, double y, const double (*v)[2], int n) {
  double best = INFINITY;
  int inside = 0;
  for (int i = 0, j = n - 1; i < n; j = i++) {
    double ex = v[i][0] - v[j][0], ey = v[i][1] - v[j][1];
    double wx = x - v[j][0], wy = y - v[j][1];
    double t = clamp01((wx * ex + wy * ey) / (ex * ex + ey * ey));
    double dx = wx - ex * t, dy = wy - ey * t;
    double d2 = dx * dx + dy * dy;
    if (d2 < best) best = d2;
    if ((v[i][1] > y) != (v[j][1] > y) && x < v[j][0] + (y - v[j][1]) * ex / ey) inside = !inside;
  }
  return inside ? -sqrt(best) : sqrt(best);
}

static double sd_shape(const world *w, int shape, double x, double y) {
  switch (shape) {
    case SH_CIRCLE: return sqrt(x * x + y * y) - 0.95;
    case SH_SQUARE: return sd_box(x, y, 0.82, 0.82);
    case SH_TRIANGLE: return sd_polygon(x, y, w->tri, 3);
    case SH_STAR: return sd_polygon(x, y, w->star, 10);
    case SH_CROSS: {
      double a = sd_box(x, y, 0.98, 0.32), b = sd_box(x, y, 0.32, 0.98);
      return a < b ? a : b;
    }
    case SH_HEART: {
      /* A square standing on a corner with a disc on each upper edge. */
      const double h = 0.8, y0 = 0.1035 * h, rr = h / sqrt(2.0);
      const double v[4][2] = {{0, y0 - h}, {h, y0}, {0, y0 + h}, {-h, y0}};
      double sq = sd_polygon(x, y, v, 4);
      double cl = sqrt((x + h / 2) * (x + h / 2) + (y - y0 + h / 2) * (y - y0 + h / 2)) - rr;
      double cr = sqrt((x - h / 2) * (x - h / 2) + (y - y0 + h / 2) * (y - y0 + h / 2)) - rr;
      double m = sq < cl ? sq : cl;
      return m < cr ? m : cr;
    }
    case SH_DIAMOND: return sd_polygon(x, y, w->diamond, 4);
    case SH_RING: return fabs(sqrt(x * x + y * y) - 0.72) - 0.25;
    default: return 1;
  }
}

static void init_polygons(world *w) {
  const double pi = 3.14159265358979323846;
  for (int k = 0; k < 3; k++) {
    double s, c;
    ds_sincos(-pi / 2 + k * 2 * pi / 3, &s, &c);
    /* shifted down so the triangle's box, not its centroid, is centred;
     * then its corners lie 1.146 from the centre, inside SHAPE_EXTENT */
    w->tri[k][0] = c;
    w->tri[k][1] = s + 0.25;
  }
  for (int k = 0; k < 10; k++) {
    double s, c, r = (k % 2) ? 0.45 : 1.1;
    ds_sincos(-pi / 2 + k * pi / 5, &s, &c);
    w->star[k][0] = r * c;
    w->star[k][1] = r * s + 0.06;
  }
  const double d[4][2] = {{0, -1.08}, {0.72, 0}, {0, 1.08}, {-0.72, 0}};
  memcpy(w->diamond, d, sizeof d);
}

/* ---- one image ----------------------------------------------------------- */
typedef struct {
  int colour, shape, size, pos;
  double cx, cy, r, c, s; /* centre and radius in pixels; cos and sin of the turn */
  double rgb[3];
  int bg_kind, bg1, bg2;
  double gx, gy; /* gradient direction, unit */
  int n_clutter;
} scene;

static double rgb_dist(const uint8_t *a, const double *b) {
  double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
  return sqrt(d0 * d0 + d1 * d1 + d2 * d2);
}

static int pick_background(const scene *sc, uint64_t *rng, int avoid) {
  int ok[N_BACKGROUNDS], n = 0;
  for (int b = 0; b < N_BACKGROUNDS; b++)
    if (b != avoid && rgb_dist(BACKGROUNDS[b].rgb, sc->rgb) >= MIN_CONTRAST) ok[n++] = b;
  return n ? ok[ds_below(rng, (uint32_t)n)] : -1;
}

/* Draws the scene's parameters; the draw order is part of the format (a
 * change here changes every image of a seed). */
static void sample_scene(const world *w, int colour, int shape, uint64_t *rng, scene *sc) {
  const options *o = &w->o;
  const double S = o->size;
  memset(sc, 0, sizeof *sc);
  sc->colour = colour;
  sc->shape = shape;
  for (int k = 0; k < 3; k++) {
    double v = COLOURS[colour].rgb[k] + ds_range(rng, -12, 12);
    sc->rgb[k] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  sc->size = (int)ds_below(rng, 3);
  sc->r = S * ds_range(rng, SIZE_LO[sc->size], SIZE_HI[sc->size]);
  double lo = sc->r * SHAPE_EXTENT + 1, hi = S - lo;
  sc->cx = hi > lo ? ds_range(rng, lo, hi) : S / 2;
  sc->cy = hi > lo ? ds_range(rng, lo, hi) : S / 2;
  int col = sc->cx < S / 3 ? 0 : sc->cx >= 2 * S / 3 ? 2 : 1;
  int row = sc->cy < S / 3 ? 0 : sc->cy >= 2 * S / 3 ? 2 : 1;
  sc->pos = row * 3 + col;
  /* A small turn keeps squares square and diamonds diamonds. */
  ds_sincos(ds_range(rng, -0.26, 0.26), &sc->s, &sc->c);
  double u = ds_uniform(rng);
  sc->bg_kind = u < o->p_noise ? BG_NOISE : u < o->p_noise + o->p_gradient ? BG_GRADIENT : BG_PLAIN;
  sc->bg1 = pick_background(sc, rng, -1);
  sc->bg2 = sc->bg_kind == BG_GRADIENT ? pick_background(sc, rng, sc->bg1) : sc->bg1;
  if (sc->bg2 < 0) {
    sc->bg_kind = BG_PLAIN;
    sc->bg2 = sc->bg1;
  }
  static const double DIRS[8][2] = {{1, 0},       {0, 1},        {-1, 0},       {0, -1},
                                    {0.70710678, 0.70710678},   {-0.70710678, 0.70710678},
                                    {0.70710678, -0.70710678},  {-0.70710678, -0.70710678}};
  int d = (int)ds_below(rng, 8);
  sc->gx = DIRS[d][0];
  sc->gy = DIRS[d][1];
  sc->n_clutter = ds_uniform(rng) < o->p_clutter ? 1 + (int)ds_below(rng, 3) : 0;
}

static double luminance(const uint8_t *c) { return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]; }

/* Blends colour rgb with coverage cov into the float image at pixel p. */
static void blend(float *img, size_t p, const double *rgb, double cov) {
  for (int k = 0; k < 3; k++) img[p * 3 + k] = (float)(img[p * 3 + k] * (1 - cov) + rgb[k] * cov);
}

static double sd_segment(double x, double y, double ax, double ay, double bx, double by) {
  double ex = bx - ax, ey = by - ay, wx = x - ax, wy = y - ay;
  double l2 = ex * ex + ey * ey;
  double t = l2 > 0 ? clamp01((wx * ex + wy * ey) / l2) : 0;
  double dx = wx - ex * t, dy = wy - ey * t;
  return sqrt(dx * dx + dy * dy);
}

/* Renders into img (S*S*3 floats) and quantises into out (S*S*3 bytes).
 * rng continues the scene's stream (noise and clutter). */
static void render(const world *w, const scene *sc, uint64_t *rng, float *img, uint8_t *out) {
  const int S = w->o.size;
  const double sc_px = S / 64.0; /* clutter scales with the image */
  const uint8_t *b1 = BACKGROUNDS[sc->bg1].rgb, *b2 = BACKGROUNDS[sc->bg2].rgb;
  /* background */
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) {
      size_t p = (size_t)y * S + x;
      double t = 0;
      if (sc->bg_kind == BG_GRADIENT)
        t = clamp01(0.5 + (((x + 0.5) / S - 0.5) * sc->gx + ((y + 0.5) / S - 0.5) * sc->gy) / 1.2);
      double n = sc->bg_kind == BG_NOISE ? ds_range(rng, -14, 14) : 0;
      for (int k = 0; k < 3; k++) img[p * 3 + k] = (float)(b1[k] + (b2[k] - b1[k]) * t + n);
    }
  /* clutter: grey lines and dots behind the shape, never a shape colour */
  if (sc->n_clutter) {
    static const double GREYS[4] = {40, 100, 160, 220};
    double l1 = luminance(b1), l2 = luminance(b2);
    int ok[4], n_ok = 0;
    for (int g = 0; g < 4; g++)
      if (fabs(GREYS[g] - l1) >= 45 && fabs(GREYS[g] - l2) >= 45) ok[n_ok++] = g;
    for (int i = 0; i < sc->n_clutter; i++) {
      double g = n_ok ? GREYS[ok[ds_below(rng, (uint32_t)n_ok)]] : 128;
      double rgb[3] = {g, g, g};
      int line = ds_uniform(rng) < 0.6;
      double ax = ds_range(rng, 0, S), ay = ds_range(rng, 0, S);
      double bx = line ? ds_range(rng, 0, S) : ax, by = line ? ds_range(rng, 0, S) : ay;
      double half = line ? ds_range(rng, 0.35, 0.7) * sc_px : ds_range(rng, 0.8, 1.6) * sc_px;
      if (half < 0.4) half = 0.4;
      int x0 = (int)((ax < bx ? ax : bx) - half - 2), x1 = (int)((ax > bx ? ax : bx) + half + 2);
      int y0 = (int)((ay < by ? ay : by) - half - 2), y1 = (int)((ay > by ? ay : by) + half + 2);
      if (x0 < 0) x0 = 0;
      if (y0 < 0) y0 = 0;
      if (x1 > S - 1) x1 = S - 1;
      if (y1 > S - 1) y1 = S - 1;
      for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
          double d = sd_segment(x + 0.5, y + 0.5, ax, ay, bx, by) - half;
          double cov = clamp01(0.5 - d);
          if (cov > 0) blend(img, (size_t)y * S + x, rgb, cov);
        }
    }
  }
  /* the shape: coverage from the signed distance in pixels, which is the
   * box-filtered edge of a straight boundary */
  double ext = sc->r * SHAPE_EXTENT + 2;
  int x0 = (int)(sc->cx - ext), x1 = (int)(sc->cx + ext), y0 = (int)(sc->cy - ext), y1 = (int)(sc->cy + ext);
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 > S - 1) x1 = S - 1;
  if (y1 > S - 1) y1 = S - 1;
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) {
      double dx = x + 0.5 - sc->cx, dy = y + 0.5 - sc->cy;
      double u = (dx * sc->c + dy * sc->s) / sc->r, v = (-dx * sc->s + dy * sc->c) / sc->r;
      double cov = clamp01(0.5 - sd_shape(w, sc->shape, u, v) * sc->r);
      if (cov > 0) blend(img, (size_t)y * S + x, sc->rgb, cov);
    }
  for (size_t i = 0; i < (size_t)S * S * 3; i++) {
    float v = img[i];
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5f);
  }
}

/* ---- captions and labels ------------------------------------------------- */
/* {a}: "a" or "an" for the next word; {c} colour; {s} shape; {z} size word;
 * {p} position phrase; {b} background phrase. */
static const char *const TEMPLATES[] = {
    "{a} {c} {s}",
    "{a} {z} {c} {s}",
    "a photo of {a} {z} {c} {s} on {a} {b}",
    "{c} {s} {p}",
    "a picture of {a} {c} {s} {p}",
    "{a} {c} {s} on {a} {b}",
    "{a} {s} that is {c}",
    "a drawing of {a} {z} {c} {s} {p} on {a} {b}",
    "an image of {a} {c} {s}",
    "{c} {s}",
    "there is {a} {c} {s} {p}",
    "{a} {z} {c} {s} {p}",
};
#define N_TEMPLATES (int)(sizeof TEMPLATES / sizeof *TEMPLATES)

/* Captions naming one attribute only (--partial): real captions seldom name
 * everything, and without them a model can learn each colour-shape pair as
 * a whole and fail on pairs it never saw (see datasets/README.md). Two in
 * three name the shape, one in three the colour. */
static const char *const SHAPE_ONLY[] = {
    "{a} {s}", "a photo of {a} {s}", "{a} {z} {s} {p}", "{a} {s} on {a} {b}", "there is {a} {s} {p}",
};
static const char *const COLOUR_ONLY[] = {
    "something {c}", "{a} {c} object", "{a} {c} thing {p}", "a photo of something {c} on {a} {b}",
};

#define TEXT_CAP 256

static void background_phrase(const scene *sc, char *out, size_t cap) {
  if (sc->bg_kind == BG_GRADIENT)
    snprintf(out, cap, "%s and %s gradient background", BACKGROUNDS[sc->bg1].name, BACKGROUNDS[sc->bg2].name);
  else if (sc->bg_kind == BG_NOISE)
    snprintf(out, cap, "noisy %s background", BACKGROUNDS[sc->bg1].name);
  else
    snprintf(out, cap, "%s background", BACKGROUNDS[sc->bg1].name);
}

/* Returns 0 on success, -1 if the text would not fit. p_partial: the chance
 * of a one-attribute caption (0 for zero-shot and retrieval files). */
static int make_caption(const scene *sc, uint64_t *rng, double p_partial, char *out) {
  const char *t = TEMPLATES[ds_below(rng, N_TEMPLATES)];
  if (p_partial > 0 && ds_uniform(rng) < p_partial) {
    if (ds_below(rng, 3) < 2) t = SHAPE_ONLY[ds_below(rng, sizeof SHAPE_ONLY / sizeof *SHAPE_ONLY)];
    else t = COLOUR_ONLY[ds_below(rng, sizeof COLOUR_ONLY / sizeof *COLOUR_ONLY)];
  }
  const char *z = SIZE_WORDS[sc->size][ds_below(rng, 2)];
  const char *p = sc->pos == 4 && ds_below(rng, 2) ? "in the middle" : POS_PHRASES[sc->pos];
  char bg[96];
  background_phrase(sc, bg, sizeof bg);
  char tmp[TEXT_CAP];
  size_t n = 0;
  /* first pass: everything but the articles, which become \1 */
  while (*t) {
    const char *piece = NULL;
    size_t len = 1;
    if (*t == '{' && t[1] && t[2] == '}') {
      switch (t[1]) {
        case 'a': piece = "\1"; break;
        case 'c': piece = COLOURS[sc->colour].name; break;
        case 's': piece = SHAPES[sc->shape]; break;
        case 'z': piece = z; break;
        case 'p': piece = p; break;
        case 'b': piece = bg; break;
        default: return -1;
      }
      t += 3;
      len = strlen(piece);
    } else {
      piece = t++;
    }
    if (n + len >= TEXT_CAP) return -1;
    memcpy(tmp + n, piece, len);
    n += len;
  }
  tmp[n] = 0;
  /* second pass: "an" before a vowel */
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (tmp[i] != '\1') {
      if (m + 1 >= TEXT_CAP) return -1;
      out[m++] = tmp[i];
      continue;
    }
    char next = i + 2 < n ? tmp[i + 2] : 0;
    int an = next == 'a' || next == 'e' || next == 'i' || next == 'o' || next == 'u';
    if (m + 3 >= TEXT_CAP) return -1;
    out[m++] = 'a';
    if (an) out[m++] = 'n';
  }
  out[m] = 0;
  return 0;
}

/* Label columns after filepath: colour,shape,size,position,background,clutter */
static int make_label(const scene *sc, char *out) {
  char bg[96];
  if (sc->bg_kind == BG_GRADIENT)
    snprintf(bg, sizeof bg, "gradient %s/%s", BACKGROUNDS[sc->bg1].name, BACKGROUNDS[sc->bg2].name);
  else
    snprintf(bg, sizeof bg, "%s %s", sc->bg_kind == BG_NOISE ? "noisy" : "plain", BACKGROUNDS[sc->bg1].name);
  int n = snprintf(out, TEXT_CAP, "%s,%s,%s,%s,%s,%d", COLOURS[sc->colour].name, SHAPES[sc->shape],
                   SIZE_NAMES[sc->size], POS_NAMES[sc->pos], bg, sc->n_clutter);
  return n > 0 && n < TEXT_CAP ? 0 : -1;
}

/* ---- splits -----------------------------------------------------------------
 * A split is a list of items; item i has a fixed pair or (pair < 0) draws one
 * of the training pairs from its stream. */
typedef struct {
  const char *name; /* "train", "val", "zeroshot", "zeroshot_seen" */
  int id;           /* stream split id */
  int n;
  int *pair;      /* NULL: drawn; else pair id per item */
  char (*rel)[96]; /* path of the image relative to OUT (first copy) */
  char (*caption)[TEXT_CAP];
  char (*label)[TEXT_CAP];
} split;

typedef struct {
  const world *w;
  split *sp;
  int base; /* first item of the current chunk */
  cc_buf *png; /* per chunk slot */
  float **fimg;
  uint8_t **bimg;
  int keep_png; /* tar wanted: keep the encoded bytes in png[] */
  int write_files;
  int zs_copies; /* zero-shot: also copy into colour/ and shape/ folders */
} gen_ctx;

static clipcl_status write_copy(const char *out, const char *rel, const cc_buf *png) {
  char *path = ds_join(out, rel);
  if (!path) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", rel);
  clipcl_status s = ds_write_file(path, png->p, png->len);
  free(path);
  return s;
}

static clipcl_status gen_item(void *vctx, int slot, int thread) {
  gen_ctx *g = vctx;
  const world *w = g->w;
  split *sp = g->sp;
  int i = g->base + slot;
  uint64_t rng = ds_stream(w->o.seed, (uint64_t)sp->id, (uint64_t)i);
  int pair = sp->pair ? sp->pair[i] : w->allowed[ds_below(&rng, (uint32_t)w->n_allowed)];
  scene sc;
  sample_scene(w, pair / MAX_SHAPES, pair % MAX_SHAPES, &rng, &sc);
  /* one-attribute captions only where a model learns from them */
  double partial = sp->id == SPLIT_TRAIN || sp->id == SPLIT_VAL ? w->o.p_partial : 0.0;
  if (make_caption(&sc, &rng, partial, sp->caption[i]) != 0 || make_label(&sc, sp->label[i]) != 0)
    return cc_fail(CLIPCL_ERR_ARG, "%s: caption too long", sp->rel[i]);
  render(w, &sc, &rng, g->fimg[thread], g->bimg[thread]);
  cc_buf *png = &g->png[slot];
  CC_TRY(ds_png_encode(g->bimg[thread], w->o.size, w->o.size, 3, png, sp->rel[i]));
  if (g->write_files) {
    CC_TRY(write_copy(w->o.out, sp->rel[i], png));
    if (g->zs_copies) {
      /* "pair/red_circle/000012.png" -> "colour/red/..." and "shape/circle/..." */
      const char *zs = sp->name;
      const char *base = strrchr(sp->rel[i], '/') + 1;
      char rel[160];
      snprintf(rel, sizeof rel, "%s/colour/%s/%s", zs, COLOURS[sc.colour].name, base);
      CC_TRY(write_copy(w->o.out, rel, png));
      snprintf(rel, sizeof rel, "%s/shape/%s/%s", zs, SHAPES[sc.shape], base);
      CC_TRY(write_copy(w->o.out, rel, png));
    }
  }
  return CLIPCL_OK;
}

#define CHUNK 512

typedef struct {
  ds_tar *tar;
  int shard, in_shard, n_shards;
} shard_writer;

static clipcl_status shard_add(const world *w, shard_writer *sw, const split *sp, int i, const cc_buf *png) {
  if (sw->tar && sw->in_shard == w->o.shard_size) {
    CC_TRY(ds_tar_close(sw->tar));
    sw->tar = NULL;
  }
  if (!sw->tar) {
    char rel[64];
    snprintf(rel, sizeof rel, "shards/%s-%06d.tar", sp->name, sw->n_shards);
    char *path = ds_join(w->o.out, rel);
    if (!path) return cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
    clipcl_status s = ds_tar_open(path, &sw->tar);
    free(path);
    CC_TRY(s);
    sw->n_shards++;
    sw->in_shard = 0;
  }
  char name[32];
  snprintf(name, sizeof name, "%06d.png", i);
  CC_TRY(ds_tar_add(sw->tar, name, png->p, png->len));
  snprintf(name, sizeof name, "%06d.txt", i);
  CC_TRY(ds_tar_add(sw->tar, name, sp->caption[i], strlen(sp->caption[i])));
  /* labels as JSON, for users who want them next to the sample */
  char colour[16], shape[16], size[16], pos[16], bg[64];
  int clutter = 0;
  char js[TEXT_CAP + 128];
  if (sscanf(sp->label[i], "%15[^,],%15[^,],%15[^,],%15[^,],%63[^,],%d", colour, shape, size, pos, bg, &clutter) != 6)
    return cc_fail(CLIPCL_ERR_ARG, "%s: bad label", sp->rel[i]);
  int n = snprintf(js, sizeof js,
                   "{\"colour\": \"%s\", \"shape\": \"%s\", \"size\": \"%s\", \"position\": \"%s\", "
                   "\"background\": \"%s\", \"clutter\": %d}",
                   colour, shape, size, pos, bg, clutter);
  snprintf(name, sizeof name, "%06d.json", i);
  CC_TRY(ds_tar_add(sw->tar, name, js, (size_t)n));
  sw->in_shard++;
  return CLIPCL_OK;
}

static clipcl_status run_split(const world *w, split *sp, int write_files, int tar, int zs_copies,
                               int *n_shards) {
  const options *o = &w->o;
  int threads = o->threads;
  size_t px = (size_t)o->size * o->size * 3;
  gen_ctx g = {w, sp, 0, NULL, NULL, NULL, tar, write_files, zs_copies};
  g.png = calloc(CHUNK, sizeof *g.png);
  g.fimg = calloc((size_t)threads, sizeof *g.fimg);
  g.bimg = calloc((size_t)threads, sizeof *g.bimg);
  clipcl_status s = CLIPCL_OK;
  if (!g.png || !g.fimg || !g.bimg) s = cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  for (int t = 0; s == CLIPCL_OK && t < threads; t++) {
    g.fimg[t] = malloc(px * sizeof(float));
    g.bimg[t] = malloc(px);
    if (!g.fimg[t] || !g.bimg[t]) s = cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  }
  shard_writer sw = {NULL, 0, 0, 0};
  for (int base = 0; s == CLIPCL_OK && base < sp->n; base += CHUNK) {
    int n = sp->n - base < CHUNK ? sp->n - base : CHUNK;
    g.base = base;
    s = ds_parallel(n, threads, gen_item, &g);
    /* Shards take the chunk in item order, so they do not depend on
     * which thread finished first. */
    for (int k = 0; s == CLIPCL_OK && tar && k < n; k++) s = shard_add(w, &sw, sp, base + k, &g.png[k]);
  }
  if (sw.tar) {
    if (s == CLIPCL_OK) s = ds_tar_close(sw.tar);
    else ds_tar_abort(sw.tar);
  }
  *n_shards = sw.n_shards;
  if (g.png)
    for (int k = 0; k < CHUNK; k++) cc_buf_free(&g.png[k]);
  for (int t = 0; t < threads; t++) {
    if (g.fimg) free(g.fimg[t]);
    if (g.bimg) free(g.bimg[t]);
  }
  free(g.png);
  free(g.fimg);
  free(g.bimg);
  return s;
}

static void split_free(split *sp) {
  free(sp->pair);
  free(sp->rel);
  free(sp->caption);
  free(sp->label);
  memset(sp, 0, sizeof *sp);
}

static clipcl_status split_alloc(split *sp, const char *name, int id, int n, int fixed_pairs) {
  memset(sp, 0, sizeof *sp);
  sp->name = name;
  sp->id = id;
  sp->n = n;
  size_t m = n > 0 ? (size_t)n : 1;
  sp->rel = calloc(m, sizeof *sp->rel);
  sp->caption = calloc(m, sizeof *sp->caption);
  sp->label = calloc(m, sizeof *sp->label);
  if (fixed_pairs) sp->pair = calloc(m, sizeof *sp->pair);
  if (!sp->rel || !sp->caption || !sp->label || (fixed_pairs && !sp->pair)) {
    split_free(sp);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory for %d items", name, n);
  }
  return CLIPCL_OK;
}

/* "train" split (or "val"): flat folder of drawn training pairs. */
static clipcl_status flat_split(split *sp, const char *name, int id, int n) {
  CC_TRY(split_alloc(sp, name, id, n, 0));
  for (int i = 0; i < n; i++) snprintf(sp->rel[i], sizeof sp->rel[i], "%s/%06d.png", name, i);
  return CLIPCL_OK;
}

static int cmp_pair_names(const void *a, const void *b) {
  const int pa = *(const int *)a, pb = *(const int *)b;
  char na[64], nb[64];
  snprintf(na, sizeof na, "%s_%s", COLOURS[pa / MAX_SHAPES].name, SHAPES[pa % MAX_SHAPES]);
  snprintf(nb, sizeof nb, "%s_%s", COLOURS[pb / MAX_SHAPES].name, SHAPES[pb % MAX_SHAPES]);
  return strcmp(na, nb);
}

/* Zero-shot split over the given pairs: per_pair images each, pairs in
 * sorted folder order. */
static clipcl_status zeroshot_split(split *sp, const char *name, int id, const int *pairs, int n_pairs,
                                    int per_pair) {
  CC_TRY(split_alloc(sp, name, id, n_pairs * per_pair, 1));
  int *sorted = malloc(sizeof(int) * (size_t)(n_pairs > 0 ? n_pairs : 1));
  if (!sorted) {
    split_free(sp);
    return cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  }
  memcpy(sorted, pairs, sizeof(int) * (size_t)n_pairs);
  qsort(sorted, (size_t)n_pairs, sizeof *sorted, cmp_pair_names);
  for (int p = 0, i = 0; p < n_pairs; p++)
    for (int j = 0; j < per_pair; j++, i++) {
      sp->pair[i] = sorted[p];
      snprintf(sp->rel[i], sizeof sp->rel[i], "%s/pair/%s_%s/%06d.png", name, COLOURS[sorted[p] / MAX_SHAPES].name,
               SHAPES[sorted[p] % MAX_SHAPES], i);
    }
  free(sorted);
  return CLIPCL_OK;
}

/* ---- manifests ------------------------------------------------------------- */
/* filepath,title CSV (open_clip's default keys) with paths relative to the
 * CSV's own folder (`strip` is removed from the front of each path). */
static clipcl_status write_csv(const char *out, const char *rel_csv, const split *sp, const char *strip) {
  cc_buf b = {0};
  cc_buf_str(&b, "filepath,title\n");
  size_t k = strlen(strip);
  for (int i = 0; i < sp->n; i++) {
    ds_buf_csv(&b, sp->rel[i] + k, ',');
    cc_buf_add(&b, ",", 1);
    ds_buf_csv(&b, sp->caption[i], ',');
    cc_buf_add(&b, "\n", 1);
  }
  char *path = ds_join(out, rel_csv);
  clipcl_status s = path ? cc_buf_save(&b, path) : cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  free(path);
  cc_buf_free(&b);
  return s;
}

static clipcl_status write_labels(const char *out, const char *rel_csv, const split *sp, const char *strip) {
  cc_buf b = {0};
  cc_buf_str(&b, "filepath,colour,shape,size,position,background,clutter\n");
  size_t k = strlen(strip);
  for (int i = 0; i < sp->n; i++) {
    ds_buf_csv(&b, sp->rel[i] + k, ',');
    cc_buf_add(&b, ",", 1);
    cc_buf_str(&b, sp->label[i]); /* fields hold no comma or quote */
    cc_buf_add(&b, "\n", 1);
  }
  char *path = ds_join(out, rel_csv);
  clipcl_status s = path ? cc_buf_save(&b, path) : cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  free(path);
  cc_buf_free(&b);
  return s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* classnames_<kind>.txt: one class text per line in sorted folder order
 * (folder names use '_' where the class text has a space). */
static clipcl_status write_classnames(const char *out, const char *zs, const char *kind, const char **folders,
                                      int n) {
  qsort(folders, (size_t)n, sizeof *folders, cmp_str);
  cc_buf b = {0};
  for (int i = 0; i < n; i++) {
    for (const char *p = folders[i]; *p; p++) cc_buf_add(&b, *p == '_' ? " " : p, 1);
    cc_buf_add(&b, "\n", 1);
  }
  char rel[96];
  snprintf(rel, sizeof rel, "%s/classnames_%s.txt", zs, kind);
  char *path = ds_join(out, rel);
  clipcl_status s = path ? cc_buf_save(&b, path) : cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  free(path);
  cc_buf_free(&b);
  return s;
}

/* Folders and class files of a zero-shot split. */
static clipcl_status zeroshot_dirs(const world *w, const split *sp, const int *pairs, int n_pairs) {
  const char *out = w->o.out;
  char rel[160];
  static char names[3][MAX_COLOURS * MAX_SHAPES][40];
  const char *lists[3][MAX_COLOURS * MAX_SHAPES];
  int counts[3] = {0, 0, 0};
  int seen_c[MAX_COLOURS] = {0}, seen_s[MAX_SHAPES] = {0};
  for (int p = 0; p < n_pairs; p++) {
    int c = pairs[p] / MAX_SHAPES, s = pairs[p] % MAX_SHAPES;
    snprintf(names[0][counts[0]], 40, "%s_%s", COLOURS[c].name, SHAPES[s]);
    lists[0][counts[0]] = names[0][counts[0]];
    counts[0]++;
    if (!seen_c[c]++) {
      snprintf(names[1][counts[1]], 40, "%s", COLOURS[c].name);
      lists[1][counts[1]] = names[1][counts[1]];
      counts[1]++;
    }
    if (!seen_s[s]++) {
      snprintf(names[2][counts[2]], 40, "%s", SHAPES[s]);
      lists[2][counts[2]] = names[2][counts[2]];
      counts[2]++;
    }
  }
  static const char *const KINDS[3] = {"pair", "colour", "shape"};
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < counts[k]; i++) {
      snprintf(rel, sizeof rel, "%s/%s/%s", sp->name, KINDS[k], lists[k][i]);
      char *path = ds_join(out, rel);
      if (!path) return cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
      clipcl_status s = ds_mkdirs(path);
      free(path);
      CC_TRY(s);
    }
    CC_TRY(write_classnames(out, sp->name, KINDS[k], lists[k], counts[k]));
  }
  return CLIPCL_OK;
}

/* ---- dataset.json ------------------------------------------------------------ */
static clipcl_status write_info(const world *w, const split *splits, const int *shards, int n_splits) {
  const options *o = &w->o;
  json_t *root = json_object(), *arr;
  json_object_set_new(root, "generator", json_string("clipcl-synth"));
  json_object_set_new(root, "format_version", json_integer(1));
  json_object_set_new(root, "seed", json_integer((json_int_t)o->seed));
  json_object_set_new(root, "image_size", json_integer(o->size));
  arr = json_array();
  for (int c = 0; c < o->n_colours; c++) {
    json_t *e = json_object();
    json_object_set_new(e, "name", json_string(COLOURS[c].name));
    json_object_set_new(e, "rgb", json_pack("[iii]", COLOURS[c].rgb[0], COLOURS[c].rgb[1], COLOURS[c].rgb[2]));
    json_array_append_new(arr, e);
  }
  json_object_set_new(root, "colours", arr);
  arr = json_array();
  for (int s = 0; s < o->n_shapes; s++) json_array_append_new(arr, json_string(SHAPES[s]));
  json_object_set_new(root, "shapes", arr);
  arr = json_array();
  for (int c = 0; c < o->n_colours; c++)
    for (int s = 0; s < o->n_shapes; s++)
      if (w->held[c][s]) {
        char t[64];
        snprintf(t, sizeof t, "%s %s", COLOURS[c].name, SHAPES[s]);
        json_array_append_new(arr, json_string(t));
      }
  json_object_set_new(root, "heldout_pairs", arr);
  json_object_set_new(root, "clutter", json_real(o->p_clutter));
  json_object_set_new(root, "partial_captions", json_real(o->p_partial));
  json_object_set_new(root, "noise", json_real(o->p_noise));
  json_object_set_new(root, "gradient", json_real(o->p_gradient));
  json_t *sj = json_object();
  for (int k = 0; k < n_splits; k++) {
    const split *sp = &splits[k];
    json_t *e = json_object();
    json_object_set_new(e, "images", json_integer(sp->n));
    if (sp->pair) {
      char t[96];
      json_object_set_new(e, "pairs_per_class", json_integer(sp->id == SPLIT_ZEROSHOT ? o->zs_per_pair
                                                                                      : o->seen_per_pair));
      snprintf(t, sizeof t, "%s/retrieval.csv", sp->name);
      json_object_set_new(e, "retrieval_csv", json_string(t));
      snprintf(t, sizeof t, "%s/labels.csv", sp->name);
      json_object_set_new(e, "labels", json_string(t));
    } else {
      char t[96];
      if (sp->id != SPLIT_TRAIN || o->files) {
        snprintf(t, sizeof t, "%s.csv", sp->name);
        json_object_set_new(e, "csv", json_string(t));
      }
      snprintf(t, sizeof t, "%s_labels.csv", sp->name);
      json_object_set_new(e, "labels", json_string(t));
      if (shards[k] > 0) {
        snprintf(t, sizeof t, "shards/%s-{000000..%06d}.tar", sp->name, shards[k] - 1);
        json_object_set_new(e, "shards", json_string(t));
      }
    }
    json_object_set_new(sj, sp->name, e);
  }
  json_object_set_new(root, "splits", sj);
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!text) return cc_fail(CLIPCL_ERR_NOMEM, "dataset.json: out of memory");
  cc_buf b = {0};
  cc_buf_str(&b, text);
  cc_buf_add(&b, "\n", 1);
  free(text);
  char *path = ds_join(o->out, "dataset.json");
  clipcl_status s = path ? cc_buf_save(&b, path) : cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  free(path);
  cc_buf_free(&b);
  return s;
}

/* ---- held-out pairs ------------------------------------------------------- */
static int find_name(const char *const *names, int n, const char *s, size_t len) {
  for (int i = 0; i < n; i++)
    if (strlen(names[i]) == len && strncmp(names[i], s, len) == 0) return i;
  return -1;
}

static clipcl_status parse_holdout_list(world *w, const char *list) {
  const char *cn[MAX_COLOURS];
  for (int c = 0; c < MAX_COLOURS; c++) cn[c] = COLOURS[c].name;
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == ',') p++;
    if (!*p) break;
    const char *end = p;
    while (*end && *end != ',') end++;
    const char *last = end;
    while (last > p && last[-1] == ' ') last--;
    const char *sp = p;
    while (sp < last && *sp != ' ' && *sp != '_') sp++;
    int c = find_name(cn, w->o.n_colours, p, (size_t)(sp - p));
    const char *s0 = sp < last ? sp + 1 : sp;
    int s = find_name(SHAPES, w->o.n_shapes, s0, (size_t)(last - s0));
    if (c < 0 || s < 0)
      return cc_fail(CLIPCL_ERR_ARG, "--holdout-pairs: '%.*s' is not '<colour> <shape>' of the %d colours and %d shapes in use",
                     (int)(last - p), p, w->o.n_colours, w->o.n_shapes);
    w->held[c][s] = 1;
    p = end;
  }
  return CLIPCL_OK;
}

static clipcl_status setup_pairs(world *w) {
  const options *o = &w->o;
  memset(w->held, 0, sizeof w->held);
  if (o->holdout_list) {
    CC_TRY(parse_holdout_list(w, o->holdout_list));
  } else {
    if (o->holdout_k >= o->n_shapes)
      return cc_fail(CLIPCL_ERR_ARG, "--holdout %d: must be below the number of shapes (%d)", o->holdout_k,
                     o->n_shapes);
    /* Latin square: colour c holds out shapes c, c+1, ... c+K-1 (mod S). */
    for (int c = 0; c < o->n_colours; c++)
      for (int j = 0; j < o->holdout_k; j++) w->held[c][(c + j) % o->n_shapes] = 1;
  }
  w->n_allowed = 0;
  int c_seen[MAX_COLOURS] = {0}, s_seen[MAX_SHAPES] = {0};
  for (int c = 0; c < o->n_colours; c++)
    for (int s = 0; s < o->n_shapes; s++)
      if (!w->held[c][s]) {
        w->allowed[w->n_allowed++] = c * MAX_SHAPES + s;
        c_seen[c] = s_seen[s] = 1;
      }
  for (int c = 0; c < o->n_colours; c++)
    if (!c_seen[c]) return cc_fail(CLIPCL_ERR_ARG, "held-out pairs leave colour '%s' out of training", COLOURS[c].name);
  for (int s = 0; s < o->n_shapes; s++)
    if (!s_seen[s]) return cc_fail(CLIPCL_ERR_ARG, "held-out pairs leave shape '%s' out of training", SHAPES[s]);
  return CLIPCL_OK;
}

/* ---- main ------------------------------------------------------------------ */
static void usage(FILE *f) {
  fprintf(f,
          "usage: clipcl-synth --out DIR [options]\n"
          "Generates a captioned synthetic image set (coloured shapes) with held-out\n"
          "colour-shape pairs for zero-shot tests. Same arguments, same bytes.\n\n"
          "  --out DIR              output folder (created; must be empty)\n"
          "  --seed N               random seed (default 0)\n"
          "  --size PX              image side in pixels, 16..1024 (default 64)\n"
          "  --train N              training images (default 10000)\n"
          "  --val N                validation images of training pairs (default 500)\n"
          "  --zeroshot-per-pair N  images per held-out pair (default 50)\n"
          "  --seen-per-pair N      images per training pair in zeroshot_seen/ (default 20)\n"
          "  --colours N            colours used, 2..8 (default 6)\n"
          "  --shapes N             shapes used, 2..8 (default 6)\n"
          "  --holdout K            Latin-square hold-out: colour i loses shapes i..i+K-1\n"
          "                         (mod shapes) from training (default 2; 0 = none)\n"
          "  --holdout-pairs LIST   explicit held-out pairs instead, e.g. 'red circle,blue star'\n"
          "  --clutter P            share of images with grey clutter (default 0.3)\n"
          "  --partial P            share of train/val captions naming only the shape (2/3)\n"
          "                         or only the colour (1/3) (default 0)\n"
          "  --noise P              share of noisy backgrounds (default 0.25)\n"
          "  --gradient P           share of gradient backgrounds (default 0.25)\n"
          "  --format F             training split as files, tar (WebDataset shards) or both\n"
          "                         (default files)\n"
          "  --shard-size N         samples per tar shard (default 1000)\n"
          "  --threads N            worker threads (default: all CPUs)\n"
          "  --quiet                no summary\n");
}

int main(int argc, char **argv) {
  world *w = calloc(1, sizeof *w);
  if (!w) return 1;
  options *o = &w->o;
  *o = (options){NULL, 0, 64, 10000, 500, 50, 20, 6, 6, 2, NULL, 0.3, 0.25, 0.25, 1, 0, 1000, ds_cpu_count(), 0, 0.0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    long l;
    double d;
    int bad = 0, used = 1;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      free(w);
      return 0;
    } else if (!strcmp(a, "--quiet")) {
      o->quiet = 1;
      used = 0;
    } else if (!v) {
      bad = 1;
    } else if (!strcmp(a, "--out")) {
      o->out = v;
    } else if (!strcmp(a, "--seed")) {
      bad = ds_parse_long(v, 0, 0x7fffffffffffffffL, &l);
      o->seed = (uint64_t)l;
    } else if (!strcmp(a, "--size")) {
      bad = ds_parse_long(v, 16, 1024, &l);
      o->size = (int)l;
    } else if (!strcmp(a, "--train")) {
      bad = ds_parse_long(v, 0, 100000000, &l);
      o->n_train = (int)l;
    } else if (!strcmp(a, "--val")) {
      bad = ds_parse_long(v, 0, 10000000, &l);
      o->n_val = (int)l;
    } else if (!strcmp(a, "--zeroshot-per-pair")) {
      bad = ds_parse_long(v, 0, 100000, &l);
      o->zs_per_pair = (int)l;
    } else if (!strcmp(a, "--seen-per-pair")) {
      bad = ds_parse_long(v, 0, 100000, &l);
      o->seen_per_pair = (int)l;
    } else if (!strcmp(a, "--colours") || !strcmp(a, "--colors")) {
      bad = ds_parse_long(v, 2, MAX_COLOURS, &l);
      o->n_colours = (int)l;
    } else if (!strcmp(a, "--shapes")) {
      bad = ds_parse_long(v, 2, MAX_SHAPES, &l);
      o->n_shapes = (int)l;
    } else if (!strcmp(a, "--holdout")) {
      bad = ds_parse_long(v, 0, MAX_SHAPES, &l);
      o->holdout_k = (int)l;
    } else if (!strcmp(a, "--holdout-pairs")) {
      o->holdout_list = v;
    } else if (!strcmp(a, "--clutter")) {
      bad = ds_parse_double(v, 0, 1, &d);
      o->p_clutter = d;
    } else if (!strcmp(a, "--partial")) {
      bad = ds_parse_double(v, 0, 1, &d);
      o->p_partial = d;
    } else if (!strcmp(a, "--noise")) {
      bad = ds_parse_double(v, 0, 1, &d);
      o->p_noise = d;
    } else if (!strcmp(a, "--gradient")) {
      bad = ds_parse_double(v, 0, 1, &d);
      o->p_gradient = d;
    } else if (!strcmp(a, "--format")) {
      if (!strcmp(v, "files")) o->files = 1, o->tar = 0;
      else if (!strcmp(v, "tar")) o->files = 0, o->tar = 1;
      else if (!strcmp(v, "both")) o->files = 1, o->tar = 1;
      else bad = 1;
    } else if (!strcmp(a, "--shard-size")) {
      bad = ds_parse_long(v, 1, 10000000, &l);
      o->shard_size = (int)l;
    } else if (!strcmp(a, "--threads")) {
      bad = ds_parse_long(v, 1, 256, &l);
      o->threads = (int)l;
    } else {
      fprintf(stderr, "clipcl-synth: unknown option '%s' (see --help)\n", a);
      free(w);
      return 2;
    }
    if (bad) {
      fprintf(stderr, "clipcl-synth: %s needs %s\n", a,
              v ? "a valid value in range (see --help)" : "a value");
      free(w);
      return 2;
    }
    i += used;
  }
  if (!o->out) {
    usage(stderr);
    free(w);
    return 2;
  }
  if (o->p_noise + o->p_gradient > 1) {
    fprintf(stderr, "clipcl-synth: --noise and --gradient add up to more than 1\n");
    free(w);
    return 2;
  }
  clipcl_status s = setup_pairs(w);
  if (s != CLIPCL_OK) {
    fprintf(stderr, "clipcl-synth: %s\n", clipcl_last_error());
    free(w);
    return 2;
  }
  init_polygons(w);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);

  int held[MAX_COLOURS * MAX_SHAPES], n_held = 0;
  for (int c = 0; c < o->n_colours; c++)
    for (int sh = 0; sh < o->n_shapes; sh++)
      if (w->held[c][sh]) held[n_held++] = c * MAX_SHAPES + sh;

  split splits[4];
  int shards[4] = {0, 0, 0, 0}, n_splits = 0;
  memset(splits, 0, sizeof splits);
  s = ds_prepare_out(o->out);
  if (s == CLIPCL_OK && o->n_train > 0) s = flat_split(&splits[n_splits++], "train", SPLIT_TRAIN, o->n_train);
  if (s == CLIPCL_OK && o->n_val > 0) s = flat_split(&splits[n_splits++], "val", SPLIT_VAL, o->n_val);
  if (s == CLIPCL_OK && n_held > 0 && o->zs_per_pair > 0)
    s = zeroshot_split(&splits[n_splits++], "zeroshot", SPLIT_ZEROSHOT, held, n_held, o->zs_per_pair);
  if (s == CLIPCL_OK && o->seen_per_pair > 0)
    s = zeroshot_split(&splits[n_splits++], "zeroshot_seen", SPLIT_SEEN, w->allowed, w->n_allowed,
                       o->seen_per_pair);
  long total = 0;
  for (int k = 0; s == CLIPCL_OK && k < n_splits; k++) {
    split *sp = &splits[k];
    int is_train = sp->id == SPLIT_TRAIN, files = !is_train || o->files, tar = is_train && o->tar;
    char *dir = ds_join(o->out, sp->name);
    if (!dir) s = cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
    if (s == CLIPCL_OK && files) s = ds_mkdirs(dir);
    free(dir);
    if (s == CLIPCL_OK && tar) {
      char *sd = ds_join(o->out, "shards");
      s = sd ? ds_mkdirs(sd) : cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
      free(sd);
    }
    if (s == CLIPCL_OK && sp->pair)
      s = zeroshot_dirs(w, sp, sp->id == SPLIT_ZEROSHOT ? held : w->allowed,
                        sp->id == SPLIT_ZEROSHOT ? n_held : w->n_allowed);
    if (s == CLIPCL_OK) s = run_split(w, sp, files, tar, sp->pair != NULL, &shards[k]);
    if (s == CLIPCL_OK && sp->pair) {
      char rel[96], strip[96];
      snprintf(strip, sizeof strip, "%s/", sp->name);
      snprintf(rel, sizeof rel, "%s/retrieval.csv", sp->name);
      s = write_csv(o->out, rel, sp, strip);
      snprintf(rel, sizeof rel, "%s/labels.csv", sp->name);
      if (s == CLIPCL_OK) s = write_labels(o->out, rel, sp, strip);
    } else if (s == CLIPCL_OK) {
      char rel[96];
      snprintf(rel, sizeof rel, "%s.csv", sp->name);
      if (files) s = write_csv(o->out, rel, sp, "");
      snprintf(rel, sizeof rel, "%s_labels.csv", sp->name);
      if (s == CLIPCL_OK) s = write_labels(o->out, rel, sp, "");
    }
    total += sp->n;
  }
  if (s == CLIPCL_OK) s = write_info(w, splits, shards, n_splits);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  int rc = 0;
  if (s != CLIPCL_OK) {
    fprintf(stderr, "clipcl-synth: %s\n", clipcl_last_error());
    rc = 1;
  } else if (!o->quiet) {
    printf("clipcl-synth: %ld images (%dx%d) in %.2f s (%.0f images/s) into %s\n", total, o->size, o->size, secs,
           secs > 0 ? total / secs : 0.0, o->out);
    printf("  colours: %d, shapes: %d, held-out pairs: %d:", o->n_colours, o->n_shapes, n_held);
    for (int k = 0; k < n_held; k++)
      printf("%s %s %s", k ? "," : "", COLOURS[held[k] / MAX_SHAPES].name, SHAPES[held[k] % MAX_SHAPES]);
    printf("\n");
    for (int k = 0; k < n_splits; k++) {
      printf("  %-14s %7d images", splits[k].name, splits[k].n);
      if (shards[k]) printf(", shards/%s-{000000..%06d}.tar", splits[k].name, shards[k] - 1);
      printf("\n");
    }
  }
  for (int k = 0; k < n_splits; k++) split_free(&splits[k]);
  free(w);
  return rc;
}

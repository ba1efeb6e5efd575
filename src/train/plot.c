/* plot.c: see plot.h. */
#include "train/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* 5x7 glyphs for "0123456789.-e", one byte per row, bit 4 = leftmost. */
static const unsigned char glyphs[13][7] = {
    {14, 17, 19, 21, 25, 17, 14}, {4, 12, 4, 4, 4, 4, 14},   {14, 17, 1, 2, 4, 8, 31},
    {31, 2, 4, 2, 1, 17, 14},     {2, 6, 10, 18, 31, 2, 2},  {31, 16, 30, 1, 1, 17, 14},
    {6, 8, 16, 30, 17, 17, 14},   {31, 1, 2, 4, 8, 8, 8},    {14, 17, 17, 14, 17, 17, 14},
    {14, 17, 17, 15, 1, 2, 12},   {0, 0, 0, 0, 0, 12, 12},   {0, 0, 0, 31, 0, 0, 0},
    {0, 0, 14, 17, 31, 16, 14}};

typedef struct {
  int w, h;
  unsigned char *px;
} canvas;

static void put(canvas *c, int x, int y, const unsigned char *rgb) {
  if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
  memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

static void line(canvas *c, int x0, int y0, int x1, int y1, const unsigned char *rgb) {
  int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
  for (;;) {
    put(c, x0, y0, rgb);
    put(c, x0, y0 + 1, rgb); /* two pixels thick */
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * e;
    if (e2 >= dy) {
      e += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      e += dx;
      y0 += sy;
    }
  }
}

static void text(canvas *c, int x, int y, const char *s, const unsigned char *rgb) {
  for (; *s; s++, x += 6) {
    const char *set = "0123456789.-e";
    const char *p = strchr(set, *s);
    if (!p || !*p) continue;
    const unsigned char *g = glyphs[p - set];
    for (int r = 0; r < 7; r++)
      for (int b = 0; b < 5; b++)
        if (g[r] & (16 >> b)) put(c, x + b, y + r, rgb);
  }
}

static double nice_step(double range, int ticks) {
  double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

clipcl_status cc_plot_png(const char *path, int w, int h, const cc_series *s, int ns) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int k = 0; k < ns; k++)
    for (size_t i = 0; i < s[k].n; i++) {
      if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
      x0 = fmin(x0, s[k].x[i]);
      x1 = fmax(x1, s[k].x[i]);
      y0 = fmin(y0, s[k].y[i]);
      y1 = fmax(y1, s[k].y[i]);
    }
  if (!(x1 >= x0)) x0 = 0, x1 = 1;
  if (!(y1 >= y0)) y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1, y0 -= 1;
  double ys = nice_step(y1 - y0, 5), xs = nice_step(x1 - x0, 6);
  y0 = floor(y0 / ys) * ys;
  y1 = ceil(y1 / ys) * ys;
  canvas c = {w, h, malloc((size_t)w * h * 3)};
  if (!c.px) return cc_fail(CLIPCL_ERR_NOMEM, "out of memory drawing %s", path);
  memset(c.px, 255, (size_t)w * h * 3);
  int L = 60, R = w - 15, T = 12, B = h - 28;
  const unsigned char axis[3] = {60, 60, 60}, grid[3] = {225, 225, 225};
#define PX(v) (L + (int)lround(((v) - x0) / (x1 - x0) * (R - L)))
#define PY(v) (B - (int)lround(((v) - y0) / (y1 - y0) * (B - T)))
  char buf[32];
  for (double v = y0; v <= y1 + ys * 1e-6; v += ys) {
    line(&c, L, PY(v), R, PY(v), grid);
    snprintf(buf, sizeof buf, fabs(v) < 1e-12 ? "0" : (fabs(v) >= 1e4 || fabs(v) < 1e-2) ? "%.1e" : "%.3g", v);
    text(&c, L - 6 - 6 * (int)strlen(buf), PY(v) - 3, buf, axis);
  }
  for (double v = ceil(x0 / xs) * xs; v <= x1 + xs * 1e-6; v += xs) {
    line(&c, PX(v), T, PX(v), B, grid);
    snprintf(buf, sizeof buf, fabs(v) >= 1e6 ? "%.1e" : "%.0f", v);
    text(&c, PX(v) - 3 * (int)strlen(buf), B + 8, buf, axis);
  }
  line(&c, L, T, L, B, axis);
  line(&c, L, B, R, B, axis);
  for (int k = 0; k < ns; k++) {
    int have = 0, px = 0, py = 0;
    for (size_t i = 0; i < s[k].n; i++) {
      if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
      int qx = PX(s[k].x[i]), qy = PY(s[k].y[i]);
      if (have) line(&c, px, py, qx, qy, s[k].rgb);
      if (s[k].n <= 24) /* few points: mark each */
        for (int d = -2; d <= 2; d++) line(&c, qx - 2, qy + d, qx + 2, qy + d, s[k].rgb);
      have = 1;
      px = qx;
      py = qy;
    }
  }
#undef PX
#undef PY
  clipcl_image img = {w, h, c.px};
  clipcl_status st = clipcl_image_save_png(path, &img);
  free(c.px);
  return st;
}

/* plot.h: a small line-chart rasteriser for reports (the training loss
 * curve): axes, ticks with numeric labels from a built-in 5x7 digit font, and
 * up to four series, written as PNG. Not a plotting library: no text other
 * than numbers, linear axes only. */
#ifndef CC_PLOT_H
#define CC_PLOT_H
#include <stddef.h>

#include "clipcl.h"

typedef struct {
  const double *x, *y;
  size_t n;
  unsigned char rgb[3];
} cc_series;

/* Draws the series on a w x h white canvas, axes fitted to the data, and
 * writes it to path (PNG, atomically). */
clipcl_status cc_plot_png(const char *path, int w, int h, const cc_series *s, int nseries);
#endif

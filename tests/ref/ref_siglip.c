/* ref_siglip.c: see ref_siglip.h. */
#include "ref/ref_siglip.h"

#include <math.h>
#include <stdlib.h>

static double softplus(double t) { return t > 0 ? t + log1p(exp(-t)) : log1p(exp(t)); }
static double sigmoid(double t) { return 1.0 / (1.0 + exp(-t)); }

double ref_siglip_block(double *dlogits, double *dbias, const float *logits, double bias, int N, int M, int diag,
                        double coef) {
  double loss = 0, db = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < M; j++) {
      double y = diag >= 0 && j == i + diag ? 1.0 : -1.0, t = -y * (logits[(size_t)i * M + j] + bias);
      loss += softplus(t);
      double g = coef * -y * sigmoid(t);
      if (dlogits) dlogits[(size_t)i * M + j] = g;
      db += g;
    }
  if (dbias) *dbias = db;
  return coef * loss;
}

double ref_siglip_loss(const float *img, const float *txt, float s, float b, int N, int E, double *dimg,
                       double *dtxt, double *ds, double *db) {
  size_t ne = (size_t)N * E;
  double *a = malloc(ne * sizeof *a), *t = malloc(ne * sizeof *t), *na = malloc(N * sizeof *na),
         *nt = malloc(N * sizeof *nt), *ga = calloc(ne, sizeof *ga), *gt = calloc(ne, sizeof *gt);
  if (!a || !t || !na || !nt || !ga || !gt) abort();
  for (int r = 0; r < N; r++) {
    double sa = 0, st = 0;
    for (int k = 0; k < E; k++) {
      sa += (double)img[(size_t)r * E + k] * img[(size_t)r * E + k];
      st += (double)txt[(size_t)r * E + k] * txt[(size_t)r * E + k];
    }
    na[r] = fmax(sqrt(sa), 1e-12);
    nt[r] = fmax(sqrt(st), 1e-12);
    for (int k = 0; k < E; k++) {
      a[(size_t)r * E + k] = img[(size_t)r * E + k] / na[r];
      t[(size_t)r * E + k] = txt[(size_t)r * E + k] / nt[r];
    }
  }
  double e = exp((double)s), loss = 0, gs = 0, gb = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double dot = 0;
      for (int k = 0; k < E; k++) dot += a[(size_t)i * E + k] * t[(size_t)j * E + k];
      double y = i == j ? 1.0 : -1.0, z = e * dot + b;
      loss += softplus(-y * z) / N;
      double g = -y * sigmoid(-y * z) / N; /* d loss / d z */
      gs += g * e * dot;
      gb += g;
      for (int k = 0; k < E; k++) {
        ga[(size_t)i * E + k] += g * e * t[(size_t)j * E + k];
        gt[(size_t)j * E + k] += g * e * a[(size_t)i * E + k];
      }
    }
  /* through the normalisation: d x = (g - y (y . g)) / ||x|| */
  for (int r = 0; r < N; r++) {
    double pa = 0, pt = 0;
    for (int k = 0; k < E; k++) {
      pa += a[(size_t)r * E + k] * ga[(size_t)r * E + k];
      pt += t[(size_t)r * E + k] * gt[(size_t)r * E + k];
    }
    for (int k = 0; k < E; k++) {
      if (dimg) dimg[(size_t)r * E + k] = (ga[(size_t)r * E + k] - a[(size_t)r * E + k] * pa) / na[r];
      if (dtxt) dtxt[(size_t)r * E + k] = (gt[(size_t)r * E + k] - t[(size_t)r * E + k] * pt) / nt[r];
    }
  }
  if (ds) *ds = gs;
  if (db) *db = gb;
  free(a);
  free(t);
  free(na);
  free(nt);
  free(ga);
  free(gt);
  return loss;
}

/* ref_head.c: see ref_head.h. Each function is the formula in double; the
 * end-to-end loss is written out separately (not composed from the pieces
 * above) so that a shared mistake cannot hide. */
#include "ref/ref_head.h"

#include <math.h>
#include <stdlib.h>

void ref_l2norm_fwd(double *out, double *norm, const float *x, int N, int E) {
  for (int r = 0; r < N; r++) {
    const float *xr = x + (size_t)r * E;
    double s = 0;
    for (int j = 0; j < E; j++) s += (double)xr[j] * xr[j];
    double n = sqrt(s), den = n > 1e-12 ? n : 1e-12;
    if (norm) norm[r] = n;
    for (int j = 0; j < E; j++) out[(size_t)r * E + j] = xr[j] / den;
  }
}

void ref_l2norm_bwd(double *dx, const float *dout, const float *x, int N, int E) {
  for (int r = 0; r < N; r++) {
    const float *xr = x + (size_t)r * E, *g = dout + (size_t)r * E;
    double s = 0, xg = 0;
    for (int j = 0; j < E; j++) {
      s += (double)xr[j] * xr[j];
      xg += (double)xr[j] * g[j];
    }
    double n = sqrt(s);
    for (int j = 0; j < E; j++) {
      /* y = x/n: dy_j/dx_k = delta_jk/n - x_j x_k/n^3; a clamped norm is a constant */
      dx[(size_t)r * E + j] = n >= 1e-12 ? g[j] / n - xr[j] * xg / (n * n * n) : g[j] / 1e-12;
    }
  }
}

void ref_logits_fwd(double *logits, const float *a, const float *b, float s, int N, int M, int E) {
  double e = exp((double)s);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < M; j++) {
      double d = 0;
      for (int k = 0; k < E; k++) d += (double)a[(size_t)i * E + k] * b[(size_t)j * E + k];
      logits[(size_t)i * M + j] = e * d;
    }
}

void ref_logits_bwd(double *da, double *db, double *ds, const float *dl, const float *a, const float *b, float s,
                    int N, int M, int E) {
  double e = exp((double)s), acc = 0;
  if (da)
    for (size_t i = 0; i < (size_t)N * E; i++) da[i] = 0;
  if (db)
    for (size_t i = 0; i < (size_t)M * E; i++) db[i] = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < M; j++) {
      double g = dl[(size_t)i * M + j], d = 0;
      for (int k = 0; k < E; k++) {
        double ak = a[(size_t)i * E + k], bk = b[(size_t)j * E + k];
        d += ak * bk;
        if (da) da[(size_t)i * E + k] += e * g * bk;
        if (db) db[(size_t)j * E + k] += e * g * ak;
      }
      acc += g * e * d;
    }
  if (ds) *ds = acc;
}

/* log-sum-exp of a row, max subtracted */
static double lse(const double *x, int M) {
  double m = -INFINITY, s = 0;
  for (int j = 0; j < M; j++) m = x[j] > m ? x[j] : m;
  for (int j = 0; j < M; j++) s += exp(x[j] - m);
  return m + log(s);
}

double ref_ce_fwd(double *probs, const float *logits, int N, int M, int off, double weight) {
  double *row = malloc((size_t)M * sizeof *row), total = 0;
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < M; j++) row[j] = logits[(size_t)i * M + j];
    double l = lse(row, M);
    total += l - row[i + off];
    if (probs)
      for (int j = 0; j < M; j++) probs[(size_t)i * M + j] = exp(row[j] - l);
  }
  free(row);
  return weight * total / N;
}

void ref_ce_bwd(double *dlogits, const float *logits, int N, int M, int off, double weight) {
  ref_ce_fwd(dlogits, logits, N, M, off, weight);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < M; j++)
      dlogits[(size_t)i * M + j] = weight / N * (dlogits[(size_t)i * M + j] - (j == i + off ? 1.0 : 0.0));
}

double ref_clip_loss(const float *img, const float *txt, float s, int N, int E, double *dimg, double *dtxt,
                     double *ds) {
  size_t ne = (size_t)N * E, nn = (size_t)N * N;
  double *u = malloc(ne * sizeof *u), *v = malloc(ne * sizeof *v), *nu = malloc(N * sizeof *nu),
         *nv = malloc(N * sizeof *nv), *L = malloc(nn * sizeof *L), *G = malloc(nn * sizeof *G),
         *row = malloc(N * sizeof *row), *du = malloc(ne * sizeof *du), *dv = malloc(ne * sizeof *dv);
  double e = exp((double)s), loss = 0;
  for (int r = 0; r < N; r++) {
    double a = 0, b = 0;
    for (int k = 0; k < E; k++) {
      a += (double)img[(size_t)r * E + k] * img[(size_t)r * E + k];
      b += (double)txt[(size_t)r * E + k] * txt[(size_t)r * E + k];
    }
    nu[r] = fmax(sqrt(a), 1e-12);
    nv[r] = fmax(sqrt(b), 1e-12);
    for (int k = 0; k < E; k++) {
      u[(size_t)r * E + k] = img[(size_t)r * E + k] / nu[r];
      v[(size_t)r * E + k] = txt[(size_t)r * E + k] / nv[r];
    }
  }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double d = 0;
      for (int k = 0; k < E; k++) d += u[(size_t)i * E + k] * v[(size_t)j * E + k];
      L[(size_t)i * N + j] = e * d;
    }
  /* G = dloss/dL: rows (image side) and columns (text side), 0.5/N each */
  for (size_t i = 0; i < nn; i++) G[i] = 0;
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < N; j++) row[j] = L[(size_t)i * N + j];
    double l = lse(row, N);
    loss += 0.5 / N * (l - row[i]);
    for (int j = 0; j < N; j++) G[(size_t)i * N + j] += 0.5 / N * (exp(row[j] - l) - (i == j));
  }
  for (int j = 0; j < N; j++) {
    for (int i = 0; i < N; i++) row[i] = L[(size_t)i * N + j];
    double l = lse(row, N);
    loss += 0.5 / N * (l - row[j]);
    for (int i = 0; i < N; i++) G[(size_t)i * N + j] += 0.5 / N * (exp(row[i] - l) - (i == j));
  }
  double gs = 0;
  for (size_t i = 0; i < ne; i++) du[i] = dv[i] = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double g = G[(size_t)i * N + j];
      gs += g * L[(size_t)i * N + j];
      for (int k = 0; k < E; k++) {
        du[(size_t)i * E + k] += e * g * v[(size_t)j * E + k];
        dv[(size_t)j * E + k] += e * g * u[(size_t)i * E + k];
      }
    }
  if (ds) *ds = gs;
  /* through the normalisation: dx = (du - u (u.du)) / n */
  for (int side = 0; side < 2; side++) {
    double *out = side ? dtxt : dimg, *y = side ? v : u, *dy = side ? dv : du, *n = side ? nv : nu;
    if (!out) continue;
    for (int r = 0; r < N; r++) {
      double dot = 0;
      for (int k = 0; k < E; k++) dot += y[(size_t)r * E + k] * dy[(size_t)r * E + k];
      for (int k = 0; k < E; k++) out[(size_t)r * E + k] = (dy[(size_t)r * E + k] - y[(size_t)r * E + k] * dot) / n[r];
    }
  }
  free(u), free(v), free(nu), free(nv), free(L), free(G), free(row), free(du), free(dv);
  return loss;
}

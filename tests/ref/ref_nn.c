/* ref_nn.c: see ref_nn.h. Written from the definitions, for clarity over
 * speed: no shared code with the kernels. */
#include "ref/ref_nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void row_stats(const float *x, int C, double *m, double *rs) {
  double s = 0, v = 0;
  for (int c = 0; c < C; c++) s += x[c];
  s /= C;
  for (int c = 0; c < C; c++) v += (x[c] - s) * (x[c] - s);
  *m = s;
  *rs = 1.0 / sqrt(v / C + 1e-5);
}

void ref_layernorm_fwd(double *out, double *mean, double *rstd, const float *inp, const float *w,
                       const float *b, int N, int C) {
  for (int r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C;
    double m, rs;
    row_stats(x, C, &m, &rs);
    for (int c = 0; c < C; c++) out[(size_t)r * C + c] = (x[c] - m) * rs * w[c] + b[c];
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = rs;
  }
}

void ref_layernorm_bwd(double *dinp, double *dw, double *db, const float *dout, const float *inp,
                       const float *w, int N, int C) {
  if (dw) memset(dw, 0, sizeof(double) * C);
  if (db) memset(db, 0, sizeof(double) * C);
  for (int r = 0; r < N; r++) {
    const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
    double m, rs, sg = 0, sgx = 0;
    row_stats(x, C, &m, &rs);
    for (int c = 0; c < C; c++) {
      double xh = (x[c] - m) * rs;
      sg += (double)dy[c] * w[c];
      sgx += (double)dy[c] * w[c] * xh;
      if (dw) dw[c] += dy[c] * xh;
      if (db) db[c] += dy[c];
    }
    if (!dinp) continue;
    for (int c = 0; c < C; c++) {
      double xh = (x[c] - m) * rs;
      dinp[(size_t)r * C + c] = rs * ((double)dy[c] * w[c] - sg / C - xh * sgx / C);
    }
  }
}

static size_t img_at(int b, int c, int y, int x, int S) {
  return (((size_t)b * 3 + c) * S + y) * S + x;
}

void ref_patch_embed_fwd(double *out, const float *img, const float *w, int B, int S, int p, int C) {
  int G = S / p;
  for (int b = 0; b < B; b++)
    for (int gy = 0; gy < G; gy++)
      for (int gx = 0; gx < G; gx++)
        for (int o = 0; o < C; o++) {
          double s = 0;
          for (int c = 0; c < 3; c++)
            for (int ky = 0; ky < p; ky++)
              for (int kx = 0; kx < p; kx++)
                s += (double)w[(((size_t)o * 3 + c) * p + ky) * p + kx] *
                     img[img_at(b, c, gy * p + ky, gx * p + kx, S)];
          out[(((size_t)b * G + gy) * G + gx) * C + o] = s;
        }
}

void ref_im2col(float *cols, const float *img, int B, int S, int p) {
  int G = S / p;
  size_t K = (size_t)3 * p * p;
  for (int b = 0; b < B; b++)
    for (int gy = 0; gy < G; gy++)
      for (int gx = 0; gx < G; gx++) {
        float *row = cols + (((size_t)b * G + gy) * G + gx) * K;
        for (int c = 0; c < 3; c++)
          for (int ky = 0; ky < p; ky++)
            for (int kx = 0; kx < p; kx++)
              row[((size_t)c * p + ky) * p + kx] = img[img_at(b, c, gy * p + ky, gx * p + kx, S)];
      }
}

void ref_patch_embed_bwd(double *dw, double *dimg, const float *dout, const float *img,
                         const float *w, int B, int S, int p, int C) {
  int G = S / p;
  if (dw) memset(dw, 0, sizeof(double) * C * 3 * p * p);
  if (dimg) memset(dimg, 0, sizeof(double) * B * 3 * S * S);
  for (int b = 0; b < B; b++)
    for (int gy = 0; gy < G; gy++)
      for (int gx = 0; gx < G; gx++)
        for (int o = 0; o < C; o++) {
          double d = dout[(((size_t)b * G + gy) * G + gx) * C + o];
          for (int c = 0; c < 3; c++)
            for (int ky = 0; ky < p; ky++)
              for (int kx = 0; kx < p; kx++) {
                size_t wi = (((size_t)o * 3 + c) * p + ky) * p + kx;
                size_t ii = img_at(b, c, gy * p + ky, gx * p + kx, S);
                if (dw) dw[wi] += d * img[ii];
                if (dimg) dimg[ii] += d * w[wi];
              }
        }
}

void ref_vit_embed_fwd(double *out, const float *patches, const float *cls, const float *pos, int B,
                       int P, int C) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t <= P; t++)
      for (int c = 0; c < C; c++) {
        double v = t == 0 ? cls[c] : patches[((size_t)b * P + t - 1) * C + c];
        out[((size_t)b * (P + 1) + t) * C + c] = v + pos[(size_t)t * C + c];
      }
}

void ref_vit_embed_bwd(double *dpatches, double *dcls, double *dpos, const float *dout, int B, int P,
                       int C) {
  if (dcls) memset(dcls, 0, sizeof(double) * C);
  if (dpos) memset(dpos, 0, sizeof(double) * (P + 1) * C);
  for (int b = 0; b < B; b++)
    for (int t = 0; t <= P; t++)
      for (int c = 0; c < C; c++) {
        double d = dout[((size_t)b * (P + 1) + t) * C + c];
        if (dpos) dpos[(size_t)t * C + c] += d;
        if (t == 0 && dcls) dcls[c] += d;
        if (t > 0 && dpatches) dpatches[((size_t)b * P + t - 1) * C + c] = d;
      }
}

void ref_tok_embed_fwd(double *out, const int *ids, const float *wte, const float *pos, int B, int T,
                       int C, int V) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int id = ids[(size_t)b * T + t];
      for (int c = 0; c < C; c++) {
        double e = (id >= 0 && id < V) ? wte[(size_t)id * C + c] : 0.0;
        out[((size_t)b * T + t) * C + c] = e + pos[(size_t)t * C + c];
      }
    }
}

void ref_tok_embed_bwd(double *dwte, double *dpos, const float *dout, const int *ids, int B, int T,
                       int C, int V) {
  if (dwte) memset(dwte, 0, sizeof(double) * V * C);
  if (dpos) memset(dpos, 0, sizeof(double) * T * C);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int id = ids[(size_t)b * T + t];
      for (int c = 0; c < C; c++) {
        double d = dout[((size_t)b * T + t) * C + c];
        if (dpos) dpos[(size_t)t * C + c] += d;
        if (dwte && id >= 0 && id < V) dwte[(size_t)id * C + c] += d;
      }
    }
}

void ref_argmax_rows(int *idx, const int *ids, int B, int T) {
  for (int b = 0; b < B; b++) {
    int best = 0;
    for (int t = 1; t < T; t++)
      if (ids[(size_t)b * T + t] > ids[(size_t)b * T + best]) best = t;
    idx[b] = best;
  }
}

void ref_gather_rows_fwd(double *out, const float *x, const int *idx, int B, int T, int C) {
  for (int b = 0; b < B; b++) {
    int i = idx ? idx[b] : 0;
    for (int c = 0; c < C; c++)
      out[(size_t)b * C + c] = (i >= 0 && i < T) ? x[((size_t)b * T + i) * C + c] : 0.0;
  }
}

void ref_gather_rows_bwd(double *dx, const float *dout, const int *idx, int B, int T, int C) {
  memset(dx, 0, sizeof(double) * B * T * C);
  for (int b = 0; b < B; b++) {
    int i = idx ? idx[b] : 0;
    if (i < 0 || i >= T) continue;
    for (int c = 0; c < C; c++) dx[((size_t)b * T + i) * C + c] += dout[(size_t)b * C + c];
  }
}

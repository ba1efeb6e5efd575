/* ref_attn.c: see ref_attn.h. Straight loops, no layout tricks, so that it
 * reads like the textbook formula:
 *   s_ij = q_i . k_j / sqrt(D)  (j > i masked out when causal)
 *   p_ij = exp(s_ij - max_j s) / sum_j exp(...)
 *   y_i  = sum_j p_ij v_j
 * Backward: dv_j = sum_i p_ij dy_i; dp_ij = dy_i . v_j;
 *   ds_ij = p_ij (dp_ij - sum_l p_il dp_il); dq_i = sum_j ds_ij k_j / sqrt(D);
 *   dk_j = sum_i ds_ij q_i / sqrt(D). */
#include "ref/ref_attn.h"

#include <math.h>
#include <stdlib.h>

#define QKV(b, t, part, h, d) qkv[((size_t)(b) * T + (t)) * 3 * C + (size_t)(part) * C + (size_t)(h) * D + (d)]

/* probabilities of head (b,h) into p (T,T) */
static void probs(double *p, const float *qkv, int b, int h, int T, int C, int D, int causal) {
  double scale = 1.0 / sqrt((double)D);
  for (int i = 0; i < T; i++) {
    double *row = p + (size_t)i * T, m = -INFINITY, sum = 0;
    int n = causal ? i + 1 : T;
    for (int j = 0; j < n; j++) {
      double s = 0;
      for (int d = 0; d < D; d++) s += (double)QKV(b, i, 0, h, d) * QKV(b, j, 1, h, d);
      row[j] = s * scale;
      if (row[j] > m) m = row[j];
    }
    for (int j = 0; j < n; j++) sum += row[j] = exp(row[j] - m);
    for (int j = 0; j < n; j++) row[j] /= sum;
    for (int j = n; j < T; j++) row[j] = 0;
  }
}

void ref_attention_fwd(double *out, double *att, const float *qkv, int B, int T, int C, int H, int causal) {
  int D = C / H;
  double *p = malloc((size_t)T * T * sizeof *p);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      probs(p, qkv, b, h, T, C, D, causal);
      if (att)
        for (size_t e = 0; e < (size_t)T * T; e++) att[((size_t)b * H + h) * T * T + e] = p[e];
      for (int i = 0; i < T; i++)
        for (int d = 0; d < D; d++) {
          double y = 0;
          for (int j = 0; j < T; j++) y += p[(size_t)i * T + j] * QKV(b, j, 2, h, d);
          out[((size_t)b * T + i) * C + (size_t)h * D + d] = y;
        }
    }
  free(p);
}

void ref_attention_bwd(double *dqkv, const float *dout, const float *qkv, int B, int T, int C, int H,
                       int causal) {
  int D = C / H;
  double scale = 1.0 / sqrt((double)D);
  double *p = malloc((size_t)T * T * sizeof *p), *ds = malloc((size_t)T * T * sizeof *ds);
  for (size_t e = 0; e < (size_t)B * T * 3 * C; e++) dqkv[e] = 0;
#define DY(b, t, h, d) dout[((size_t)(b) * T + (t)) * C + (size_t)(h) * D + (d)]
#define DQKV(b, t, part, h, d) dqkv[((size_t)(b) * T + (t)) * 3 * C + (size_t)(part) * C + (size_t)(h) * D + (d)]
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      probs(p, qkv, b, h, T, C, D, causal);
      for (int i = 0; i < T; i++) {
        double dot = 0;
        for (int j = 0; j < T; j++) {
          double dp = 0;
          for (int d = 0; d < D; d++) dp += (double)DY(b, i, h, d) * QKV(b, j, 2, h, d);
          ds[(size_t)i * T + j] = dp;
          dot += p[(size_t)i * T + j] * dp;
        }
        for (int j = 0; j < T; j++) ds[(size_t)i * T + j] = p[(size_t)i * T + j] * (ds[(size_t)i * T + j] - dot);
      }
      for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
          double pij = p[(size_t)i * T + j], sij = ds[(size_t)i * T + j] * scale;
          for (int d = 0; d < D; d++) {
            DQKV(b, j, 2, h, d) += pij * DY(b, i, h, d);
            DQKV(b, i, 0, h, d) += sij * QKV(b, j, 1, h, d);
            DQKV(b, j, 1, h, d) += sij * QKV(b, i, 0, h, d);
          }
        }
    }
#undef DY
#undef DQKV
  free(p);
  free(ds);
}

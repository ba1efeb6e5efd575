/* embed.cl: data movement for the input embeddings: im2col / col2im for the
 * patch convolution (stride = kernel = p, so every pixel belongs to exactly
 * one patch and col2im needs no atomics), ViT class token + positional
 * embedding, token + positional embedding, and their backward passes.
 * Not here: the convolution's GEMMs (src/ops/embed.c calls cc_gemm).
 *
 * Work-item dimension 0 always runs along channels or pixels of one row, so
 * neighbouring work-items touch neighbouring addresses (PoCL vectorises
 * across dimension 0; GPUs coalesce). Batch reductions (dcls, dpos, dwte)
 * give each output element to one work-item that loops over the batch in
 * order: deterministic, no atomics.
 * Letters: B batch, S image side, p patch side, G = S/p, P = G*G patches,
 * K = 3*p*p, C channels, T tokens, V vocabulary. */

/* cols (B*P, K), row = (b*G + gy)*G + gx, column = (ch*p + ky)*p + kx;
 * img (B,3,S,S). gws = (p, 3*p, B*P): one work-item per element.
 * dir 0: cols = img (im2col); dir 1: img += cols (col2im, accumulating). */
__kernel void patch_cols(__global float *cols, ulong cols_off, __global float *img, ulong img_off,
                         int S, int p, int G, int dir) {
  int kx = get_global_id(0), cy = get_global_id(1), row = get_global_id(2);
  if (kx >= p) return;
  int P = G * G;
  int b = row / P, g = row - b * P;
  int gy = g / G, gx = g - gy * G;
  int ch = cy / p, ky = cy - ch * p;
  ulong src = img_off + (((ulong)b * 3 + ch) * S + (ulong)gy * p + ky) * S + (ulong)gx * p + kx;
  ulong dst = cols_off + (ulong)row * 3 * p * p + (ulong)cy * p + kx;
  if (dir == 0) cols[dst] = img[src];
  else img[src] += cols[dst];
}

/* out (B,P+1,C): row 0 = cls + pos[0], row 1+i = patches[b,i] + pos[1+i].
 * gws = (C, P+1, B). */
__kernel void vit_embed_fwd(__global float *out, ulong out_off, __global const float *patches,
                            ulong pa_off, __global const float *cls, ulong cls_off,
                            __global const float *pos, ulong pos_off, int P, int C) {
  int c = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
  if (c >= C) return;
  float v = t == 0 ? cls[cls_off + c] : patches[pa_off + ((ulong)b * P + t - 1) * C + c];
  out[out_off + ((ulong)b * (P + 1) + t) * C + c] = v + pos[pos_off + (ulong)t * C + c];
}

/* One work-item per (c, t) walks the batch in order: dpatches gets its rows,
 * dpos[t] and (for t = 0) dcls the batch sum. gws = (C, P+1). */
__kernel void vit_embed_bwd(__global float *dpatches, ulong dpa_off, __global float *dcls,
                            ulong dcls_off, __global float *dpos, ulong dpos_off,
                            __global const float *dout, ulong dout_off, int B, int P, int C,
                            int want_dpatches, int want_dcls, int want_dpos) {
  int c = get_global_id(0), t = get_global_id(1);
  if (c >= C) return;
  float s = 0.0f;
  ulong stride = (ulong)(P + 1) * C;
  __global const float *d = dout + dout_off + (ulong)t * C + c;
  for (int b = 0; b < B; b++) {
    float v = d[(ulong)b * stride];
    s += v;
    if (t > 0 && want_dpatches) dpatches[dpa_off + ((ulong)b * P + t - 1) * C + c] += v;
  }
  if (want_dpos) dpos[dpos_off + (ulong)t * C + c] += s;
  if (t == 0 && want_dcls) dcls[dcls_off + c] += s;
}

/* out[b,t,:] = wte[ids[b,t]] + pos[t]; ids outside [0,V) read as zero rows.
 * gws = (C, T, B). */
__kernel void tok_embed_fwd(__global float *out, ulong out_off, __global const int *ids,
                            ulong ids_off, __global const float *wte, ulong wte_off,
                            __global const float *pos, ulong pos_off, int T, int C, int V) {
  int c = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
  if (c >= C) return;
  int id = ids[ids_off + (ulong)b * T + t];
  float e = (id >= 0 && id < V) ? wte[wte_off + (ulong)id * C + c] : 0.0f;
  out[out_off + ((ulong)b * T + t) * C + c] = e + pos[pos_off + (ulong)t * C + c];
}

/* One work-item per channel walks every position in order, so duplicate ids
 * accumulate in a fixed order and no two work-items share a word:
 * dwte[ids[n], c] += dout[n, c]; dpos[t, c] += dout[b, t, c] (b ascending).
 * gws >= C. */
__kernel void tok_embed_bwd(__global float *dwte, ulong dwte_off, __global float *dpos,
                            ulong dpos_off, __global const float *dout, ulong dout_off,
                            __global const int *ids, ulong ids_off, int B, int T, int C, int V,
                            int want_dwte, int want_dpos) {
  int c = get_global_id(0);
  if (c >= C) return;
  __global const float *d = dout + dout_off + c;
  __global float *wp = dwte + dwte_off + c;
  __global float *pp = dpos + dpos_off + c;
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      ulong n = (ulong)b * T + t;
      float v = d[n * C];
      if (want_dpos) pp[(ulong)t * C] += v;
      int id = ids[ids_off + n];
      if (want_dwte && id >= 0 && id < V) wp[(ulong)id * C] += v;
    }
  }
}

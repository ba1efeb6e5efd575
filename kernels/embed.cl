/* embed.cl: data movement for the input embeddings: im2col / col2im for the
 * patch convolution (stride = kernel = p, so every pixel belongs to exactly
 * one patch and col2im needs no atomics), ViT class token + positional
 * embedding, token + positional embedding, and their backward passes.
 * Not here: the convolution's GEMMs (src/ops/embed.c calls cc_gemm).
 *
 * Work-items own VEC consecutive channels (-DVEC: the vector width VW on
 * CPUs, where PoCL runs a work-item as a loop body and a floatv is one
 * machine register; 1 on GPUs,
 * where neighbouring work-items then touch neighbouring words). The last
 * block of a row may be short and takes a scalar path. Batch reductions
 * (dcls, dpos, dwte) give each output element to one work-item that loops
 * over the batch in order: deterministic, no atomics.
 * Letters: B batch, S image side, p patch side, G = S/p, P = G*G patches,
 * K = 3*p*p, C channels, T tokens, V vocabulary. */

#ifndef VEC
#define VEC VW
#endif
#if VEC == 1
#define vfloat float
#define ELOAD(p) (*(p))
#define ESTORE(v, p) (*(p) = (v))
#else
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define vfloat CAT(float, VEC)
#define ELOAD(p) CAT(vload, VEC)(0, (p))
#define ESTORE(v, p) CAT(vstore, VEC)((v), 0, (p))
#endif

/* cols (B*P, K), row = (b*G + gy)*G + gx, column = (ch*p + ky)*p + kx;
 * img (B,3,S,S). One work-item per (ch*p + ky, row) moves a run of p
 * contiguous floats in vectors. gws = (3*p, B*P).
 * dir 0: cols = img (im2col); dir 1: img += cols (col2im, accumulating). */
__kernel void patch_cols(__global float *cols, ulong cols_off, __global float *img, ulong img_off,
                         int S, int p, int G, int dir) {
  int cy = get_global_id(0), row = get_global_id(1);
  if (cy >= 3 * p) return;
  int P = G * G;
  int b = row / P, g = row - b * P;
  int gy = g / G, gx = g - gy * G;
  int ch = cy / p, ky = cy - ch * p;
  __global float *im = img + img_off + (((ulong)b * 3 + ch) * S + (ulong)gy * p + ky) * S + (ulong)gx * p;
  __global float *co = cols + cols_off + (ulong)row * 3 * p * p + (ulong)cy * p;
  int kx = 0;
  if (dir == 0) {
    for (; kx + VW <= p; kx += VW) VSTORE(VLOAD(0, im + kx), 0, co + kx);
    for (; kx + 4 <= p; kx += 4) vstore4(vload4(0, im + kx), 0, co + kx);
    for (; kx < p; kx++) co[kx] = im[kx];
  } else {
    for (; kx + VW <= p; kx += VW) VSTORE(VLOAD(0, im + kx) + VLOAD(0, co + kx), 0, im + kx);
    for (; kx + 4 <= p; kx += 4) vstore4(vload4(0, im + kx) + vload4(0, co + kx), 0, im + kx);
    for (; kx < p; kx++) im[kx] += co[kx];
  }
}

/* out (B,P+1,C): row 0 = cls + pos[0], row 1+i = patches[b,i] + pos[1+i].
 * gws = (ceil(C/VEC), P+1, B). */
__kernel void vit_embed_fwd(__global float *out, ulong out_off, __global const float *patches,
                            ulong pa_off, __global const float *cls, ulong cls_off,
                            __global const float *pos, ulong pos_off, int P, int C) {
  int c0 = get_global_id(0) * VEC, t = get_global_id(1), b = get_global_id(2);
  if (c0 >= C) return;
  __global const float *src =
      t == 0 ? cls + cls_off + c0 : patches + pa_off + ((ulong)b * P + t - 1) * C + c0;
  __global const float *q = pos + pos_off + (ulong)t * C + c0;
  __global float *y = out + out_off + ((ulong)b * (P + 1) + t) * C + c0;
  if (c0 + VEC <= C) ESTORE(ELOAD(src) + ELOAD(q), y);
  else
    for (int c = 0; c < C - c0; c++) y[c] = src[c] + q[c];
}

/* One work-item per (channel block, t) walks the batch in order: dpatches
 * gets its rows, dpos[t] and (for t = 0) dcls the batch sum. A block is VEC
 * channels (the last one may be short). gws = (ceil(C/VEC), P+1). */
__kernel void vit_embed_bwd(__global float *dpatches, ulong dpa_off, __global float *dcls,
                            ulong dcls_off, __global float *dpos, ulong dpos_off,
                            __global const float *dout, ulong dout_off, int B, int P, int C,
                            int want_dpatches, int want_dcls, int want_dpos) {
  int c0 = get_global_id(0) * VEC, t = get_global_id(1);
  if (c0 >= C) return;
  ulong stride = (ulong)(P + 1) * C;
  __global const float *d = dout + dout_off + (ulong)t * C + c0;
  __global float *dp = dpatches + dpa_off + (ulong)(t - 1) * C + c0; /* used when t > 0 */
  ulong pstride = (ulong)P * C;
  int wp = t > 0 && want_dpatches;
  if (c0 + VEC <= C) {
    vfloat s = 0.0f;
    for (int b = 0; b < B; b++) {
      vfloat v = ELOAD(d + (ulong)b * stride);
      s += v;
      if (wp) ESTORE(ELOAD(dp + (ulong)b * pstride) + v, dp + (ulong)b * pstride);
    }
    if (want_dpos) {
      __global float *q = dpos + dpos_off + (ulong)t * C + c0;
      ESTORE(ELOAD(q) + s, q);
    }
    if (t == 0 && want_dcls) {
      __global float *q = dcls + dcls_off + c0;
      ESTORE(ELOAD(q) + s, q);
    }
    return;
  }
  for (int c = 0; c < C - c0; c++) {
    float s = 0.0f;
    for (int b = 0; b < B; b++) {
      float v = d[(ulong)b * stride + c];
      s += v;
      if (wp) dp[(ulong)b * pstride + c] += v;
    }
    if (want_dpos) dpos[dpos_off + (ulong)t * C + c0 + c] += s;
    if (t == 0 && want_dcls) dcls[dcls_off + c0 + c] += s;
  }
}

/* out[b,t,:] = wte[ids[b,t]] + pos[t]; ids outside [0,V) read as zero rows.
 * gws = (ceil(C/VEC), T, B). */
__kernel void tok_embed_fwd(__global float *out, ulong out_off, __global const int *ids,
                            ulong ids_off, __global const float *wte, ulong wte_off,
                            __global const float *pos, ulong pos_off, int T, int C, int V) {
  int c0 = get_global_id(0) * VEC, t = get_global_id(1), b = get_global_id(2);
  if (c0 >= C) return;
  int id = ids[ids_off + (ulong)b * T + t];
  int ok = id >= 0 && id < V;
  __global const float *e = wte + wte_off + (ulong)(ok ? id : 0) * C + c0;
  __global const float *q = pos + pos_off + (ulong)t * C + c0;
  __global float *y = out + out_off + ((ulong)b * T + t) * C + c0;
  if (c0 + VEC <= C) ESTORE(ok ? ELOAD(e) + ELOAD(q) : ELOAD(q), y);
  else
    for (int c = 0; c < C - c0; c++) y[c] = ok ? e[c] + q[c] : q[c];
}

/* One work-item per block of VEC channels walks every position in order,
 * so duplicate ids accumulate in a fixed order and no two work-items share a
 * word: dwte[ids[n], c] += dout[n, c]; dpos[t, c] += dout[b, t, c] (b
 * ascending). gws >= ceil(C/VEC). */
__kernel void tok_embed_bwd(__global float *dwte, ulong dwte_off, __global float *dpos,
                            ulong dpos_off, __global const float *dout, ulong dout_off,
                            __global const int *ids, ulong ids_off, int B, int T, int C, int V,
                            int want_dwte, int want_dpos) {
  int c0 = get_global_id(0) * VEC;
  if (c0 >= C) return;
  __global const float *d = dout + dout_off + c0;
  __global float *wp = dwte + dwte_off + c0;
  __global float *pp = dpos + dpos_off + c0;
  int full = c0 + VEC <= C, w = full ? VEC : C - c0;
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      ulong n = (ulong)b * T + t;
      int id = ids[ids_off + n];
      int wid = want_dwte && id >= 0 && id < V;
      __global const float *dn = d + n * C;
      __global float *pt = pp + (ulong)t * C, *wr = wp + (ulong)(wid ? id : 0) * C;
      if (full) {
        vfloat v = ELOAD(dn);
        if (want_dpos) ESTORE(ELOAD(pt) + v, pt);
        if (wid) ESTORE(ELOAD(wr) + v, wr);
      } else {
        for (int c = 0; c < w; c++) {
          if (want_dpos) pt[c] += dn[c];
          if (wid) wr[c] += dn[c];
        }
      }
    }
  }
}

/* ref_nn.h: plain C references for LayerNorm, patch / ViT / token embeddings
 * and row pooling (double accumulation, double outputs). Backward functions
 * write gradients (they do not accumulate); tests add the initial values.
 * Not here: GEMM (ref_gemm.h), elementwise ops (ref_elementwise.h). */
#ifndef REF_NN_H
#define REF_NN_H

/* out (N,C), mean and rstd (N); eps 1e-5, biased variance. */
void ref_layernorm_fwd(double *out, double *mean, double *rstd, const float *inp, const float *w,
                       const float *b, int N, int C);
/* Any of dinp (N,C), dw (C), db (C) may be NULL. Statistics recomputed here. */
void ref_layernorm_bwd(double *dinp, double *dw, double *db, const float *dout, const float *inp,
                       const float *w, int N, int C);

/* Conv with stride = kernel = p, no bias, computed directly (no im2col):
 * img (B,3,S,S), w (C,3,p,p), out (B,G*G,C) with G = S/p. */
void ref_patch_embed_fwd(double *out, const float *img, const float *w, int B, int S, int p, int C);
/* cols (B*G*G, 3*p*p): patch rows, channel-major then ky then kx. Exact. */
void ref_im2col(float *cols, const float *img, int B, int S, int p);
/* dw (C,3,p,p) and dimg (B,3,S,S); either may be NULL. */
void ref_patch_embed_bwd(double *dw, double *dimg, const float *dout, const float *img,
                         const float *w, int B, int S, int p, int C);

/* out (B,P+1,C) = [cls; patches[b]] + pos. */
void ref_vit_embed_fwd(double *out, const float *patches, const float *cls, const float *pos, int B,
                       int P, int C);
/* dpatches (B,P,C), dcls (C), dpos (P+1,C); any may be NULL. */
void ref_vit_embed_bwd(double *dpatches, double *dcls, double *dpos, const float *dout, int B, int P,
                       int C);

/* out (B,T,C) = wte[ids] + pos; ids outside [0,V) read as zero rows. */
void ref_tok_embed_fwd(double *out, const int *ids, const float *wte, const float *pos, int B, int T,
                       int C, int V);
/* dwte (V,C), dpos (T,C); either may be NULL. Invalid ids are skipped. */
void ref_tok_embed_bwd(double *dwte, double *dpos, const float *dout, const int *ids, int B, int T,
                       int C, int V);

/* idx[b] = first position of the largest value in ids[b,:]. */
void ref_argmax_rows(int *idx, const int *ids, int B, int T);
/* out (B,C) = x[b, idx[b], :]; idx NULL means 0; idx outside [0,T) gives 0. */
void ref_gather_rows_fwd(double *out, const float *x, const int *idx, int B, int T, int C);
/* dx (B,T,C) = scatter of dout (B,C); rows not gathered are 0. */
void ref_gather_rows_bwd(double *dx, const float *dout, const int *idx, int B, int T, int C);
#endif

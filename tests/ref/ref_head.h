/* ref_head.h: plain C CLIP head (double throughout): L2 normalisation,
 * scaled logits, row cross-entropy, and open_clip's symmetric loss end to
 * end. The references for cc_l2norm_*, cc_logits_*, cc_ce_*, cc_transpose. */
#ifndef REF_HEAD_H
#define REF_HEAD_H
/* out = x / max(||x||, 1e-12) per row; norm (may be NULL) the unclamped norm. */
void ref_l2norm_fwd(double *out, double *norm, const float *x, int N, int E);
/* dx = d(sum(dout .* out))/dx, from x itself (not from saved values). */
void ref_l2norm_bwd(double *dx, const float *dout, const float *x, int N, int E);
/* logits (N,M) = exp(s) a b^T */
void ref_logits_fwd(double *logits, const float *a, const float *b, float s, int N, int M, int E);
/* da, db, ds (each may be NULL) = gradients of sum(dl .* logits). */
void ref_logits_bwd(double *da, double *db, double *ds, const float *dl, const float *a, const float *b, float s,
                    int N, int M, int E);
/* Returns weight * mean_i (logsumexp(x_i) - x_i[i + off]); probs may be NULL. */
double ref_ce_fwd(double *probs, const float *logits, int N, int M, int off, double weight);
/* dlogits = d(loss)/dlogits = weight/N (softmax - onehot). */
void ref_ce_bwd(double *dlogits, const float *logits, int N, int M, int off, double weight);
/* open_clip ClipLoss on one process: img (N,E), txt (N,E) raw features,
 * L = exp(s) n(img) n(txt)^T, loss 0.5 (CE(L) + CE(L^T)). Gradients with
 * respect to img, txt, s (each may be NULL). */
double ref_clip_loss(const float *img, const float *txt, float s, int N, int E, double *dimg, double *dtxt,
                     double *ds);
#endif

/* ref_siglip.h: plain C SigLIP sigmoid loss (double throughout): one block
 * of logits (the reference for cc_siglip_fwd_bwd), and open_clip's
 * SigLipLoss end to end on raw features, written out on its own. */
#ifndef REF_SIGLIP_H
#define REF_SIGLIP_H
/* Returns coef * sum log(1 + exp(-y (logits + bias))) with y = +1 at
 * (i, i + diag) (none when diag < 0), -1 elsewhere; dlogits (may be NULL)
 * and *dbias (may be NULL) its gradients. */
double ref_siglip_block(double *dlogits, double *dbias, const float *logits, double bias, int N, int M, int diag,
                        double coef);
/* open_clip SigLipLoss on one process: img (N,E), txt (N,E) raw features,
 * z = exp(s) n(img) n(txt)^T + b, loss = sum -logsigmoid(y z) / N.
 * Gradients with respect to img, txt, s, b (each may be NULL). */
double ref_siglip_loss(const float *img, const float *txt, float s, float b, int N, int E, double *dimg,
                       double *dtxt, double *ds, double *db);
#endif

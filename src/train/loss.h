/* loss.h: the training loss of one rank's batch at the global batch: CLIP's
 * softmax loss over gathered features (open_clip --local-loss
 * --gather-with-grad) or SigLIP's sigmoid loss with texts passed around a
 * ring (open_clip SigLipLoss, bidir). Each rank gets its share of the loss,
 * scaled so that the shares of all ranks sum to the one-process loss at
 * batch R x N; the feature gradients are this rank's, complete (the
 * contributions other ranks computed have been returned to their owner);
 * d logit_scale and d logit_bias are this rank's shares (the caller sums the
 * parameter gradients over ranks). Not here: the towers, the optimiser.
 *
 * Letters: N rows per rank, R ranks, E embedding width. */
#ifndef CC_TRAIN_LOSS_H
#define CC_TRAIN_LOSS_H
#include "cl/runtime.h"
#include "dist/dist.h"

typedef struct {
  cc_rt *rt;
  cc_dist *d;
  int cap, E, R, rank, siglip;
  cc_arena ar;
  cc_view img_n, txt_n, img_norm, txt_norm; /* (N,E) (N,E) (N) (N) */
  cc_view dimg_n, dtxt_n;                   /* (N,E) */
  cc_view img_all, txt_all;                 /* CLIP, R > 1: (R*N,E) every rank's normalised features */
  cc_view dimg_all, dtxt_all;               /* CLIP, R > 1: their gradients from this rank's rows */
  cc_view li, lt, pi, pt, dli, dlt;         /* CLIP: (N,R*N); SigLIP: li, dli (N,N) per block */
  cc_view blk, dblk, tmp;                   /* SigLIP: a received text block and its gradient; (N,E) scratch */
  cc_view loss;                             /* (1) this rank's share */
  float *host;                              /* staging for the exchanges */
  size_t host_cap;
} cc_loss;

clipcl_status cc_loss_create(cc_rt *rt, cc_dist *d, int cap, int E, int siglip, cc_loss **out);
/* The device bytes cc_loss_create would take for R ranks (and its largest
 * buffer), laid out the same way on a counting arena; nothing allocated. */
clipcl_status cc_loss_plan(int cap, int E, int R, int siglip, uint64_t max_alloc, uint64_t *bytes,
                           uint64_t *largest);
void cc_loss_free(cc_loss *l);
/* Loss of img_feat, txt_feat (N,E each, raw tower outputs) into l->loss.
 * With grads: dimg_feat, dtxt_feat (N,E) overwritten; dscale[0] (and, for
 * SigLIP, dbias[0]) added. scale and bias are the parameters (bias unused
 * for CLIP). Every rank must call it with the same N. */
clipcl_status cc_loss_run(cc_loss *l, cc_view img_feat, cc_view txt_feat, int N, cc_view scale, cc_view bias,
                          int grads, cc_view dimg_feat, cc_view dtxt_feat, cc_view dscale, cc_view dbias);
#endif

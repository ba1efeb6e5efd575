/* trainer.h: one optimiser step of CLIP (or SigLIP) training on the device,
 * on one rank or several, and the optimiser state, learning-rate schedule
 * and checkpoints around it. The run itself (data loop, logging, evaluation)
 * is train.c, behind clipcl_train().
 *
 * A step takes N = accum * micro samples. With accum > 1 it follows
 * open_clip's --accum-freq: features of all micro-batches are computed first
 * (no activations kept), the loss and its gradient with respect to every
 * feature are computed once over all N pairs, then each micro-batch is run
 * again with activations kept and back-propagated from its slice of those
 * feature gradients: the update equals the full-batch one. */
#ifndef CC_TRAINER_H
#define CC_TRAINER_H
#include <stdint.h>

#include "dist/dist.h"
#include "model/model.h"
#include "train/loss.h"
#include "train/reduce.h"

typedef struct {
  float lr, beta1, beta2, eps, weight_decay;
  long warmup, total_steps; /* linear warmup then cosine to 0 over total_steps */
  float grad_clip;          /* global norm; 0 = off */
  int micro, accum;         /* samples per micro-batch, micro-batches per step */
  int lock_image;           /* freeze the vision tower (open_clip --lock-image) */
} cc_train_hparams;

/* How a step is computed (none of it changes the update). Zero: one rank,
 * CLIP loss, every activation kept, full optimiser state. */
typedef struct {
  int siglip;               /* sigmoid loss (the model needs a logit_bias) */
  int grad_ckpt;            /* activation checkpointing */
  int zero;                 /* 1: AdamW moments sharded over the ranks (ZeRO-1) */
  cc_dist *dist;            /* NULL: one rank */
} cc_train_setup;

typedef struct {
  cc_model *m;
  cc_train_hparams hp;
  cc_train_setup su;
  cc_dist *d;
  cc_loss *loss, *eval_loss; /* the training loss (over the ranks); validation (this rank only) */
  cc_reducer *red;     /* several ranks: gradient buckets and ZeRO parts */
  cc_arena oar;
  cc_view mom, vel;    /* AdamW moments (L.total; with ZeRO this rank's parts, red->mom_total) */
  cl_mem mask;         /* (L.total) bytes: 0 no decay, 1 decay, 2 frozen */
  cc_view gnorm, gscale; /* (1) each */
  cc_view norms;       /* ZeRO: a gradient norm per bucket part */
  cc_view img_all, txt_all, dimg_all, dtxt_all; /* (N,E) when accum > 1 */
  long step;           /* optimiser steps taken */
} cc_trainer;

/* Allocates gradients, workspaces and the optimiser state (moments zero). */
clipcl_status cc_trainer_create(cc_model *m, const cc_train_hparams *hp, cc_trainer **out);
/* The same with a setup (su may be NULL: all zero). With several ranks every
 * rank calls it, and every later call that says "collective". */
clipcl_status cc_trainer_create_setup(cc_model *m, const cc_train_hparams *hp, const cc_train_setup *su,
                                      cc_trainer **out);
void cc_trainer_free(cc_trainer *t);
/* open_clip's cosine_lr: lr * (step+1)/warmup during warmup, then
 * 0.5 * (1 + cos(pi * e / es)) * lr with e = step - warmup, es = total - warmup. */
double cc_lr_at(const cc_train_hparams *hp, long step);
/* One optimiser step on host arrays pixels (N,3,S,S) and ids (N,T) (this
 * rank's slice of the global batch). Writes the loss of the global batch
 * (and the gradient norm before clipping, when clipping is on; else -1) to
 * the host. A non-finite loss returns CLIPCL_ERR_NUMERIC on every rank
 * without updating the parameters. Collective. */
clipcl_status cc_trainer_step(cc_trainer *t, const float *pixels, const int32_t *ids, float *loss, float *gnorm);
/* Loss over N pairs without updating anything (validation). */
clipcl_status cc_trainer_eval_loss(cc_trainer *t, const float *pixels, const int32_t *ids, int n, float *loss);

/* The summed gradient of the last step, whole, on every rank (host,
 * L.total floats). Collective. For tests. */
clipcl_status cc_trainer_full_grads(cc_trainer *t, float *host);

/* Checkpoints (checkpoint.c): <dir>/step_<N>.safetensors (the model, open_clip
 * names, loadable by open_clip and `clipcl --model`) and
 * <dir>/step_<N>.optim.safetensors (the whole model's moments, step, and the
 * caller's state string, e.g. the loader positions), each written
 * atomically by rank 0, the optimiser file first: a pair is complete when
 * both exist and agree on the step. Collective. */
clipcl_status cc_checkpoint_save(cc_trainer *t, const char *dir, const char *state_json);
/* Newest complete checkpoint in dir: its step in *step and the model path in
 * path (cap bytes); CLIPCL_ERR_IO if there is none. This process only. */
clipcl_status cc_checkpoint_latest(const char *dir, long *step, char *path, size_t cap);
/* The same, rank 0's answer on every rank. Collective. */
clipcl_status cc_checkpoint_latest_all(cc_trainer *t, const char *dir, long *step, char *path, size_t cap);
/* Restores parameters, moments and step from a checkpoint's model path
 * (read by rank 0, on any number of ranks); *state_json receives the saved
 * state string (malloc'd). Collective. */
clipcl_status cc_checkpoint_load(cc_trainer *t, const char *model_path, char **state_json);
/* Deletes all but the newest `keep` complete checkpoints (keep <= 0: none). */
void cc_checkpoint_prune(const char *dir, int keep);
#endif

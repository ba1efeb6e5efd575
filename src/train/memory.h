/* memory.h: the device memory training needs, planned before anything is
 * allocated (see memory.c). */
#ifndef CC_TRAIN_MEMORY_H
#define CC_TRAIN_MEMORY_H
#include <stdint.h>

#include "train/trainer.h"

typedef struct {
  /* bytes on the device, by category */
  uint64_t params, grads, optim, vision, text, loss, eval_loss, scratch;
  uint64_t total;
  /* the largest category */
  const char *biggest;
  uint64_t biggest_bytes;
} cc_mem_plan;

/* What cc_trainer_create_setup allocates (and, later, the validation loss
 * and the runtime's scratch) for micro-batches of `micro`, `accum` of them a
 * step, with setup su (NULL: one rank, CLIP loss, all activations kept):
 * laid out by the same code on counting arenas, against the per-buffer limit
 * max_alloc, so the single-rank figures equal the allocation (the attention
 * scratch is an upper estimate; with several ranks ZeRO's moment shards are
 * estimated). Fails (message set) when one buffer would exceed max_alloc. */
clipcl_status cc_plan_training(const cc_layout *L, int micro, int accum, const cc_train_setup *su,
                               uint64_t max_alloc, cc_mem_plan *p);

/* OK when training fits the device; else CLIPCL_ERR_NOMEM with one line:
 * what does not fit and how much it needs, what the device has, and the
 * largest batch that fits (or that the model alone does not fit). On a CPU
 * device the memory the kernel reports available counts too, since the
 * device's allocations come from it (and are made lazily: too much is a
 * crash later, not an error now). */
clipcl_status cc_check_training_fits(cc_rt *rt, const cc_layout *L, int micro, int accum, const cc_train_setup *su);
#endif

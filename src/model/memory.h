/* memory.h: the device memory training needs, planned before anything is
 * allocated (see memory.c). */
#ifndef CC_MEMORY_H
#define CC_MEMORY_H
#include <stdint.h>

#include "model/model.h"

typedef struct {
  /* bytes on the device, by category */
  uint64_t params, grads, optim, vision, text, head, scratch;
  uint64_t total;
  /* the largest category and the largest single buffer */
  const char *biggest;
  uint64_t biggest_bytes, largest_buffer;
} cc_mem_plan;

/* What cc_trainer_create and the steps allocate for micro-batches of
 * `micro` with `accum` of them per step, laid out by the same code against
 * the per-buffer limit max_alloc (the attention and head scratch is an upper
 * estimate). Fails (message set) when one buffer would exceed max_alloc. */
clipcl_status cc_plan_training(const cc_layout *L, int micro, int accum, uint64_t max_alloc, cc_mem_plan *p);

/* OK when training fits the device; else CLIPCL_ERR_NOMEM with one line:
 * what does not fit and how much it needs, what the device has, and the
 * largest --batch-size that fits (or that the model alone does not fit). On
 * a CPU device the memory the kernel reports available counts too, since
 * the device's allocations come from it (and are made lazily: too much is
 * a crash later, not an error now). */
clipcl_status cc_check_training_fits(cc_rt *rt, const cc_layout *L, int micro, int accum);
#endif

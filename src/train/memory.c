/* memory.c: device memory planning for training. The workspaces and the loss
 * are laid out by the same functions that allocate them (cc_tower_ws_build,
 * cc_loss_plan) on counting arenas, so the plan is the allocation, not an
 * estimate of it; only the runtime's attention scratch is bounded from its
 * sizes. A batch that does not fit is refused up front
 * with one line that says what does not fit, what the device has and the
 * largest batch that does, instead of failing in the middle of allocation
 * with an OpenCL code or, on a CPU device, being killed later. */
#include "train/memory.h"

#include <stdio.h>
#include <string.h>

#include "dist/dist.h"
#include "train/loss.h"
#include "util/error.h"
#include "util/mem.h"

/* One tensor category in its own arena (parameters, gradients). */
static clipcl_status plan_flat(const char *name, size_t elems, uint64_t max_alloc, uint64_t *bytes) {
  cc_arena a;
  cc_view v;
  cc_arena_init_count(&a, name, elems, max_alloc);
  clipcl_status s = cc_arena_alloc(&a, elems, &v);
  *bytes = cc_arena_bytes(&a, NULL);
  return s;
}

static uint64_t scratch_bound(const cc_layout *L, size_t B) {
  uint64_t most = 0;
  for (int v = 0; v < 2; v++) {
    const cc_tower_dims *d = v ? &L->vis : &L->txt;
    uint64_t BH = (uint64_t)B * d->H, T = (uint64_t)d->T, D = (uint64_t)d->C / d->H, TP = (T + 15) / 16 * 16;
    uint64_t bhtd = BH * T * D, bhtt = BH * T * T;
    uint64_t slots = (BH * D * TP > bhtd ? BH * D * TP : bhtd) + (bhtt > 3 * bhtd ? bhtt : 3 * bhtd) + bhtt;
    if (slots > most) most = slots;
  }
  return most * 4 + most; /* floats, plus the runtime's 25% growth headroom */
}

static void take(cc_mem_plan *p, const char *what, uint64_t bytes) {
  p->total += bytes;
  if (bytes > p->biggest_bytes) p->biggest = what, p->biggest_bytes = bytes;
}

clipcl_status cc_plan_training(const cc_layout *L, int micro, int accum, const cc_train_setup *su,
                               uint64_t max_alloc, cc_mem_plan *p) {
  memset(p, 0, sizeof *p);
  cc_train_setup none;
  memset(&none, 0, sizeof none);
  if (!su) su = &none;
  int R = su->dist ? cc_dist_size(su->dist) : 1;
  size_t n = L->total, N = (size_t)micro * (size_t)accum, E = (size_t)L->cfg.embed_dim;
  clipcl_status s = plan_flat("parameters", n, max_alloc, &p->params);
  if (!s) s = plan_flat("gradients", n, max_alloc, &p->grads);
  int keep = su->grad_ckpt ? CC_WS_CKPT : CC_WS_FULL;
  for (int vision = 1; vision >= 0 && !s; vision--) {
    cc_tower_ws w;
    s = cc_tower_ws_build(&w, L, NULL, max_alloc, vision, micro, keep);
    *(vision ? &p->vision : &p->text) = cc_arena_bytes(&w.ar, NULL);
    cc_tower_ws_free(&w);
  }
  if (!s) s = cc_loss_plan((int)N, (int)E, R, su->siglip, max_alloc, &p->loss, NULL);
  if (!s) {
    /* as cc_trainer_create_setup: moments (a shard of them with ZeRO-1 over
     * several ranks; estimated without the buckets), two scalars, the bucket
     * norms (several ranks), the accumulated features */
    size_t nm = R > 1 && su->zero ? (n + (size_t)R - 1) / (size_t)R : n, nb = R > 1 ? 64 : 0;
    cc_arena a;
    cc_view v;
    cc_arena_init_count(&a, "optimiser state", 2 * nm + 4 * N * E + 64 + nb, max_alloc);
    s = cc_arena_alloc(&a, nm, &v);
    if (!s) s = cc_arena_alloc(&a, nm, &v);
    if (!s) s = cc_arena_alloc(&a, 1, &v);
    if (!s) s = cc_arena_alloc(&a, 1, &v);
    if (!s && nb) s = cc_arena_alloc(&a, nb, &v);
    for (int k = 0; k < 4 && !s && accum > 1; k++) s = cc_arena_alloc(&a, N * E, &v);
    p->optim = cc_arena_bytes(&a, NULL) + n; /* + the weight-decay mask, a byte each */
  }
  /* the validation loss, made at the first validation, on this rank only */
  if (!s) s = cc_loss_plan((int)N, (int)E, 1, su->siglip, max_alloc, &p->eval_loss, NULL);
  p->scratch = scratch_bound(L, (size_t)micro);
  take(p, "the parameters", p->params);
  take(p, "the gradients", p->grads);
  take(p, "the optimiser state", p->optim);
  take(p, "the vision activations", p->vision);
  take(p, "the text activations", p->text);
  take(p, "the loss", p->loss);
  take(p, "the validation loss", p->eval_loss);
  take(p, "attention scratch", p->scratch);
  return s;
}

/* 1 when micro-batches of `micro` fit in `budget` bytes. */
static int fits(const cc_layout *L, int micro, int accum, const cc_train_setup *su, uint64_t max_alloc,
                uint64_t budget) {
  cc_mem_plan p;
  int ok = cc_plan_training(L, micro, accum, su, max_alloc, &p) == CLIPCL_OK && p.total <= budget;
  cc_clear_error();
  return ok;
}

clipcl_status cc_check_training_fits(cc_rt *rt, const cc_layout *L, int micro, int accum, const cc_train_setup *su) {
  const clipcl_device_info *d = cc_info(rt);
  uint64_t budget = d->global_mem, host_total = 0, host_avail = 0;
  const char *whose = "the device";
  cc_mem_plan p;
  clipcl_status s = cc_plan_training(L, micro, accum, su, d->max_alloc, &p);
  if (d->is_cpu) {
    /* the parameters are already in memory (created and filled), so what is
     * available now comes on top of them */
    cc_host_memory(&host_total, &host_avail);
    if (host_avail && host_avail + p.params < budget)
      budget = host_avail + p.params, whose = "the host (the device is its CPU)";
  }
  if (s == CLIPCL_OK && p.total <= budget) return CLIPCL_OK;
  if (s != CLIPCL_OK && s != CLIPCL_ERR_NOMEM) return s;
  char why[600], need[32], part[32], have[32], buf[32], largest[200];
  if (s == CLIPCL_OK) {
    snprintf(why, sizeof why, "training needs %s of device memory (%s alone %s), and %s has %s%s",
             cc_fmt_bytes(need, sizeof need, p.total), p.biggest, cc_fmt_bytes(part, sizeof part, p.biggest_bytes),
             whose, cc_fmt_bytes(have, sizeof have, budget), budget != d->global_mem ? " available" : "");
  } else {
    /* one buffer over the device's per-buffer limit (message set); the whole
     * need as if buffers had no size limit */
    snprintf(why, sizeof why, "%s", clipcl_last_error());
    if (cc_plan_training(L, micro, accum, su, (uint64_t)1 << 62, &p) == CLIPCL_OK) {
      size_t k = strlen(why);
      snprintf(why + k, sizeof why - k, "; in all training needs %s, and %s has %s%s",
               cc_fmt_bytes(need, sizeof need, p.total), whose, cc_fmt_bytes(have, sizeof have, budget),
               budget != d->global_mem ? " available" : "");
    }
  }
  int lo = 0, hi = micro; /* fits(lo) (0: nothing does), !fits(hi) */
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (fits(L, mid, accum, su, d->max_alloc, budget)) lo = mid;
    else hi = mid;
  }
  if (lo > 0)
    snprintf(largest, sizeof largest, "the largest batch that fits is %d%s", lo,
             accum > 1 ? " per micro-batch (with the same --accum-freq)" : "");
  else
    snprintf(largest, sizeof largest, "the model does not fit at any batch size (its parameters, gradients and "
             "optimiser state alone take %s)", cc_fmt_bytes(buf, sizeof buf, p.params + p.grads + p.optim));
  return cc_fail(CLIPCL_ERR_NOMEM, "a batch of %d%s does not fit on %s: %s; %s", micro,
                 accum > 1 ? " per micro-batch" : "", d->name, why, largest);
}

/* memory.c: device memory planning for training. The workspaces are laid out
 * by the same functions that allocate them (cc_tower_ws_build and
 * cc_head_ws_build on counting arenas), so the plan is the allocation, not
 * an estimate of it; only the runtime's scratch buffers (attention, head) are
 * bounded from their sizes. A batch that does not fit is refused up front
 * with one line that says what does not fit, what the device has and the
 * largest batch that does, instead of failing in the middle of allocation
 * with an OpenCL code or, on a CPU device, being killed later. */
#include "model/memory.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"
#include "util/mem.h"

static uint64_t arena_total(const cc_arena *a, uint64_t *largest) {
  uint64_t big;
  uint64_t t = cc_arena_bytes(a, &big);
  if (big > *largest) *largest = big;
  return t;
}

/* One tensor category in its own arena (parameters, gradients). */
static clipcl_status plan_flat(const char *name, size_t elems, uint64_t max_alloc, uint64_t *bytes,
                               uint64_t *largest) {
  cc_arena a;
  cc_view v;
  cc_arena_init_count(&a, name, elems, max_alloc);
  clipcl_status s = cc_arena_alloc(&a, elems, &v);
  *bytes = arena_total(&a, largest);
  return s;
}

static uint64_t scratch_bound(const cc_layout *L, size_t B, size_t N) {
  uint64_t most = 0;
  for (int v = 0; v < 2; v++) {
    const cc_tower_dims *d = v ? &L->vis : &L->txt;
    uint64_t BH = (uint64_t)B * d->H, T = (uint64_t)d->T, D = (uint64_t)d->C / d->H, TP = (T + 15) / 16 * 16;
    uint64_t bhtd = BH * T * D, bhtt = BH * T * T;
    uint64_t slots = (BH * D * TP > bhtd ? BH * D * TP : bhtd) + (bhtt > 3 * bhtd ? bhtt : 3 * bhtd) + bhtt;
    if (slots > most) most = slots;
  }
  most += 2 * (uint64_t)N * L->cfg.embed_dim;
  return most * 4 + most; /* floats, plus the runtime's 25% growth headroom */
}

static void take(cc_mem_plan *p, const char *what, uint64_t bytes) {
  p->total += bytes;
  if (bytes > p->biggest_bytes) p->biggest = what, p->biggest_bytes = bytes;
}

clipcl_status cc_plan_training(const cc_layout *L, int micro, int accum, uint64_t max_alloc, cc_mem_plan *p) {
  memset(p, 0, sizeof *p);
  size_t n = L->total, N = (size_t)micro * (size_t)accum, E = (size_t)L->cfg.embed_dim;
  uint64_t big = 0;
  clipcl_status s = plan_flat("parameters", n, max_alloc, &p->params, &big);
  if (!s) s = plan_flat("gradients", n, max_alloc, &p->grads, &big);
  if (!s) {
    /* as cc_trainer_create: moments, two scalars, the accumulated features */
    cc_arena a;
    cc_view v;
    cc_arena_init_count(&a, "optimiser state", 2 * n + 4 * N * E + 32, max_alloc);
    s = cc_arena_alloc(&a, n, &v);
    if (!s) s = cc_arena_alloc(&a, n, &v);
    if (!s) s = cc_arena_alloc(&a, 1, &v);
    if (!s) s = cc_arena_alloc(&a, 1, &v);
    for (int k = 0; k < 4 && !s && accum > 1; k++) s = cc_arena_alloc(&a, N * E, &v);
    p->optim = arena_total(&a, &big) + n; /* + the weight-decay mask, a byte each */
  }
  for (int vision = 1; vision >= 0 && !s; vision--) {
    cc_tower_ws w;
    s = cc_tower_ws_build(&w, L, NULL, max_alloc, vision, micro, 1);
    *(vision ? &p->vision : &p->text) = arena_total(&w.ar, &big);
    cc_tower_ws_free(&w);
  }
  if (!s) {
    cc_head_ws h;
    s = cc_head_ws_build(&h, L, NULL, max_alloc, (int)N);
    p->head = arena_total(&h.ar, &big);
    cc_arena_free(&h.ar);
  }
  p->scratch = scratch_bound(L, (size_t)micro, N);
  take(p, "the parameters", p->params);
  take(p, "the gradients", p->grads);
  take(p, "the optimiser state", p->optim);
  take(p, "the vision activations", p->vision);
  take(p, "the text activations", p->text);
  take(p, "the contrastive head", p->head);
  take(p, "attention scratch", p->scratch);
  p->largest_buffer = big;
  return s;
}

/* 1 when micro-batches of `micro` fit in `budget` bytes. */
static int fits(const cc_layout *L, int micro, int accum, uint64_t max_alloc, uint64_t budget) {
  cc_mem_plan p;
  int ok = cc_plan_training(L, micro, accum, max_alloc, &p) == CLIPCL_OK && p.total <= budget;
  cc_clear_error();
  return ok;
}

clipcl_status cc_check_training_fits(cc_rt *rt, const cc_layout *L, int micro, int accum) {
  const clipcl_device_info *d = cc_info(rt);
  uint64_t budget = d->global_mem, host_total = 0, host_avail = 0;
  const char *whose = "the device";
  cc_mem_plan p;
  clipcl_status s = cc_plan_training(L, micro, accum, d->max_alloc, &p);
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
    if (cc_plan_training(L, micro, accum, (uint64_t)1 << 62, &p) == CLIPCL_OK) {
      size_t k = strlen(why);
      snprintf(why + k, sizeof why - k, "; in all training needs %s, and %s has %s%s",
               cc_fmt_bytes(need, sizeof need, p.total), whose, cc_fmt_bytes(have, sizeof have, budget),
               budget != d->global_mem ? " available" : "");
    }
  }
  int lo = 0, hi = micro; /* fits(lo) (0: nothing does), !fits(hi) */
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (fits(L, mid, accum, d->max_alloc, budget)) lo = mid;
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

/* test_memory_plan.c: the training memory plan (src/train/memory.c) is the
 * allocation itself: for two batch shapes the planned bytes equal what
 * cc_trainer_create then allocates, arena by arena. A batch that does not
 * fit is refused with one line naming what does not fit, the device's
 * memory and the largest batch that fits, which itself passes the check
 * (and a batch a tenth larger does not); a model too large for any batch
 * says so; accumulation is reported per micro-batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "train/memory.h"
#include "train/trainer.h"

static uint64_t actual(const cc_model *m, const cc_trainer *t) {
  return cc_arena_bytes(&m->par, NULL) + cc_arena_bytes(&m->gar, NULL) + cc_arena_bytes(&m->vis.ar, NULL) +
         cc_arena_bytes(&m->txt.ar, NULL) + cc_arena_bytes(&t->loss->ar, NULL) + cc_arena_bytes(&t->oar, NULL) +
         m->L.total; /* the weight-decay mask, a byte a parameter */
}

static void plan_equals_allocation(cc_rt *rt, int micro, int accum) {
  clipcl_config cfg;
  clipcl_config_get("clipcl-test", &cfg);
  cc_model *m = NULL;
  cc_trainer *t = NULL;
  cc_train_hparams hp = {1e-3f, 0.9f, 0.98f, 1e-6f, 0.1f, 0, 10, 0, micro, accum, 0};
  clipcl_status s = cc_model_create(rt, &cfg, &m);
  if (!s) s = cc_trainer_create(m, &hp, &t);
  cc_mem_plan p;
  if (!s) s = cc_plan_training(&m->L, micro, accum, NULL, cc_info(rt)->max_alloc, &p);
  char name[96];
  snprintf(name, sizeof name, "plan == allocation, micro %d x accum %d", micro, accum);
  uint64_t a = s ? 0 : actual(m, t);
  th_assert(name, s == CLIPCL_OK && p.total - p.scratch - p.eval_loss == a, "status %d, planned %llu (+%llu scratch), allocated %llu: %s",
            s, (unsigned long long)(p.total - p.scratch - p.eval_loss), (unsigned long long)p.scratch, (unsigned long long)a,
            clipcl_last_error());
  cc_trainer_free(t);
  clipcl_model_free(m);
}

static int largest_in(const char *msg) {
  const char *k = strstr(msg, "the largest batch that fits is ");
  return k ? atoi(k + strlen("the largest batch that fits is ")) : -1;
}

int main(void) {
  cc_rt *rt = th_open();
  plan_equals_allocation(rt, 3, 1);
  plan_equals_allocation(rt, 2, 3);

  clipcl_config cfg;
  cc_layout L;
  clipcl_config_get("ViT-B-32", &cfg);
  if (cc_layout_build(&cfg, &L) != CLIPCL_OK) return 1;
  clipcl_status s = cc_check_training_fits(rt, &L, 100000, 1, NULL);
  char msg[2048];
  snprintf(msg, sizeof msg, "%s", clipcl_last_error());
  int k = largest_in(msg);
  th_assert("ViT-B-32, batch 100000: refused in one line", s == CLIPCL_ERR_NOMEM && !strchr(msg, '\n') &&
            strstr(msg, "a batch of 100000 does not fit on") && strstr(msg, cc_info(rt)->name) &&
            strstr(msg, "GiB") && !strstr(msg, "CL_"), "%s", msg);
  th_assert("... naming the largest batch that fits", k >= 1 && k < 100000, "%s", msg);
  if (k >= 1) {
    /* the answer holds (the margins absorb other processes' memory moving) */
    th_assert("the largest batch, less 10%, passes the check", cc_check_training_fits(rt, &L, k - k / 10, 1, NULL) == CLIPCL_OK,
              "%s", clipcl_last_error());
    th_assert("10% more does not", cc_check_training_fits(rt, &L, k + k / 10 + 1, 1, NULL) == CLIPCL_ERR_NOMEM, "k %d", k);
  }
  s = cc_check_training_fits(rt, &L, 100000, 4, NULL);
  th_assert("with accumulation the answer is per micro-batch",
            s == CLIPCL_ERR_NOMEM && strstr(clipcl_last_error(), "per micro-batch (with the same --accum-freq)"), "%s",
            clipcl_last_error());
  cc_layout_free(&L);

  cfg.vision.width = 16384;
  cfg.vision.head_width = 64;
  cfg.vision.layers = 64;
  if (cc_layout_build(&cfg, &L) != CLIPCL_OK) return 1;
  s = cc_check_training_fits(rt, &L, 1, 1, NULL);
  th_assert("a model larger than the device: no batch fits", s == CLIPCL_ERR_NOMEM &&
            strstr(clipcl_last_error(), "does not fit at any batch size"), "%s", clipcl_last_error());
  cc_layout_free(&L);
  return th_finish(rt);
}

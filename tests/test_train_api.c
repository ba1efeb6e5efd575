/* test_train_api.c: clipcl_train() used as a library, without the command,
 * on a small generated CSV data set (clipcl-micro, batch 8):
 * - the events: notes, one STEP per step, no rate and no ETA during the two
 *   warm-up steps and both known after them, DONE naming the model file;
 *   the result counts steps and samples; metrics.jsonl has a line per step;
 * - a non-zero return from the callback stops the run after that step with
 *   a checkpoint, and resume "latest" continues to the same losses (1e-5) as
 *   the uninterrupted run, at the same sample position;
 * - bad options are refused with a message naming what is missing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data_testutil.h"
#include "harness.h"

enum { STEPS = 6, MAXEV = 64 };

typedef struct {
  int nsteps, nnotes, ndone, stop_at;
  long step[MAXEV];
  double loss[MAXEV], sps[MAXEV], eta[MAXEV];
  int logged[MAXEV];
  char done_text[4096], notes[4096];
} recorder;

static int on_event(void *user, const clipcl_train_event *e) {
  recorder *r = user;
  switch (e->kind) {
    case CLIPCL_TRAIN_EV_STEP:
      if (r->nsteps < MAXEV) {
        r->step[r->nsteps] = e->step;
        r->loss[r->nsteps] = e->loss;
        r->sps[r->nsteps] = e->samples_per_s;
        r->eta[r->nsteps] = e->eta_s;
        r->logged[r->nsteps] = e->logged;
      }
      r->nsteps++;
      return r->stop_at > 0 && e->step == r->stop_at;
    case CLIPCL_TRAIN_EV_NOTE:
      r->nnotes++;
      strncat(r->notes, e->text, sizeof r->notes - strlen(r->notes) - 2);
      strcat(r->notes, "\n");
      return 0;
    case CLIPCL_TRAIN_EV_DONE:
      r->ndone++;
      snprintf(r->done_text, sizeof r->done_text, "%s", e->text);
      return 0;
    default:
      return 0;
  }
}

static void options(clipcl_train_options *o, const char *csv, const char *out, recorder *rec) {
  clipcl_train_options_init(o);
  o->model_config = "clipcl-micro";
  o->train_data = csv;
  o->out_dir = out;
  o->batch_size = 8;
  o->steps = STEPS;
  o->warmup = 2;
  o->lr = 1e-3;
  o->seed = 3;
  o->log_every = 1;
  o->workers = 2;
  o->report = 0;
  o->save_every = 100;
  o->on_event = on_event;
  o->user = rec;
}

int main(void) {
  cc_rt *rt = th_open(); /* for th_finish's summary; clipcl_train opens its own device */
  char dir[4096], csv[4200], out1[4200], out2[4200], path[4400];
  dt_tmpdir(dir, sizeof dir);
  /* 40 images, captions from a small vocabulary */
  const char *words[] = {"red", "blue", "green", "circle", "square", "star", "small", "large"};
  snprintf(csv, sizeof csv, "%s/train.csv", dir);
  FILE *f = fopen(csv, "w");
  if (!f) dt_die(csv);
  fprintf(f, "filepath,title\n");
  for (int i = 0; i < 40; i++) {
    snprintf(path, sizeof path, "%s/img%02d.png", dir, i);
    dt_png(path, 36 + i % 5, 32 + i % 3, (uint32_t)i);
    fprintf(f, "img%02d.png,a %s %s %s\n", i, words[i % 3], words[3 + i % 3], words[6 + i % 2]);
  }
  fclose(f);

  /* one uninterrupted run */
  recorder a;
  memset(&a, 0, sizeof a);
  clipcl_train_options o;
  snprintf(out1, sizeof out1, "%s/run1", dir);
  options(&o, csv, out1, &a);
  clipcl_train_result res;
  TH_OK(clipcl_train(&o, &res));
  th_assert("one STEP event per step, in order", a.nsteps == STEPS && a.step[0] == 1 && a.step[STEPS - 1] == STEPS,
            "%d events, first %ld last %ld", a.nsteps, a.step[0], a.step[a.nsteps > 0 ? a.nsteps - 1 : 0]);
  int ok_warm = 1;
  for (int i = 0; i < STEPS && i < a.nsteps; i++) {
    if (!a.logged[i]) ok_warm = 0;
    if (i < 2 && (a.sps[i] != -1 || a.eta[i] != -1)) ok_warm = 0;
    if (i >= 2 && !(a.sps[i] > 0 && a.eta[i] >= 0)) ok_warm = 0;
  }
  th_assert("no rate or ETA in the two warm-up steps, both after", ok_warm, "sps %g %g %g eta %g %g %g", a.sps[0],
            a.sps[1], a.sps[2], a.eta[0], a.eta[1], a.eta[2]);
  th_assert("the ETA of the last step is 0", a.nsteps == STEPS && a.eta[STEPS - 1] == 0, "%g", a.eta[STEPS - 1]);
  th_assert("notes say what is trained", a.nnotes >= 1 && strstr(a.notes, "training clipcl-micro"), "%s", a.notes);
  snprintf(path, sizeof path, "%s/model.safetensors", out1);
  th_assert("DONE names the model file, which exists", a.ndone == 1 && !strcmp(a.done_text, path) &&
            access(path, F_OK) == 0, "%d %s", a.ndone, a.done_text);
  th_assert("result counts steps and samples", res.steps_done == STEPS && res.final_step == STEPS &&
            !res.interrupted && res.samples_seen == STEPS * 8 && res.bad_samples == 0 && res.world_size == 1,
            "%ld %ld %d %lld %lld", res.steps_done, res.final_step, res.interrupted, (long long)res.samples_seen,
            (long long)res.bad_samples);
  snprintf(path, sizeof path, "%s/metrics.jsonl", out1);
  size_t len;
  char *metrics = (char *)dt_read(path, &len);
  int lines = 0;
  for (size_t i = 0; i < len; i++) lines += metrics[i] == '\n';
  free(metrics);
  th_assert("metrics.jsonl has a line per step", lines == STEPS, "%d lines", lines);

  /* stopped by the callback after step 3, then resumed */
  recorder b;
  memset(&b, 0, sizeof b);
  b.stop_at = 3;
  snprintf(out2, sizeof out2, "%s/run2", dir);
  options(&o, csv, out2, &b);
  TH_OK(clipcl_train(&o, &res));
  snprintf(path, sizeof path, "%s/checkpoints/step_3.safetensors", out2);
  th_assert("a stop request ends the run after that step with a checkpoint",
            res.interrupted && res.final_step == 3 && b.nsteps == 3 && access(path, F_OK) == 0, "%d %ld %d",
            res.interrupted, res.final_step, b.nsteps);
  b.stop_at = 0;
  o.resume = "latest";
  TH_OK(clipcl_train(&o, &res));
  th_assert("resume continues to the end", res.final_step == STEPS && res.steps_done == STEPS - 3 && b.nsteps == STEPS,
            "%ld %ld %d", res.final_step, res.steps_done, b.nsteps);
  th_assert("resume note names the checkpoint and the sample position",
            strstr(b.notes, "step_3.safetensors at step 3 (epoch 0, sample 24)") != NULL, "%s", b.notes);
  float la[STEPS], lb[STEPS];
  for (int i = 0; i < STEPS; i++) {
    la[i] = (float)a.loss[i];
    lb[i] = (float)b.loss[i];
  }
  th_close_f("losses of 3 + resumed 3 steps == 6 steps", lb, la, STEPS, 0, 1e-5);

  /* bad options */
  options(&o, csv, out2, &b);
  o.batch_size = 0;
  clipcl_status s = clipcl_train(&o, &res);
  th_assert("missing batch size refused", s == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "batch_size"), "%d %s", s,
            clipcl_last_error());
  options(&o, csv, out2, &b);
  o.steps = 0;
  s = clipcl_train(&o, &res);
  th_assert("missing length refused", s == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "epochs or steps"), "%s",
            clipcl_last_error());
  options(&o, csv, out2, &b);
  o.zero = 2;
  s = clipcl_train(&o, &res);
  th_assert("ZeRO stage 2 refused", s == CLIPCL_ERR_ARG, "%d %s", s, clipcl_last_error());

  dt_rm_rf(dir);
  return th_finish(rt);
}

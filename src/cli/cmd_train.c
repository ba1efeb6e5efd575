/* cmd_train.c: `clipcl train`: CLIP training on image-caption pairs with
 * open_clip's options and conventions: the data loop (threaded loader), the
 * progress line, metrics.jsonl, checkpoints and resume, validation loss,
 * zero-shot evaluation during training, and report.html at the end. The
 * optimiser step itself is src/train/trainer.c. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/train_report.h"
#include "io/atomic.h"
#include "model/model.h"
#include "train/trainer.h"

typedef struct {
  const char *config, *train_data, *val_data, *out, *resume, *init, *device;
  const char *zs_data, *zs_classnames, *zs_templates;
  const char *img_key, *caption_key, *separator;
  long batch, epochs, steps, warmup, accum, seed, workers, save_every, keep, log_every;
  double lr, wd, beta1, beta2, eps, grad_clip, max_bad, zs_frequency;
  int lock_image, report;
} train_args;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int parse_double(const char *opt, const char *v, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || end == v || *end || !(x >= lo && x <= hi)) {
    fprintf(stderr, "clipcl train: %s %s: expected a number from %g to %g\n", opt, v, lo, hi);
    return -1;
  }
  *out = x;
  return 0;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: clipcl train --model-config NAME|FILE --train-data SPEC --batch-size N (--epochs E | --steps S)\n"
          "                    --out DIR [options]\n"
          "data:   --train-data SPEC, --val-data SPEC (CSV/TSV manifest, WebDataset shards\n"
          "        \"dir/{000000..000127}.tar\", or an image-folder tree), --csv-img-key filepath,\n"
          "        --csv-caption-key title, --csv-separator C, --workers N, --max-bad-fraction 0.01\n"
          "optim:  --lr 5e-4 --wd 0.2 --beta1 0.9 --beta2 0.98 --eps 1e-6 --warmup 10000\n"
          "        --grad-clip-norm X --accum-freq K --lock-image --seed S\n"
          "model:  --init M.safetensors (start from weights), --resume latest|PATH\n"
          "output: --save-every STEPS (default: each epoch), --keep 3 (checkpoints kept),\n"
          "        --log-every 10, --no-report\n"
          "eval:   --zeroshot-data DIR --zeroshot-classnames FILE [--zeroshot-templates openai|simple|FILE]\n"
          "        --zeroshot-frequency EPOCHS (default 1)\n"
          "Writes DIR/checkpoints/step_N.safetensors (+ .optim), DIR/metrics.jsonl, DIR/model.safetensors,\n"
          "DIR/report.html.\n");
}

static int parse(int argc, char **argv, train_args *a) {
  memset(a, 0, sizeof *a);
  a->lr = 5e-4;
  a->wd = 0.2;
  a->beta1 = 0.9;
  a->beta2 = 0.98;
  a->eps = 1e-6;
  a->warmup = 10000;
  a->accum = 1;
  a->keep = 3;
  a->log_every = 10;
  a->max_bad = 0.01;
  a->zs_frequency = 1;
  a->report = 1;
  a->epochs = -1;
  a->steps = -1;
  a->save_every = -1;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = NULL;
#define STR(flag, field) \
  if (!strcmp(o, flag)) { \
    if (!(a->field = cli_value("train", argc, argv, &i))) return 2; \
    continue; \
  }
#define INT(flag, field, lo, hi) \
  if (!strcmp(o, flag)) { \
    if (!(v = cli_value("train", argc, argv, &i)) || cli_int("train", flag, v, lo, hi, &a->field)) return 2; \
    continue; \
  }
#define DBL(flag, field, lo, hi) \
  if (!strcmp(o, flag)) { \
    if (!(v = cli_value("train", argc, argv, &i)) || parse_double(flag, v, lo, hi, &a->field)) return 2; \
    continue; \
  }
    STR("--model-config", config) STR("--train-data", train_data) STR("--val-data", val_data) STR("--out", out)
    STR("--resume", resume) STR("--init", init) STR("--device", device) STR("--zeroshot-data", zs_data)
    STR("--zeroshot-classnames", zs_classnames) STR("--zeroshot-templates", zs_templates)
    STR("--csv-img-key", img_key) STR("--csv-caption-key", caption_key) STR("--csv-separator", separator)
    INT("--batch-size", batch, 1, 1 << 20) INT("--epochs", epochs, 1, 1000000) INT("--steps", steps, 1, 1L << 40)
    INT("--warmup", warmup, 0, 1L << 40) INT("--accum-freq", accum, 1, 4096) INT("--seed", seed, 0, 0x7fffffffffffffffL)
    INT("--workers", workers, 0, 1024) INT("--save-every", save_every, 1, 1L << 40) INT("--keep", keep, 1, 1000000)
    INT("--log-every", log_every, 1, 1L << 40)
    DBL("--lr", lr, 0, 10) DBL("--wd", wd, 0, 10) DBL("--beta1", beta1, 0, 0.999999) DBL("--beta2", beta2, 0, 0.999999)
    DBL("--eps", eps, 1e-30, 1) DBL("--grad-clip-norm", grad_clip, 0, 1e30) DBL("--max-bad-fraction", max_bad, 0, 1)
    DBL("--zeroshot-frequency", zs_frequency, 0, 1e9)
#undef STR
#undef INT
#undef DBL
    if (!strcmp(o, "--lock-image")) {
      a->lock_image = 1;
    } else if (!strcmp(o, "--no-report")) {
      a->report = 0;
    } else if (!strcmp(o, "--help")) {
      usage(stdout);
      return 1;
    } else {
      fprintf(stderr, "clipcl train: unknown option '%s' (see clipcl train --help)\n", o);
      return 2;
    }
  }
  const char *miss = !a->config ? "--model-config" : !a->train_data ? "--train-data" : !a->batch ? "--batch-size"
                     : !a->out ? "--out" : (a->epochs < 0 && a->steps < 0) ? "--epochs or --steps" : NULL;
  if (miss) {
    fprintf(stderr, "clipcl train: %s is required (see clipcl train --help)\n", miss);
    return 2;
  }
  if (a->epochs > 0 && a->steps > 0) {
    fprintf(stderr, "clipcl train: give --epochs or --steps, not both\n");
    return 2;
  }
  if (!a->zs_data && (a->zs_classnames || a->zs_templates)) {
    fprintf(stderr, "clipcl train: --zeroshot-classnames needs --zeroshot-data\n");
    return 2;
  }
  return 0;
}

/* ---- bad samples are printed as they come ---------------------------------------- */
static void on_bad(void *user, const clipcl_bad_sample *b) {
  FILE *log = user;
  fprintf(stderr, "clipcl train: skipped %s: %s\n", b->source, b->reason);
  if (log) fprintf(log, "%s\t%s\n", b->source, b->reason);
}

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

static int open_data(const train_args *a, const char *spec, clipcl_dataset **ds) {
  clipcl_dataset_options o;
  clipcl_dataset_options_init(&o);
  o.img_key = a->img_key;
  o.caption_key = a->caption_key;
  o.separator = a->separator;
  if (clipcl_dataset_open(spec, &o, ds) != CLIPCL_OK) return cli_error("train");
  if (!clipcl_dataset_has_captions(*ds)) {
    fprintf(stderr, "clipcl train: %s: training data needs captions (an image-folder tree has none)\n", spec);
    clipcl_dataset_free(*ds);
    return 1;
  }
  return 0;
}

/* The metrics line of one step, also kept for the report. */
static void log_step(FILE *mf, long step, long total, int64_t epoch, double loss, double lr, double scale,
                     double sps, int64_t bad, double gnorm) {
  fprintf(mf,
          "{\"type\": \"train\", \"step\": %ld, \"total_steps\": %ld, \"epoch\": %lld, \"loss\": %.6f, "
          "\"lr\": %.6g, \"logit_scale\": %.5f, \"samples_per_s\": %.2f, \"bad_samples\": %lld",
          step, total, (long long)epoch, loss, lr, scale, sps, (long long)bad);
  if (gnorm >= 0) fprintf(mf, ", \"grad_norm\": %.5g", gnorm);
  fprintf(mf, "}\n");
  fflush(mf);
}

int cmd_train(int argc, char **argv) {
  train_args a;
  int pr = parse(argc, argv, &a);
  if (pr) return pr == 1 ? 0 : pr;
  clipcl_config cfg;
  if (clipcl_config_get(a.config, &cfg) != CLIPCL_OK) return cli_error("train");
  char path[4096], ckdir[4096];
  mkdir(a.out, 0755);
  struct stat st;
  if (stat(a.out, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "clipcl train: %s: cannot create the output directory\n", a.out);
    return 1;
  }
  snprintf(ckdir, sizeof ckdir, "%s/checkpoints", a.out);

  int rc = 1;
  clipcl_dataset *ds = NULL, *vds = NULL;
  clipcl_loader *ld = NULL, *vld = NULL;
  clipcl_tokenizer *tok = NULL;
  clipcl_device *dev = NULL;
  clipcl_model *m = NULL;
  cc_trainer *t = NULL;
  float *pix = NULL, *vpix = NULL;
  int32_t *ids = NULL, *vids = NULL;
  FILE *mf = NULL, *badlog = NULL;
  cc_report rep;
  cc_report_init(&rep);
  char *state = NULL;

  if (open_data(&a, a.train_data, &ds)) goto done;
  if (a.val_data && open_data(&a, a.val_data, &vds)) goto done;
  if (clipcl_tokenizer_create(&tok) != CLIPCL_OK) {
    cli_error("train");
    goto done;
  }
  long N = a.batch * a.accum;
  int64_t dsize = clipcl_dataset_size(ds);
  long steps_per_epoch = dsize > 0 ? (long)(dsize / N) : -1;
  long total = a.steps;
  if (a.epochs > 0) {
    if (steps_per_epoch <= 0) {
      fprintf(stderr,
              steps_per_epoch == 0 ? "clipcl train: %s has fewer samples (%lld) than one step needs (%ld)\n"
                                   : "clipcl train: %s: size unknown (no sizes.json): give --steps instead of --epochs\n",
              a.train_data, (long long)dsize, N);
      goto done;
    }
    total = steps_per_epoch * a.epochs;
  }
  if (a.warmup >= total && a.warmup > 0) {
    fprintf(stderr, "clipcl train: note: --warmup %ld >= %ld steps: the whole run warms up\n", a.warmup, total);
  }

  if (!(dev = cli_open_device("train", a.device))) goto done;
  if (a.init) {
    if (!(m = cli_load_model("train", dev, a.init, a.config))) goto done;
  } else {
    if (clipcl_model_create(dev, &cfg, &m) != CLIPCL_OK || clipcl_model_init(m, (uint64_t)a.seed) != CLIPCL_OK) {
      cli_error("train");
      goto done;
    }
  }
  snprintf(m->tokenizer, sizeof m->tokenizer, "%s", clipcl_tokenizer_identity(tok));
  cc_train_hparams hp = {(float)a.lr, (float)a.beta1, (float)a.beta2, (float)a.eps, (float)a.wd, a.warmup, total,
                         (float)a.grad_clip, (int)a.batch, (int)a.accum, a.lock_image};
  if (cc_trainer_create(m, &hp, &t) != CLIPCL_OK) {
    cli_error("train");
    goto done;
  }

  snprintf(path, sizeof path, "%s/bad_samples.tsv", a.out);
  badlog = fopen(path, "a");
  clipcl_loader_options lo;
  clipcl_loader_options_init(&lo);
  lo.batch_size = (int)N;
  lo.image_size = cfg.vision.image_size;
  lo.context_length = cfg.text.context_length;
  lo.tokenizer = tok;
  lo.workers = (int)a.workers;
  lo.seed = (uint64_t)a.seed;
  lo.max_bad_fraction = a.max_bad;
  lo.on_bad = on_bad;
  lo.user = badlog;
  if (clipcl_loader_create(ds, &lo, &ld) != CLIPCL_OK) {
    cli_error("train");
    goto done;
  }
  if (vds) {
    clipcl_loader_options vo = lo;
    vo.training = 0;
    vo.augment = 0;
    if (clipcl_loader_create(vds, &vo, &vld) != CLIPCL_OK) {
      cli_error("train");
      goto done;
    }
  }
  size_t px = (size_t)3 * cfg.vision.image_size * cfg.vision.image_size, T = (size_t)cfg.text.context_length;
  pix = malloc((size_t)N * px * sizeof *pix);
  ids = malloc((size_t)N * T * sizeof *ids);
  if (vds) {
    vpix = malloc((size_t)N * px * sizeof *vpix);
    vids = malloc((size_t)N * T * sizeof *vids);
  }
  if (!pix || !ids || (vds && (!vpix || !vids))) {
    fprintf(stderr, "clipcl train: out of memory for a batch of %ld\n", N);
    goto done;
  }

  /* resume */
  if (a.resume) {
    long rstep = 0;
    if (!strcmp(a.resume, "latest")) {
      if (cc_checkpoint_latest(ckdir, &rstep, path, sizeof path) != CLIPCL_OK) {
        cli_error("train");
        goto done;
      }
    } else {
      snprintf(path, sizeof path, "%s", a.resume);
    }
    if (cc_checkpoint_load(t, path, &state) != CLIPCL_OK) {
      cli_error("train");
      goto done;
    }
    clipcl_loader_pos pos = {0, 0, 0, 0};
    long long e = 0, ix = 0, seen = 0, bad = 0;
    if (state && sscanf(state, "{\"epoch\": %lld, \"index\": %lld, \"samples_seen\": %lld, \"bad_samples\": %lld",
                        &e, &ix, &seen, &bad) == 4) {
      pos = (clipcl_loader_pos){e, ix, seen, bad};
      if (clipcl_loader_seek(ld, &pos) != CLIPCL_OK) {
        cli_error("train");
        goto done;
      }
    } else {
      fprintf(stderr, "clipcl train: %s: no loader position saved; data restarts from the beginning\n", path);
    }
    printf("resumed from %s at step %ld (epoch %lld, sample %lld)\n", path, t->step, e, ix);
    cc_report_load_metrics(&rep, a.out, t->step);
  }

  snprintf(path, sizeof path, "%s/metrics.jsonl", a.out);
  mf = fopen(path, a.resume ? "a" : "w");
  if (!mf) {
    fprintf(stderr, "clipcl train: %s: cannot write\n", path);
    goto done;
  }
  printf("training %s (%llu parameters) on %s: %ld steps of %ld samples (batch %ld x accum %ld)%s\n", cfg.name,
         (unsigned long long)clipcl_config_num_params(&cfg), a.train_data, total, N, a.batch, a.accum,
         steps_per_epoch > 0 ? "" : ", data size unknown");
  if (steps_per_epoch > 0) printf("%ld steps per epoch, %lld samples\n", steps_per_epoch, (long long)dsize);

  signal(SIGINT, on_sigint);
  int tty = isatty(1);
  double t_start = now(), t_last = t_start;
  long step_at_start = t->step, steps_since = 0;
  int64_t epoch = 0;
  long save_every = a.save_every > 0 ? a.save_every : (steps_per_epoch > 0 ? steps_per_epoch : 1000);
  while (t->step < total && !interrupted) {
    clipcl_batch b = {pix, ids, NULL, NULL, 0, 0};
    if (clipcl_loader_next(ld, &b) != CLIPCL_OK) {
      cli_error("train");
      goto done;
    }
    if (b.n == 0) continue; /* epoch boundary */
    epoch = b.epoch;
    float loss, gnorm;
    clipcl_status s = cc_trainer_step(t, pix, ids, &loss, &gnorm);
    if (s == CLIPCL_ERR_NUMERIC) {
      fprintf(stderr, "clipcl train: %s; stopping, the last good checkpoint in %s is kept\n", clipcl_last_error(),
              ckdir);
      goto done;
    }
    if (s) {
      cli_error("train");
      goto done;
    }
    steps_since++;
    long step = t->step;
    int last = step == total;
    int epoch_end = steps_per_epoch > 0 && step % steps_per_epoch == 0;
    cc_report_add_loss(&rep, step, loss);
    if (step % a.log_every == 0 || last || step == 1) {
      double tn = now(), sps = (double)steps_since * N / (tn - t_last);
      float scale;
      cc_read(m->rt, cc_P(m, m->L.logit_scale), &scale, 1);
      int64_t seen, bad;
      clipcl_loader_counters(ld, &seen, &bad);
      log_step(mf, step, total, epoch, loss, cc_lr_at(&hp, step - 1), exp(scale), sps, bad, gnorm);
      double eta = (double)(total - step) * (tn - t_start) / (double)(step - step_at_start);
      if (tty)
        printf("\rstep %ld/%ld  %.1f samples/s  loss %.4f  lr %.3g  logit scale %.2f  ETA %.0fs   ", step, total,
               sps, loss, cc_lr_at(&hp, step - 1), exp(scale), eta);
      else
        printf("step %ld/%ld  %.1f samples/s  loss %.4f  lr %.3g  logit scale %.2f  ETA %.0fs\n", step, total, sps,
               loss, cc_lr_at(&hp, step - 1), exp(scale), eta);
      fflush(stdout);
      t_last = tn;
      steps_since = 0;
    }
    if (epoch_end || last) {
      if (tty) printf("\n");
      double ep_done = steps_per_epoch > 0 ? (double)step / steps_per_epoch : (double)epoch + 1;
      if (vld && cc_report_val_loss(&rep, t, vld, vpix, vids, N, step, ep_done, mf) != 0) goto done;
      /* every --zeroshot-frequency epochs (counted in whole epochs), and at the end */
      long ep_int = steps_per_epoch > 0 ? step / steps_per_epoch : 0;
      long freq = a.zs_frequency >= 1 ? (long)a.zs_frequency : 1;
      if (a.zs_data && (last || (a.zs_frequency > 0 && epoch_end && ep_int % freq == 0)) &&
          cc_report_zeroshot(&rep, m, tok, a.zs_data, a.zs_classnames, a.zs_templates, (int)a.workers, step,
                             ep_done, mf) != 0)
        goto done;
    }
    if (step % save_every == 0 || last) {
      clipcl_loader_pos pos;
      clipcl_loader_get_pos(ld, &pos);
      char js[256];
      snprintf(js, sizeof js, "{\"epoch\": %lld, \"index\": %lld, \"samples_seen\": %lld, \"bad_samples\": %lld}",
               (long long)pos.epoch, (long long)pos.index, (long long)pos.samples_seen, (long long)pos.bad_samples);
      if (cc_checkpoint_save(t, ckdir, js) != CLIPCL_OK) {
        cli_error("train");
        goto done;
      }
      cc_checkpoint_prune(ckdir, (int)a.keep);
    }
  }
  if (interrupted) {
    printf("\ninterrupted at step %ld; resume with --resume latest\n", t->step);
    rc = 130;
    goto done;
  }
  if (tty) printf("\n");
  snprintf(path, sizeof path, "%s/model.safetensors", a.out);
  if (clipcl_model_save(m, path, 0) != CLIPCL_OK) {
    cli_error("train");
    goto done;
  }
  int64_t seen, bad;
  clipcl_loader_counters(ld, &seen, &bad);
  printf("done: %ld steps in %.1f s, %lld samples seen, %lld bad; model in %s\n", t->step - step_at_start,
         now() - t_start, (long long)seen, (long long)bad, path);
  rep.config_json = clipcl_config_to_json(&cfg);
  if (a.report && cc_report_write(&rep, a.out, cfg.name) == 0) printf("report: %s/report.html\n", a.out);
  rc = 0;
done:
  free(state);
  cc_report_free(&rep);
  if (mf) fclose(mf);
  if (badlog) fclose(badlog);
  free(pix);
  free(ids);
  free(vpix);
  free(vids);
  clipcl_loader_free(ld);
  clipcl_loader_free(vld);
  cc_trainer_free(t);
  clipcl_model_free(m);
  if (dev) clipcl_device_profile_report(dev, stderr);
  clipcl_device_free(dev);
  clipcl_tokenizer_free(tok);
  clipcl_dataset_free(ds);
  clipcl_dataset_free(vds);
  return rc;
}

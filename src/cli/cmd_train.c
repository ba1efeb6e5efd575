/* cmd_train.c: `clipcl train`: parses open_clip-style flags into
 * clipcl_train_options and prints the run's events (progress line, notes,
 * validation and zero-shot results, skipped samples). The training itself,
 * ranks included, is the library's (src/train/). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

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
          "loss:   --siglip (sigmoid loss with a learnt logit bias; default: CLIP's softmax loss)\n"
          "memory: --grad-checkpointing (recompute each block in backward), --zero 1 (shard AdamW\n"
          "        state over the ranks)\n"
          "model:  --init M.safetensors (start from weights), --resume latest|PATH\n"
          "device: --device N|P:D|NAME, or a comma list giving local rank i item i mod count\n"
          "output: --save-every STEPS (default: each epoch), --keep 3 (checkpoints kept),\n"
          "        --log-every 10, --no-report\n"
          "eval:   --zeroshot-data DIR --zeroshot-classnames FILE [--zeroshot-templates openai|simple|FILE]\n"
          "        --zeroshot-frequency EPOCHS (default 1)\n"
          "Several processes: mpirun -np R clipcl train ... (--batch-size is per rank; the loss is the\n"
          "global batch's). Writes DIR/checkpoints/step_N.safetensors (+ .optim), DIR/metrics.jsonl,\n"
          "DIR/model.safetensors, DIR/report.html (rank 0).\n");
}

static int parse(int argc, char **argv, clipcl_train_options *a) {
  clipcl_train_options_init(a);
  long batch = 0, epochs = -1, steps = -1, warmup = a->warmup, accum = 1, seed = 0, workers = 0, save_every = -1,
       keep = a->keep, log_every = a->log_every, zero = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = NULL;
#define STR(flag, field) \
  if (!strcmp(o, flag)) { \
    if (!(a->field = cli_value("train", argc, argv, &i))) return 2; \
    continue; \
  }
#define INT(flag, var, lo, hi) \
  if (!strcmp(o, flag)) { \
    if (!(v = cli_value("train", argc, argv, &i)) || cli_int("train", flag, v, lo, hi, &var)) return 2; \
    continue; \
  }
#define DBL(flag, field, lo, hi) \
  if (!strcmp(o, flag)) { \
    if (!(v = cli_value("train", argc, argv, &i)) || parse_double(flag, v, lo, hi, &a->field)) return 2; \
    continue; \
  }
    STR("--model-config", model_config) STR("--train-data", train_data) STR("--val-data", val_data)
    STR("--out", out_dir) STR("--resume", resume) STR("--init", init) STR("--device", device)
    STR("--zeroshot-data", zeroshot_data) STR("--zeroshot-classnames", zeroshot_classnames)
    STR("--zeroshot-templates", zeroshot_templates) STR("--csv-img-key", csv_img_key)
    STR("--csv-caption-key", csv_caption_key) STR("--csv-separator", csv_separator)
    INT("--batch-size", batch, 1, 1 << 20) INT("--epochs", epochs, 1, 1000000) INT("--steps", steps, 1, 1L << 40)
    INT("--warmup", warmup, 0, 1L << 40) INT("--accum-freq", accum, 1, 4096) INT("--seed", seed, 0, 0x7fffffffffffffffL)
    INT("--workers", workers, 0, 1024) INT("--save-every", save_every, 1, 1L << 40) INT("--keep", keep, 1, 1000000)
    INT("--log-every", log_every, 1, 1L << 40) INT("--zero", zero, 0, 1)
    DBL("--lr", lr, 0, 10) DBL("--wd", wd, 0, 10) DBL("--beta1", beta1, 0, 0.999999) DBL("--beta2", beta2, 0, 0.999999)
    DBL("--eps", eps, 1e-30, 1) DBL("--grad-clip-norm", grad_clip_norm, 0, 1e30)
    DBL("--max-bad-fraction", max_bad_fraction, 0, 1) DBL("--zeroshot-frequency", zeroshot_frequency, 0, 1e9)
#undef STR
#undef INT
#undef DBL
    if (!strcmp(o, "--lock-image")) {
      a->lock_image = 1;
    } else if (!strcmp(o, "--siglip")) {
      a->siglip = 1;
    } else if (!strcmp(o, "--grad-checkpointing")) {
      a->grad_checkpointing = 1;
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
  const char *miss = !a->model_config ? "--model-config" : !a->train_data ? "--train-data" : !batch ? "--batch-size"
                     : !a->out_dir ? "--out" : (epochs < 0 && steps < 0) ? "--epochs or --steps" : NULL;
  if (miss) {
    fprintf(stderr, "clipcl train: %s is required (see clipcl train --help)\n", miss);
    return 2;
  }
  if (epochs > 0 && steps > 0) {
    fprintf(stderr, "clipcl train: give --epochs or --steps, not both\n");
    return 2;
  }
  if (!a->zeroshot_data && (a->zeroshot_classnames || a->zeroshot_templates)) {
    fprintf(stderr, "clipcl train: --zeroshot-classnames needs --zeroshot-data\n");
    return 2;
  }
  a->batch_size = (int)batch;
  a->epochs = epochs > 0 ? epochs : 0;
  a->steps = steps > 0 ? steps : 0;
  a->warmup = warmup;
  a->accum_freq = (int)accum;
  a->seed = (uint64_t)seed;
  a->workers = (int)workers;
  a->save_every = save_every;
  a->keep = (int)keep;
  a->log_every = log_every;
  a->zero = (int)zero;
  return 0;
}

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

typedef struct {
  int tty, line_open;
} printer;

static void end_line(printer *p) {
  if (p->line_open) printf("\n");
  p->line_open = 0;
}

static int on_event(void *user, const clipcl_train_event *e) {
  printer *p = user;
  char sps[32] = "-", eta[32] = "-";
  switch (e->kind) {
    case CLIPCL_TRAIN_EV_NOTE:
      end_line(p);
      printf("%s\n", e->text);
      break;
    case CLIPCL_TRAIN_EV_STEP:
      if (!e->logged) break;
      /* the first steps compile kernels: no rate or ETA until they are past */
      if (e->samples_per_s >= 0) snprintf(sps, sizeof sps, "%.1f", e->samples_per_s);
      if (e->eta_s >= 0) snprintf(eta, sizeof eta, "%.0fs", e->eta_s);
      printf("%sstep %ld/%ld  %s samples/s  loss %.4f  lr %.3g  logit scale %.2f", p->tty ? "\r" : "", e->step,
             e->total_steps, sps, e->loss, e->lr, e->logit_scale);
      if (e->logit_bias != 0) printf("  bias %.2f", e->logit_bias);
      printf("  ETA %s%s", eta, p->tty ? "   " : "\n");
      p->line_open = p->tty;
      break;
    case CLIPCL_TRAIN_EV_VAL:
      end_line(p);
      printf("validation loss %.4f over %lld pairs\n", e->val_loss, (long long)e->val_n);
      break;
    case CLIPCL_TRAIN_EV_ZEROSHOT:
      end_line(p);
      printf("zero-shot on %s: top-1 %.1f%%, top-5 %.1f%% (chance %.1f%%), %lld images\n", e->text, 100 * e->top1,
             100 * e->top5, 100 * e->chance, (long long)e->zs_n);
      break;
    case CLIPCL_TRAIN_EV_BAD_SAMPLE:
      if (e->world_size > 1) fprintf(stderr, "clipcl train [rank %d]: %s\n", e->rank, e->text);
      else fprintf(stderr, "clipcl train: %s\n", e->text);
      break;
    case CLIPCL_TRAIN_EV_CHECKPOINT:
    case CLIPCL_TRAIN_EV_DONE:
      break;
  }
  fflush(stdout);
  return e->kind == CLIPCL_TRAIN_EV_STEP && interrupted;
}

int cmd_train(int argc, char **argv) {
  clipcl_train_options o;
  int pr = parse(argc, argv, &o);
  if (pr) return pr == 1 ? 0 : pr;
  printer p = {isatty(1), 0};
  o.on_event = on_event;
  o.user = &p;
  o.profile = stderr;
  signal(SIGINT, on_sigint);
  clipcl_train_result res;
  clipcl_status s = clipcl_train(&o, &res);
  end_line(&p);
  clipcl_dist_info di = {0, 1, 0, 1, 0};
  clipcl_dist_get(&di);
  if (s != CLIPCL_OK) {
    /* ranks that agreed on a failure all hold its message: rank 0 says it;
     * a failure the others could not learn is said where it happened */
    if (res.aborting ? res.failed_rank == di.rank : di.rank == 0)
      fprintf(stderr, "clipcl train: %s\n", clipcl_last_error());
    return 1;
  }
  if (di.rank != 0) return res.interrupted ? 130 : 0;
  if (res.interrupted) {
    printf("interrupted at step %ld (checkpoint written); resume with --resume latest\n", res.final_step);
    return 130;
  }
  printf("done: %ld steps in %.1f s, %lld samples seen, %lld bad; model in %s/model.safetensors\n", res.steps_done,
         res.seconds, (long long)res.samples_seen, (long long)res.bad_samples, o.out_dir);
  if (o.report) printf("report: %s/report.html\n", o.out_dir);
  return 0;
}

/* cmd_probe.c: `clipcl probe`: the linear probe: frozen image features of a
 * training and a test set (cached as .npy files keyed by model identity and
 * data set fingerprint), multinomial logistic regression with the L2
 * strength chosen on a held-out split (clipcl_probe_run), test top-1. Not
 * here: the fit (src/eval/probe.c) or the cache format (features.c). */
#define _DEFAULT_SOURCE /* strdup */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

static const char usage_text[] =
    "usage: clipcl probe --model M --train DIR|CSV --test DIR|CSV [--val-fraction 0.2] [--json OUT]\n"
    "                    [--cache DIR|off] [--seed N] [--csv-img-key filepath] [--csv-label-key label]\n"
    "                    [--csv-separator C] [--max-bad-fraction 0.01] [--model-config NAME|FILE] [--batch N]\n"
    "                    [--workers N] [--device D]\n";

static void help(void) {
  printf("%s\n"
         "Linear probe (CLIP paper, appendix A.3): image features of the frozen model, multinomial logistic\n"
         "regression fitted with L-BFGS. The L2 strength lambda is swept over 1e-6..1e6 (96 log steps,\n"
         "coarse to fine) fitting on the training set minus a held-out share of each class and scoring\n"
         "that share; the best is refitted on the whole training set and scored on the test set.\n"
         "The objective is mean cross-entropy + lambda/2 ||W||^2: scikit-learn's LogisticRegression with\n"
         "C = 1/(lambda n) (n = training samples of the refit).\n"
         "  --train, --test  image folders (same class sub-folders) or CSVs with filepath and integer label\n"
         "  --cache DIR      feature cache (default $XDG_CACHE_HOME/clipcl/features, else\n"
         "                   ~/.cache/clipcl/features); 'off' disables it. Keyed by the model's identity\n"
         "                   and the data (paths, labels, file sizes and times): a second run skips encoding.\n"
         "  --seed N         seed of the train/validation split (default 0)\n"
         "  --json OUT       test_top1, lambda, sklearn_C, val_top1, n_train, n_val, n_test, dim, classes,\n"
         "                   objective, trials, model, train, test, cache_hits\n",
         usage_text);
}

/* The default cache folder, created with its parents; NULL (printed) on error. */
static char *default_cache(void) {
  const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  char base[4096];
  if (x && *x)
    snprintf(base, sizeof base, "%s", x);
  else if (home && *home)
    snprintf(base, sizeof base, "%s/.cache", home);
  else {
    fprintf(stderr, "clipcl probe: neither XDG_CACHE_HOME nor HOME is set: pass --cache DIR or --cache off\n");
    return NULL;
  }
  char path[4200];
  const char *parts[] = {"", "/clipcl", "/clipcl/features"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s%s", base, parts[i]);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
      fprintf(stderr, "clipcl probe: %s: cannot create the cache folder: %s\n", path, strerror(errno));
      return NULL;
    }
  }
  return strdup(path);
}

static int features(cli_session *s, const char *model_id, const char *what, const char *spec, clipcl_dataset *ds,
                    const char *cache, clipcl_image_features *f, int *hit) {
  if (clipcl_encode_dataset_cached(s->model, model_id, ds, cache, &s->eval, f, hit) != CLIPCL_OK) {
    cli_progress_end(s);
    fprintf(stderr, "clipcl probe: %s features: %s\n", what, clipcl_last_error());
    return 1;
  }
  cli_progress_end(s);
  if (*hit)
    printf("%s features: %zu x %d from the cache in %s (no encoding)\n", what, f->n, f->dim, cache);
  else
    printf("%s features: encoded %zu images of %s (%lld skipped)%s%s\n", what, f->n, spec, (long long)f->bad,
           cache ? ", cached in " : "", cache ? cache : "");
  return 0;
}

int cmd_probe(int argc, char **argv) {
  cli_eval_opts eo;
  cli_eval_opts_init(&eo);
  const char *train = NULL, *test = NULL, *json = NULL, *cache_opt = NULL, *v;
  clipcl_probe_opts po;
  clipcl_probe_defaults(&po);
  for (int i = 1; i < argc; i++) {
    int r = cli_eval_opt("probe", argc, argv, &i, &eo);
    if (r < 0) return 2;
    if (r > 0) continue;
    const char **dst = NULL;
    if (!strcmp(argv[i], "--train")) dst = &train;
    else if (!strcmp(argv[i], "--test")) dst = &test;
    else if (!strcmp(argv[i], "--json")) dst = &json;
    else if (!strcmp(argv[i], "--cache")) dst = &cache_opt;
    else if (!strcmp(argv[i], "--val-fraction")) {
      if (!(v = cli_value("probe", argc, argv, &i))) return 2;
      char *end;
      double x = strtod(v, &end);
      if (end == v || *end || !(x > 0 && x < 1)) {
        fprintf(stderr, "clipcl probe: --val-fraction %s: expected a number between 0 and 1\n", v);
        return 2;
      }
      po.val_fraction = x;
      continue;
    } else if (!strcmp(argv[i], "--seed")) {
      long x;
      if (!(v = cli_value("probe", argc, argv, &i)) || cli_int("probe", "--seed", v, 0, 2147483647L, &x)) return 2;
      po.seed = (uint64_t)x;
      continue;
    } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      help();
      return 0;
    } else {
      fprintf(stderr, "clipcl probe: unknown option '%s'\n", argv[i]);
      return 2;
    }
    if (!(*dst = cli_value("probe", argc, argv, &i))) return 2;
  }
  if (!eo.model || !train || !test) {
    fputs(usage_text, stderr);
    return 2;
  }
  int rc = 1;
  char *cache = NULL;
  cli_session s = {0};
  clipcl_image_features ftr = {0}, fte = {0};
  clipcl_probe_result pr = {0};
  clipcl_dataset *dtr = cli_open_labelled("probe", train, &eo), *dte = dtr ? cli_open_labelled("probe", test, &eo) : NULL;
  if (!dtr || !dte) goto done;
  int classes = clipcl_dataset_num_classes(dtr), ctest = clipcl_dataset_num_classes(dte);
  if (clipcl_dataset_kind(dtr) != clipcl_dataset_kind(dte)) {
    fprintf(stderr, "clipcl probe: %s and %s must both be image folders or both CSVs\n", train, test);
    goto done;
  }
  if (clipcl_dataset_kind(dtr) == CLIPCL_DATA_FOLDER) {
    /* labels are folder positions: the same names must give the same numbers */
    int same = classes == ctest;
    for (int c = 0; c < classes && same; c++)
      same = !strcmp(clipcl_dataset_class_name(dtr, c), clipcl_dataset_class_name(dte, c));
    if (!same) {
      fprintf(stderr, "clipcl probe: %s has %d class folders and %s %d, not the same names: labels would not match\n",
              train, classes, test, ctest);
      goto done;
    }
  } else if (ctest > classes) {
    classes = ctest;
  }
  if (classes < 2) {
    fprintf(stderr, "clipcl probe: %s: %d class; a probe needs two or more\n", train, classes);
    goto done;
  }
  if (!cache_opt)
    cache = default_cache();
  else if (strcmp(cache_opt, "off") != 0)
    cache = strdup(cache_opt);
  if (!cache && (!cache_opt || strcmp(cache_opt, "off") != 0)) goto done;
  if (cli_session_open(&s, "probe", &eo, 0)) goto done;
  char model_id[256];
  if (cli_model_id("probe", s.model, model_id, sizeof model_id)) goto done;
  int hit_tr = 0, hit_te = 0;
  if (features(&s, model_id, "train", train, dtr, cache, &ftr, &hit_tr) ||
      features(&s, model_id, "test", test, dte, cache, &fte, &hit_te))
    goto done;
  po.threads = 0;
  if (clipcl_probe_run(ftr.emb, ftr.labels, ftr.n, fte.emb, fte.labels, fte.n, ftr.dim, classes, &po, &pr) != CLIPCL_OK) {
    cli_error("probe");
    goto done;
  }
  double n_fit = (double)(pr.n_train + pr.n_val);
  printf("linear probe: %lld train (%lld fit + %lld validation), %lld test, %d classes, %d-dim features\n",
         (long long)(pr.n_train + pr.n_val), (long long)pr.n_train, (long long)pr.n_val, (long long)pr.n_test, classes,
         ftr.dim);
  printf("  L2 strength     lambda %.4g (scikit-learn C = 1/(lambda n) = %.4g), %d values tried\n", pr.lambda,
         1.0 / (pr.lambda * n_fit), pr.n_trials);
  printf("  validation top-1  %6.2f%%\n", 100 * pr.val_top1);
  printf("  test top-1        %6.2f%%\n", 100 * pr.test_top1);
  printf("  chance            %6.2f%%\n", 100.0 / classes);
  rc = 0;
  if (json) {
    char *text;
    if (clipcl_probe_json(&pr, &text) != CLIPCL_OK) {
      rc = cli_error("probe");
    } else {
      json_t *extra = json_pack("{s:s, s:s, s:s, s:i}", "model", model_id, "train", train, "test", test, "cache_hits",
                                hit_tr + hit_te);
      rc = cli_write_report("probe", json, text, extra);
    }
  }
done:
  clipcl_probe_result_free(&pr);
  clipcl_image_features_free(&ftr);
  clipcl_image_features_free(&fte);
  cli_session_close(&s);
  clipcl_dataset_free(dtr);
  clipcl_dataset_free(dte);
  free(cache);
  return rc;
}

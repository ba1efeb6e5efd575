/* cmd_zeroshot.c: `clipcl zeroshot`: zero-shot classification of a labelled
 * image folder or CSV (clipcl_zeroshot_run), printed as a table, with the
 * JSON metrics, per-image predictions and the confusion matrix (CSV + PNG)
 * as files on request. Not here: the run or the report formats
 * (src/eval/). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

static const char usage_text[] =
    "usage: clipcl zeroshot --model M --data DIR|CSV [--classnames FILE] [--templates FILE|openai|simple]\n"
    "                       [--json OUT] [--predictions OUT.csv] [--confusion PREFIX]\n"
    "                       [--csv-img-key filepath] [--csv-label-key label] [--csv-separator C]\n"
    "                       [--max-bad-fraction 0.01] [--model-config NAME|FILE] [--batch N] [--workers N]\n"
    "                       [--device D]\n";

static void help(void) {
  printf("%s\n"
         "Zero-shot classification: every class name is put into every template, the prompts are encoded,\n"
         "normalised and averaged per class; each image goes to the class of highest cosine similarity.\n"
         "  --data DIR        an image folder: one sub-folder per class, classes in sorted (byte) order\n"
         "  --data CSV        a CSV/TSV with image paths (filepath) and integer labels (label) 0..C-1\n"
         "  --classnames FILE one class text per line (UTF-8), line k for class k (the k-th sorted folder);\n"
         "                    optional for a folder (then its names, '_' read as a space), needed for a CSV\n"
         "  --templates T     a file of templates holding {} (one per line), 'openai' (OpenAI's 80 ImageNet\n"
         "                    templates) or 'simple' (their 7-template subset); default: the single\n"
         "                    template \"" CLIPCL_DEFAULT_TEMPLATE "\", since the ImageNet sets describe ImageNet photos\n"
         "  --json OUT        n, classes, top1, top5, mean_per_class_recall, chance, per_class, support,\n"
         "                    classnames, confusion_matrix, templates (count), model, data, bad_samples\n"
         "  --predictions F   CSV path,true_label,predicted_label,score (one row per image)\n"
         "  --confusion P     P.csv (rows true class, columns predicted) and P.png (heat map)\n"
         "Unreadable images are skipped and named on stderr; more than --max-bad-fraction of them (default\n"
         "0.01) fails the run.\n",
         usage_text);
}

static int write_files(const char *json, const char *pred, const char *conf, const clipcl_zeroshot_result *r,
                       const char *model_id, const char *data) {
  const char *const *names = (const char *const *)r->classnames;
  if (json) {
    char *text;
    if (clipcl_zeroshot_json(&r->metrics, names, &text) != CLIPCL_OK) return cli_error("zeroshot");
    json_t *extra = json_pack("{s:f, s:i, s:s, s:s, s:I}", "chance", 1.0 / r->classes, "templates", r->templates,
                              "model", model_id, "data", data, "bad_samples", (json_int_t)r->bad);
    if (cli_write_report("zeroshot", json, text, extra)) return 1;
  }
  if (pred && clipcl_zeroshot_write_predictions(pred, (const char *const *)r->paths, r->labels, r->topk,
                                                r->topk_score, (size_t)r->k, r->n, r->classes, names) != CLIPCL_OK)
    return cli_error("zeroshot");
  if (conf) {
    size_t n = strlen(conf) + 8;
    char *p = malloc(n);
    if (!p) return cli_error("zeroshot");
    snprintf(p, n, "%s.csv", conf);
    clipcl_status s = clipcl_confusion_write_csv(p, &r->metrics, names);
    if (!s) {
      snprintf(p, n, "%s.png", conf);
      s = clipcl_confusion_write_png(p, &r->metrics);
    }
    free(p);
    if (s) return cli_error("zeroshot");
  }
  return 0;
}

static void print_table(const clipcl_zeroshot_result *r, const char *data, const char *tdesc) {
  const clipcl_zeroshot_metrics *m = &r->metrics;
  printf("zero-shot on %s: %zu images, %d classes, %s", data, r->n, r->classes, tdesc);
  if (r->bad) printf(", %lld unreadable images skipped", (long long)r->bad);
  printf("\n");
  printf("  top-1                  %6.2f%%\n", 100 * m->top1);
  printf("  top-%-2d                 %6.2f%%\n", m->k5, 100 * m->top5);
  printf("  mean per-class recall  %6.2f%%\n", 100 * m->mean_per_class_recall);
  printf("  chance (1/classes)     %6.2f%%\n", 100.0 / r->classes);
  int w = 5;
  for (int c = 0; c < r->classes; c++) {
    int l = (int)strlen(r->classnames[c]);
    if (l > w) w = l;
  }
  if (w > 40) w = 40; /* longer names push their row's columns out instead */
  printf("per class:\n  %-*s  top-1   images\n", w, "class");
  for (int c = 0; c < r->classes; c++) {
    if (m->support[c] == 0)
      printf("  %-*s      -  %7lld\n", w, r->classnames[c], 0LL);
    else
      printf("  %-*s  %5.1f%%  %7lld\n", w, r->classnames[c], 100 * m->per_class[c], (long long)m->support[c]);
  }
}

int cmd_zeroshot(int argc, char **argv) {
  cli_eval_opts eo;
  cli_eval_opts_init(&eo);
  const char *data = NULL, *classnames = NULL, *templates = NULL, *json = NULL, *pred = NULL, *conf = NULL;
  for (int i = 1; i < argc; i++) {
    int r = cli_eval_opt("zeroshot", argc, argv, &i, &eo);
    if (r < 0) return 2;
    if (r > 0) continue;
    const char **dst = NULL;
    if (!strcmp(argv[i], "--data")) dst = &data;
    else if (!strcmp(argv[i], "--classnames")) dst = &classnames;
    else if (!strcmp(argv[i], "--templates")) dst = &templates;
    else if (!strcmp(argv[i], "--json")) dst = &json;
    else if (!strcmp(argv[i], "--predictions")) dst = &pred;
    else if (!strcmp(argv[i], "--confusion")) dst = &conf;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      help();
      return 0;
    } else {
      fprintf(stderr, "clipcl zeroshot: unknown option '%s'\n", argv[i]);
      return 2;
    }
    if (!(*dst = cli_value("zeroshot", argc, argv, &i))) return 2;
  }
  if (!eo.model || !data) {
    fputs(usage_text, stderr);
    return 2;
  }
  /* the lists and the data set first: their mistakes cost no model load */
  clipcl_text_list names = {0}, tmpl = {0};
  if (classnames && clipcl_text_list_load(classnames, CLIPCL_LIST_CLASSNAMES, &names) != CLIPCL_OK)
    return cli_error("zeroshot");
  if (templates && clipcl_templates_get(templates, &tmpl) != CLIPCL_OK) {
    clipcl_text_list_free(&names);
    return cli_error("zeroshot");
  }
  int rc = 1;
  cli_session s = {0};
  clipcl_zeroshot_result res = {0};
  clipcl_dataset *ds = cli_open_labelled("zeroshot", data, &eo);
  if (!ds) goto done;
  int folder = clipcl_dataset_kind(ds) == CLIPCL_DATA_FOLDER, nc = clipcl_dataset_num_classes(ds);
  if (folder && classnames && names.n != nc) {
    fprintf(stderr, "clipcl zeroshot: %s: %d class names for the %d class folders of %s (one per folder, in sorted order)\n",
            classnames, names.n, nc, data);
    goto done;
  }
  if (!folder && !classnames) {
    fprintf(stderr, "clipcl zeroshot: %s: a CSV data set needs --classnames (line k names label k)\n", data);
    goto done;
  }
  if (!folder && names.n < nc) {
    fprintf(stderr, "clipcl zeroshot: %s: %d class names, but %s has label %d\n", classnames, names.n, data, nc - 1);
    goto done;
  }
  if (cli_session_open(&s, "zeroshot", &eo, 1)) goto done;
  char model_id[256];
  if (cli_model_id("zeroshot", s.model, model_id, sizeof model_id)) goto done;
  if (clipcl_zeroshot_run(s.model, s.tok, ds, classnames ? &names : NULL, templates ? &tmpl : NULL, &s.eval, &res) !=
      CLIPCL_OK) {
    cli_progress_end(&s);
    cli_error("zeroshot");
    goto done;
  }
  cli_progress_end(&s);
  char tdesc[256];
  if (templates)
    snprintf(tdesc, sizeof tdesc, "%d template%s (%s)", res.templates, res.templates == 1 ? "" : "s", templates);
  else
    snprintf(tdesc, sizeof tdesc, "template \"%s\"", CLIPCL_DEFAULT_TEMPLATE);
  print_table(&res, data, tdesc);
  rc = write_files(json, pred, conf, &res, model_id, data);
done:
  clipcl_zeroshot_result_free(&res);
  cli_session_close(&s);
  clipcl_dataset_free(ds);
  clipcl_text_list_free(&names);
  clipcl_text_list_free(&tmpl);
  return rc;
}

/* eval_common.c: what the evaluation commands (zeroshot, retrieval, probe,
 * index, search) share: their common options (model, device, batch,
 * workers, CSV keys), opening the model with its tokenizer, opening a
 * labelled data set from a folder or a CSV, printing skipped samples and
 * progress, and writing a library JSON report with a few keys added.
 * Not here: the commands themselves (cmd_<name>.c) or any metric. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "io/atomic.h"

void cli_eval_opts_init(cli_eval_opts *o) {
  memset(o, 0, sizeof *o);
  o->batch = 64;
  o->max_bad = 0.01;
}

int cli_eval_opt(const char *cmd, int argc, char **argv, int *i, cli_eval_opts *o) {
  const char *a = argv[*i], *v;
  const char **dst = NULL;
  if (!strcmp(a, "--model")) dst = &o->model;
  else if (!strcmp(a, "--model-config")) dst = &o->config;
  else if (!strcmp(a, "--device")) dst = &o->device;
  else if (!strcmp(a, "--csv-img-key")) dst = &o->img_key;
  else if (!strcmp(a, "--csv-caption-key")) dst = &o->caption_key;
  else if (!strcmp(a, "--csv-label-key")) dst = &o->label_key;
  else if (!strcmp(a, "--csv-separator")) dst = &o->separator;
  if (dst) return (*dst = cli_value(cmd, argc, argv, i)) ? 1 : -1;
  if (!strcmp(a, "--batch")) {
    if (!(v = cli_value(cmd, argc, argv, i)) || cli_int(cmd, a, v, 1, 4096, &o->batch)) return -1;
    return 1;
  }
  if (!strcmp(a, "--max-bad-fraction")) {
    if (!(v = cli_value(cmd, argc, argv, i))) return -1;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= 0 && x <= 1)) {
      fprintf(stderr, "clipcl %s: --max-bad-fraction %s: expected a number from 0 to 1\n", cmd, v);
      return -1;
    }
    o->max_bad = x;
    return 1;
  }
  if (!strcmp(a, "--workers")) {
    if (!(v = cli_value(cmd, argc, argv, i)) || cli_int(cmd, a, v, 0, 256, &o->workers)) return -1;
    return 1;
  }
  return 0;
}

static void on_bad(void *user, const clipcl_bad_sample *b) {
  cli_session *s = user;
  s->skipped++;
  cli_progress_break(&s->progress);
  fprintf(stderr, "clipcl %s: skipped %s: %s\n", s->cmd, b->source, b->reason);
}

static void on_progress(void *user, const char *stage, int64_t done, int64_t total) {
  cli_session *s = user;
  cli_progress_update(&s->progress, stage, done, total);
}

void cli_progress_end(cli_session *s) { cli_progress_break(&s->progress); }

int cli_session_open(cli_session *s, const char *cmd, const cli_eval_opts *o, int need_tokenizer) {
  memset(s, 0, sizeof *s);
  s->cmd = cmd;
  cli_progress_init_tty(&s->progress);
  clipcl_eval_options_init(&s->eval);
  s->eval.batch = (int)o->batch;
  s->eval.workers = (int)o->workers;
  s->eval.max_bad_fraction = o->max_bad;
  s->eval.on_bad = on_bad;
  s->eval.progress = on_progress;
  s->eval.user = s;
  if (!(s->dev = cli_open_device(cmd, o->device))) return -1;
  if (!(s->model = cli_load_model(cmd, s->dev, o->model, o->config))) {
    cli_session_close(s);
    return -1;
  }
  if (need_tokenizer && clipcl_tokenizer_create(&s->tok) != CLIPCL_OK) {
    cli_error(cmd);
    cli_session_close(s);
    return -1;
  }
  return 0;
}

void cli_session_close(cli_session *s) {
  cli_progress_end(s);
  clipcl_tokenizer_free(s->tok);
  clipcl_model_free(s->model);
  if (s->dev) {
    clipcl_device_profile_report(s->dev, stderr);
    clipcl_device_free(s->dev);
  }
  s->tok = NULL, s->model = NULL, s->dev = NULL;
}

clipcl_dataset *cli_open_labelled(const char *cmd, const char *spec, const cli_eval_opts *o) {
  struct stat sb;
  if (stat(spec, &sb) != 0) {
    fprintf(stderr, "clipcl %s: %s: %s\n", cmd, spec, strerror(errno));
    return NULL;
  }
  clipcl_dataset_options d;
  clipcl_dataset_options_init(&d);
  if (S_ISDIR(sb.st_mode)) {
    d.kind = CLIPCL_DATA_FOLDER;
  } else {
    d.kind = CLIPCL_DATA_CSV;
    d.img_key = o->img_key;
    d.label_key = o->label_key ? o->label_key : "label";
    d.separator = o->separator;
  }
  clipcl_dataset *ds = NULL;
  if (clipcl_dataset_open(spec, &d, &ds) != CLIPCL_OK) {
    cli_error(cmd);
    return NULL;
  }
  return ds;
}

int cli_write_report(const char *cmd, const char *path, char *json, json_t *extra) {
  json_error_t err;
  json_t *root = json ? json_loads(json, 0, &err) : NULL;
  free(json);
  if (!root || !json_is_object(root) || (extra && json_object_update(root, extra))) {
    json_decref(root);
    json_decref(extra);
    fprintf(stderr, "clipcl %s: %s: could not build the JSON report\n", cmd, path);
    return 1;
  }
  json_decref(extra);
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
  json_decref(root);
  if (!text) {
    fprintf(stderr, "clipcl %s: %s: out of memory\n", cmd, path);
    return 1;
  }
  size_t n = strlen(text);
  char *t = realloc(text, n + 2);
  if (!t) {
    free(text);
    fprintf(stderr, "clipcl %s: %s: out of memory\n", cmd, path);
    return 1;
  }
  t[n] = '\n';
  t[n + 1] = 0;
  clipcl_status st = cc_atomic_write_file(path, t, n + 1);
  free(t);
  return st ? cli_error(cmd) : 0;
}

int cli_model_id(const char *cmd, clipcl_model *m, char *out, size_t cap) {
  if (clipcl_model_identity(m, out, cap) != CLIPCL_OK) return cli_error(cmd);
  return 0;
}

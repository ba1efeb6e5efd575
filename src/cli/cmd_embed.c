/* cmd_embed.c: `clipcl embed`: image and/or text embeddings of a model as
 * NumPy .npy files (float32, N x embed_dim, L2-normalised) plus a text file
 * of the image paths / texts in row order, or the text tower's per-token
 * hidden states (--hidden-states). Unreadable images and texts that are not
 * UTF-8 are reported with their path or line and skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/atomic.h"
#include "io/npy.h"

/* Writes the rows (emb NULL: none) and their labels (one per line) as
 * PREFIX.<kind>.npy/.txt. */
static int write_outputs(const char *prefix, const char *kind, const float *emb, size_t rows, int E,
                         char *const *labels) {
  char path[4096];
  snprintf(path, sizeof path, "%s.%s.npy", prefix, kind);
  size_t shape[2] = {rows, (size_t)E};
  if (emb && cc_npy_write_f32(path, emb, 2, shape) != CLIPCL_OK) return cli_error("embed");
  size_t len = 0;
  for (size_t i = 0; i < rows; i++) len += strlen(labels[i]) + 1;
  char *txt = malloc(len + 1);
  if (!txt) {
    fprintf(stderr, "clipcl embed: out of memory\n");
    return 1;
  }
  char *p = txt;
  for (size_t i = 0; i < rows; i++) {
    size_t l = strlen(labels[i]);
    memcpy(p, labels[i], l);
    p[l] = '\n';
    p += l + 1;
  }
  snprintf(path, sizeof path, "%s.%s.txt", prefix, kind);
  clipcl_status s = cc_atomic_write_file(path, txt, (size_t)(p - txt));
  free(txt);
  return s ? cli_error("embed") : 0;
}

static void on_bad(void *user, const clipcl_bad_sample *b) {
  cli_progress_break(user);
  fprintf(stderr, "clipcl embed: skipped %s: %s\n", b->source, b->reason);
}

static void on_progress(void *user, const char *stage, int64_t done, int64_t total) {
  cli_progress_update(user, stage, done, total);
}

static int embed_images(clipcl_model *m, const char *spec, const char *prefix, int chunk, int workers) {
  char **paths;
  int n = cli_image_paths("embed", spec, &paths);
  if (n < 0) return 1;
  if (n == 0) {
    fprintf(stderr, "clipcl embed: %s: no .png/.jpg/.jpeg images\n", spec);
    free(paths);
    return 1;
  }
  int E = clipcl_model_config(m)->embed_dim, rc = 1;
  float *emb = malloc((size_t)n * E * sizeof *emb);
  uint8_t *ok = malloc((size_t)n);
  char **kept = calloc((size_t)n, sizeof *kept);
  cli_progress prog;
  cli_progress_init_tty(&prog);
  clipcl_eval_options o;
  clipcl_eval_options_init(&o);
  o.batch = chunk;
  o.workers = workers;
  o.on_bad = on_bad;
  o.progress = on_progress;
  o.user = &prog;
  size_t bad = 0, rows = 0;
  if (!emb || !ok || !kept) {
    fprintf(stderr, "clipcl embed: out of memory\n");
    goto done;
  }
  double t0 = cli_now();
  clipcl_status st = clipcl_encode_image_files(m, (const char *const *)paths, (size_t)n, &o, emb, ok, &bad);
  cli_progress_break(&prog);
  if (st != CLIPCL_OK) {
    cli_error("embed");
    goto done;
  }
  /* keep the readable images' rows, in order */
  for (int i = 0; i < n; i++) {
    if (!ok[i]) continue;
    if (rows != (size_t)i) memmove(emb + rows * E, emb + (size_t)i * E, (size_t)E * sizeof *emb);
    kept[rows++] = paths[i];
  }
  printf("embedded %zu images (%zu skipped as unreadable) in %.1f s\n", rows, bad, cli_now() - t0);
  if (rows == 0) {
    fprintf(stderr, "clipcl embed: no readable images: nothing written\n");
    goto done;
  }
  rc = write_outputs(prefix, "image", emb, rows, E, kept);
done:
  for (int i = 0; i < n; i++) free(paths[i]);
  free(paths);
  free(kept);
  free(ok);
  free(emb);
  return rc;
}

/* skip >= 0: the per-token hidden states (clipcl_model_text_hidden_states)
 * into PREFIX.text_hidden.npy instead of the embeddings. */
static int embed_texts(clipcl_model *m, const char *file, const char *prefix, int skip) {
  char **lines;
  int n = cli_read_lines("embed", file, &lines);
  if (n < 0) return 1;
  const clipcl_config *c = clipcl_model_config(m);
  int T = c->text.context_length, W = c->text.width, E = c->embed_dim, rows = 0, bad = 0, rc = 1;
  size_t per = skip >= 0 ? (size_t)T * W : (size_t)E; /* floats per text */
  clipcl_tokenizer *tk = NULL;
  int32_t *ids = malloc((size_t)(n ? n : 1) * T * sizeof *ids);
  float *out = malloc((size_t)(n ? n : 1) * per * sizeof *out);
  char **kept = calloc((size_t)(n ? n : 1), sizeof *kept);
  cli_progress prog;
  cli_progress_init_tty(&prog);
  if (!ids || !out || !kept) {
    fprintf(stderr, "clipcl embed: out of memory (%d texts)\n", n);
    goto done;
  }
  if (clipcl_tokenizer_create(&tk) != CLIPCL_OK) {
    cli_error("embed");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    if (clipcl_tokenize(tk, lines[i], T, ids + (size_t)rows * T, NULL) != CLIPCL_OK) {
      fprintf(stderr, "clipcl embed: skipped %s line %d: %s\n", file, i + 1, clipcl_last_error());
      bad++;
      continue;
    }
    for (int t = 0; t < T; t++)
      if (ids[(size_t)rows * T + t] >= c->text.vocab_size) {
        fprintf(stderr, "clipcl embed: %s line %d: token id beyond the model's vocabulary (%d)\n", file, i + 1,
                c->text.vocab_size);
        goto done;
      }
    kept[rows++] = lines[i];
  }
  if (rows == 0) {
    fprintf(stderr, "clipcl embed: %s: no usable lines: nothing written\n", file);
    goto done;
  }
  double t0 = cli_now();
  /* slices of 256 texts only for the progress line: the results do not
   * depend on how the rows are split */
  for (int i = 0; i < rows; i += 256) {
    int b = rows - i < 256 ? rows - i : 256;
    clipcl_status st = skip >= 0 ? clipcl_model_text_hidden_states(m, ids + (size_t)i * T, b, skip, out + i * per)
                                 : clipcl_model_encode_texts(m, ids + (size_t)i * T, b, out + i * per);
    if (st != CLIPCL_OK) {
      cli_progress_break(&prog);
      cli_error("embed");
      goto done;
    }
    cli_progress_update(&prog, "texts", i + b, rows);
  }
  cli_progress_break(&prog);
  printf("embedded %d texts (%d skipped) in %.1f s\n", rows, bad, cli_now() - t0);
  if (skip >= 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s.text_hidden.npy", prefix);
    size_t shape[3] = {(size_t)rows, (size_t)T, (size_t)W};
    rc = cc_npy_write_f32(path, out, 3, shape) != CLIPCL_OK ? cli_error("embed") : 0;
    if (!rc) rc = write_outputs(prefix, "text", NULL, (size_t)rows, 0, kept);
  } else {
    rc = write_outputs(prefix, "text", out, (size_t)rows, E, kept);
  }
done:
  clipcl_tokenizer_free(tk);
  cli_free_lines(lines, n);
  free(kept);
  free(ids);
  free(out);
  return rc;
}

int cmd_embed(int argc, char **argv) {
  const char *model = NULL, *config = NULL, *images = NULL, *texts = NULL, *out = NULL, *device = NULL, *v;
  long chunk = 64, workers = 0;
  int skip = -1; /* --hidden-states: final blocks left out; -1 = embeddings */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model")) {
      if (!(model = cli_value("embed", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--model-config")) {
      if (!(config = cli_value("embed", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--images")) {
      if (!(images = cli_value("embed", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--texts")) {
      if (!(texts = cli_value("embed", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--out")) {
      if (!(out = cli_value("embed", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--device")) {
      if (!(device = cli_value("embed", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--batch")) {
      if (!(v = cli_value("embed", argc, argv, &i)) || cli_int("embed", "--batch", v, 1, 4096, &chunk)) return 2;
    } else if (!strcmp(argv[i], "--workers")) {
      if (!(v = cli_value("embed", argc, argv, &i)) || cli_int("embed", "--workers", v, 0, 256, &workers)) return 2;
    } else if (!strcmp(argv[i], "--hidden-states")) {
      if (!(v = cli_value("embed", argc, argv, &i))) return 2;
      if (!strcmp(v, "last")) skip = CLIPCL_HIDDEN_LAST;
      else if (!strcmp(v, "penultimate")) skip = CLIPCL_HIDDEN_PENULTIMATE;
      else {
        fprintf(stderr, "clipcl embed: --hidden-states %s: expected last or penultimate\n", v);
        return 2;
      }
    } else if (!strcmp(argv[i], "--help")) {
      printf("usage: clipcl embed --model M.safetensors [--model-config NAME|FILE] [--images DIR|LIST.txt|IMAGE]\n"
             "                    [--texts FILE.txt] --out PREFIX [--batch N] [--workers N] [--device D]\n"
             "Writes PREFIX.image.npy + PREFIX.image.txt (paths in row order) and/or PREFIX.text.npy +\n"
             "PREFIX.text.txt: float32 N x embed_dim, L2-normalised. Unreadable images are skipped.\n"
             "  --hidden-states last|penultimate   with --texts: PREFIX.text_hidden.npy (N x context x text\n"
             "      width, float32) instead of PREFIX.text.npy: the last (or the one before the last) text\n"
             "      block's output through the final LayerNorm, as Stable Diffusion 1.x (2.x) conditions on;\n"
             "      last = Hugging Face CLIPTextModel's last_hidden_state\n");
      return 0;
    } else {
      fprintf(stderr, "clipcl embed: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  if (skip >= 0 && !texts) {
    fprintf(stderr, "clipcl embed: --hidden-states needs --texts\n");
    return 2;
  }
  if (!model || !out || (!images && !texts)) {
    fprintf(stderr, "usage: clipcl embed --model M.safetensors (--images DIR|LIST.txt|IMAGE | --texts FILE.txt) "
                    "--out PREFIX\n");
    return 2;
  }
  clipcl_device *dev = cli_open_device("embed", device);
  if (!dev) return 1;
  clipcl_model *m = cli_load_model("embed", dev, model, config);
  int rc = 1;
  if (m) {
    rc = 0;
    if (images) rc |= embed_images(m, images, out, (int)chunk, (int)workers);
    if (texts && !rc) rc |= embed_texts(m, texts, out, skip);
    clipcl_model_free(m);
  }
  clipcl_device_profile_report(dev, stderr);
  clipcl_device_free(dev);
  return rc;
}

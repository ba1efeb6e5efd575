/* cmd_embed.c: `clipcl embed`: image and/or text embeddings of a model as
 * NumPy .npy files (float32, N x embed_dim, L2-normalised) plus a text file
 * of the image paths / texts in row order. Unreadable images and texts that
 * are not UTF-8 are reported with their path or line and skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/atomic.h"
#include "io/npy.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Writes the rows and their labels (one per line) as PREFIX.<kind>.npy/.txt. */
static int write_outputs(const char *prefix, const char *kind, const float *emb, size_t rows, int E,
                         char *const *labels) {
  char path[4096];
  snprintf(path, sizeof path, "%s.%s.npy", prefix, kind);
  size_t shape[2] = {rows, (size_t)E};
  if (cc_npy_write_f32(path, emb, 2, shape) != CLIPCL_OK) return cli_error("embed");
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

static int embed_images(clipcl_model *m, const char *spec, const char *prefix, int chunk, int workers) {
  char **paths;
  int n = cli_image_paths("embed", spec, &paths);
  if (n < 0) return 1;
  if (n == 0) {
    fprintf(stderr, "clipcl embed: %s: no .png/.jpg/.jpeg images\n", spec);
    free(paths);
    return 1;
  }
  const clipcl_config *c = clipcl_model_config(m);
  int S = c->vision.image_size, E = c->embed_dim;
  size_t px = (size_t)3 * S * S;
  float *pix = malloc((size_t)chunk * px * sizeof *pix), *emb = malloc((size_t)n * E * sizeof *emb);
  clipcl_image_source *src = calloc((size_t)chunk, sizeof *src);
  clipcl_status *st = calloc((size_t)chunk, sizeof *st);
  char **kept = calloc((size_t)n, sizeof *kept);
  int rc = 1, rows = 0, bad = 0;
  if (!pix || !emb || !src || !st || !kept) {
    fprintf(stderr, "clipcl embed: out of memory\n");
    goto done;
  }
  double t0 = now();
  for (int i = 0; i < n; i += chunk) {
    int b = n - i < chunk ? n - i : chunk, nf = 0;
    for (int j = 0; j < b; j++) src[j] = (clipcl_image_source){paths[i + j], NULL, 0, NULL};
    if (clipcl_image_batch(src, b, S, NULL, workers, pix, st, &nf) != CLIPCL_OK) {
      cli_error("embed");
      goto done;
    }
    /* compact the good images to the front */
    int good = 0;
    for (int j = 0; j < b; j++) {
      if (st[j] != CLIPCL_OK) {
        clipcl_image img;
        if (clipcl_image_load(paths[i + j], &img) == CLIPCL_OK) clipcl_image_free(&img); /* for the message */
        fprintf(stderr, "clipcl embed: skipped %s\n", clipcl_last_error());
        bad++;
        continue;
      }
      if (good != j) memmove(pix + (size_t)good * px, pix + (size_t)j * px, px * sizeof *pix);
      kept[rows + good] = paths[i + j];
      good++;
    }
    if (good && clipcl_model_encode_images(m, pix, good, emb + (size_t)rows * E) != CLIPCL_OK) {
      cli_error("embed");
      goto done;
    }
    rows += good;
    if (isatty(2))
      fprintf(stderr, "\rimages %d/%d  %.1f images/s ", i + b, n, (i + b) / (now() - t0));
  }
  if (isatty(2)) fprintf(stderr, "\n");
  printf("embedded %d images (%d skipped as unreadable) in %.1f s\n", rows, bad, now() - t0);
  if (rows == 0) {
    fprintf(stderr, "clipcl embed: no readable images: nothing written\n");
    goto done;
  }
  rc = write_outputs(prefix, "image", emb, (size_t)rows, E, kept);
done:
  for (int i = 0; i < n; i++) free(paths[i]);
  free(paths);
  free(kept);
  free(pix);
  free(emb);
  free(src);
  free(st);
  return rc;
}

static int embed_texts(clipcl_model *m, const char *file, const char *prefix) {
  char **lines;
  int n = cli_read_lines("embed", file, &lines);
  if (n < 0) return 1;
  const clipcl_config *c = clipcl_model_config(m);
  int T = c->text.context_length, E = c->embed_dim, rows = 0, bad = 0, rc = 1;
  clipcl_tokenizer *tk = NULL;
  int32_t *ids = malloc((size_t)(n ? n : 1) * T * sizeof *ids);
  float *emb = malloc((size_t)(n ? n : 1) * E * sizeof *emb);
  char **kept = calloc((size_t)(n ? n : 1), sizeof *kept);
  if (!ids || !emb || !kept) {
    fprintf(stderr, "clipcl embed: out of memory\n");
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
  double t0 = now();
  if (clipcl_model_encode_texts(m, ids, rows, emb) != CLIPCL_OK) {
    cli_error("embed");
    goto done;
  }
  printf("embedded %d texts (%d skipped) in %.1f s\n", rows, bad, now() - t0);
  rc = write_outputs(prefix, "text", emb, (size_t)rows, E, kept);
done:
  clipcl_tokenizer_free(tk);
  cli_free_lines(lines, n);
  free(kept);
  free(ids);
  free(emb);
  return rc;
}

int cmd_embed(int argc, char **argv) {
  const char *model = NULL, *config = NULL, *images = NULL, *texts = NULL, *out = NULL, *device = NULL, *v;
  long chunk = 64, workers = 0;
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
    } else if (!strcmp(argv[i], "--help")) {
      printf("usage: clipcl embed --model M.safetensors [--model-config NAME|FILE] [--images DIR|LIST.txt|IMAGE]\n"
             "                    [--texts FILE.txt] --out PREFIX [--batch N] [--workers N] [--device D]\n"
             "Writes PREFIX.image.npy + PREFIX.image.txt (paths in row order) and/or PREFIX.text.npy +\n"
             "PREFIX.text.txt: float32 N x embed_dim, L2-normalised. Unreadable images are skipped.\n");
      return 0;
    } else {
      fprintf(stderr, "clipcl embed: unknown option '%s'\n", argv[i]);
      return 2;
    }
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
    if (texts && !rc) rc |= embed_texts(m, texts, out);
    clipcl_model_free(m);
  }
  clipcl_device_profile_report(dev, stderr);
  clipcl_device_free(dev);
  return rc;
}

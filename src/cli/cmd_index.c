/* cmd_index.c: `clipcl index` (build or extend an image search index) and
 * `clipcl search` (text or image queries against it, ranked paths, an HTML
 * page of thumbnails). Indexes store absolute paths, so they work from any
 * folder and adding the same folder again embeds only files not yet in it.
 * Not here: the index format (src/search/index.c), scoring
 * (src/search/search_device.c), the page (src/search/html.c). */
#define _DEFAULT_SOURCE /* realpath */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* ---- index ---------------------------------------------------------------- */
static const char index_usage[] =
    "usage: clipcl index --model M --images DIR|LIST.txt --out INDEX\n"
    "                    [--model-config NAME|FILE] [--batch N] [--workers N] [--device D]\n";

static void index_help(void) {
  printf("%s\n"
         "Embeds the .png/.jpg/.jpeg files under DIR (recursively) or listed in LIST.txt into the index\n"
         "folder INDEX: index.json (model identity, count), embeddings (.npy, L2-normalised) and the\n"
         "absolute paths. An existing index is extended: only paths it does not hold are embedded; an\n"
         "index built with another model (other weights or config) is refused. Unreadable images are\n"
         "skipped and named on stderr. index.json is replaced last, so a crash keeps the old index whole.\n",
         index_usage);
}

int cmd_index(int argc, char **argv) {
  cli_eval_opts eo;
  cli_eval_opts_init(&eo);
  const char *images = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    int r = cli_eval_opt("index", argc, argv, &i, &eo);
    if (r < 0) return 2;
    if (r > 0) continue;
    const char **dst = NULL;
    if (!strcmp(argv[i], "--images")) dst = &images;
    else if (!strcmp(argv[i], "--out")) dst = &out;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      index_help();
      return 0;
    } else {
      fprintf(stderr, "clipcl index: unknown option '%s'\n", argv[i]);
      return 2;
    }
    if (!(*dst = cli_value("index", argc, argv, &i))) return 2;
  }
  if (!eo.model || !images || !out) {
    fputs(index_usage, stderr);
    return 2;
  }
  char **paths = NULL, **fresh = NULL;
  int n = cli_image_paths("index", images, &paths), rc = 1;
  if (n < 0) return 1;
  if (n == 0) {
    fprintf(stderr, "clipcl index: %s: no .png/.jpg/.jpeg images\n", images);
    free(paths);
    return 1;
  }
  cli_session s = {0};
  clipcl_index *ix = NULL;
  float *emb = NULL;
  uint8_t *ok = NULL;
  /* an existing index is read (and its model checked) before any encoding */
  int existed = clipcl_index_exists(out);
  if (existed && clipcl_index_load(out, &ix) != CLIPCL_OK) {
    cli_error("index");
    goto done;
  }
  if (cli_session_open(&s, "index", &eo, 0)) goto done;
  char model_id[256];
  if (cli_model_id("index", s.model, model_id, sizeof model_id)) goto done;
  int E = clipcl_model_config(s.model)->embed_dim;
  if (ix && clipcl_index_check_model(ix, model_id) != CLIPCL_OK) {
    fprintf(stderr, "clipcl index: %s: %s\n", out, clipcl_last_error());
    goto done;
  }
  if (!ix && clipcl_index_create(model_id, E, &ix) != CLIPCL_OK) {
    cli_error("index");
    goto done;
  }
  /* absolute paths, those not yet indexed */
  fresh = calloc((size_t)n, sizeof *fresh);
  if (!fresh) {
    fprintf(stderr, "clipcl index: out of memory\n");
    goto done;
  }
  int nf = 0, present = 0, missing = 0;
  for (int i = 0; i < n; i++) {
    char abs[PATH_MAX];
    if (!realpath(paths[i], abs)) {
      fprintf(stderr, "clipcl index: skipped %s: %s\n", paths[i], strerror(errno));
      missing++;
      continue;
    }
    if (clipcl_index_contains(ix, abs)) {
      present++;
      continue;
    }
    if (!(fresh[nf++] = strdup(abs))) {
      fprintf(stderr, "clipcl index: out of memory\n");
      goto done;
    }
  }
  size_t bad = 0, added = 0;
  if (nf > 0) {
    emb = malloc((size_t)nf * E * sizeof *emb);
    ok = malloc((size_t)nf);
    if (!emb || !ok) {
      fprintf(stderr, "clipcl index: out of memory\n");
      goto done;
    }
    if (clipcl_encode_image_files(s.model, (const char *const *)fresh, (size_t)nf, &s.eval, emb, ok, &bad) !=
        CLIPCL_OK) {
      cli_progress_end(&s);
      cli_error("index");
      goto done;
    }
    cli_progress_end(&s);
    /* keep the readable ones, in order */
    int g = 0;
    for (int i = 0; i < nf; i++) {
      if (!ok[i]) continue;
      if (g != i) {
        char *t = fresh[g];
        fresh[g] = fresh[i], fresh[i] = t;
        memmove(emb + (size_t)g * E, emb + (size_t)i * E, (size_t)E * sizeof *emb);
      }
      g++;
    }
    if (clipcl_index_add(ix, model_id, (const char *const *)fresh, emb, (size_t)g, &added) != CLIPCL_OK) {
      cli_error("index");
      goto done;
    }
  }
  if (!existed && added == 0) {
    fprintf(stderr, "clipcl index: %s: none of the %d images could be read: no index written\n", images, n);
    goto done;
  }
  if (added > 0) {
    if (clipcl_index_save(ix, out) != CLIPCL_OK) {
      cli_error("index");
      goto done;
    }
  }
  printf("%s: embedded %zu new images (%d already indexed, %zu unreadable, %d missing); %zu images in the index\n",
         out, added, present, bad, missing, clipcl_index_count(ix));
  rc = 0;
done:
  if (fresh)
    for (int i = 0; i < n; i++) free(fresh[i]);
  free(fresh);
  cli_free_lines(paths, n);
  free(emb);
  free(ok);
  clipcl_index_free(ix);
  cli_session_close(&s);
  return rc;
}

/* ---- search --------------------------------------------------------------- */
static const char search_usage[] =
    "usage: clipcl search --index INDEX --model M (--text \"...\" | --image FILE)... [-k 10] [--html OUT.html]\n"
    "                     [--model-config NAME|FILE] [--device D]\n";

static void search_help(void) {
  printf("%s\n"
         "Ranks the indexed images by cosine similarity to each query (a text, or an image file) and\n"
         "prints the best k with their scores. --text and --image may be repeated; --html (one query only)\n"
         "writes a page of thumbnails. The model must be the one the index was built with.\n"
         "Scores are computed on the host for small jobs and on the device from 2^20 query-image pairs\n"
         "on (CLIPCL_SEARCH=host|device forces either).\n",
         search_usage);
}

typedef struct {
  const char *text; /* query text, or NULL */
  const char *image;
} query;

int cmd_search(int argc, char **argv) {
  cli_eval_opts eo;
  cli_eval_opts_init(&eo);
  const char *index = NULL, *html = NULL, *v;
  long k = 10;
  query *q = calloc((size_t)argc, sizeof *q);
  int nq = 0, nt = 0;
  if (!q) {
    fprintf(stderr, "clipcl search: out of memory\n");
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    int r = cli_eval_opt("search", argc, argv, &i, &eo);
    if (r < 0) goto usage;
    if (r > 0) continue;
    if (!strcmp(argv[i], "--index")) {
      if (!(index = cli_value("search", argc, argv, &i))) goto usage;
    } else if (!strcmp(argv[i], "--html")) {
      if (!(html = cli_value("search", argc, argv, &i))) goto usage;
    } else if (!strcmp(argv[i], "--text")) {
      if (!(q[nq].text = cli_value("search", argc, argv, &i))) goto usage;
      nq++, nt++;
    } else if (!strcmp(argv[i], "--image")) {
      if (!(q[nq].image = cli_value("search", argc, argv, &i))) goto usage;
      nq++;
    } else if (!strcmp(argv[i], "-k") || !strcmp(argv[i], "--k")) {
      if (!(v = cli_value("search", argc, argv, &i)) || cli_int("search", "-k", v, 1, 100000, &k)) goto usage;
    } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      search_help();
      free(q);
      return 0;
    } else {
      fprintf(stderr, "clipcl search: unknown option '%s'\n", argv[i]);
      goto usage;
    }
  }
  if (!index || !eo.model || nq == 0) {
    fputs(search_usage, stderr);
    goto usage;
  }
  if (html && nq != 1) {
    fprintf(stderr, "clipcl search: --html takes one query (got %d)\n", nq);
    goto usage;
  }
  int rc = 1;
  cli_session s = {0};
  clipcl_index *ix = NULL;
  float *qe = NULL;
  clipcl_search_hit *hits = NULL;
  const char **texts = NULL, **images = NULL;
  if (clipcl_index_load(index, &ix) != CLIPCL_OK) {
    cli_error("search");
    goto done;
  }
  if (cli_session_open(&s, "search", &eo, nt > 0)) goto done;
  s.eval.progress = NULL;
  char model_id[256];
  if (cli_model_id("search", s.model, model_id, sizeof model_id)) goto done;
  if (clipcl_index_check_model(ix, model_id) != CLIPCL_OK) {
    fprintf(stderr, "clipcl search: %s: %s\n", index, clipcl_last_error());
    goto done;
  }
  int E = clipcl_model_config(s.model)->embed_dim;
  if (E != clipcl_index_dim(ix)) {
    fprintf(stderr, "clipcl search: %s: %d-dim embeddings, the model makes %d\n", index, clipcl_index_dim(ix), E);
    goto done;
  }
  qe = malloc((size_t)nq * E * sizeof *qe);
  hits = malloc((size_t)nq * k * sizeof *hits);
  texts = malloc((size_t)nq * sizeof *texts);
  images = malloc((size_t)nq * sizeof *images);
  float *te = malloc((size_t)nq * E * sizeof *te), *ie = malloc((size_t)nq * E * sizeof *ie);
  int ni = 0;
  nt = 0;
  if (!qe || !hits || !texts || !images || !te || !ie) {
    fprintf(stderr, "clipcl search: out of memory\n");
    free(te), free(ie);
    goto done;
  }
  for (int i = 0; i < nq; i++) {
    if (q[i].text) texts[nt++] = q[i].text;
    else images[ni++] = q[i].image;
  }
  clipcl_status st = clipcl_encode_texts(s.model, s.tok, texts, (size_t)nt, &s.eval, te);
  size_t bad = 0;
  if (!st && ni) {
    s.eval.on_bad = NULL; /* an unreadable query image is an error, said below */
    st = clipcl_encode_image_files(s.model, images, (size_t)ni, &s.eval, ie, NULL, &bad);
  }
  if (!st && bad) {
    clipcl_image img;
    for (int i = 0; i < ni; i++)
      if (clipcl_image_load(images[i], &img) == CLIPCL_OK)
        clipcl_image_free(&img);
      else
        break;
    st = CLIPCL_ERR_FORMAT;
  }
  for (int i = 0, a = 0, b = 0; i < nq && !st; i++)
    memcpy(qe + (size_t)i * E, q[i].text ? te + (size_t)a++ * E : ie + (size_t)b++ * E, (size_t)E * sizeof *qe);
  free(te), free(ie);
  if (st) {
    cli_error("search");
    goto done;
  }
  int n_hits = 0, used = 0;
  if (clipcl_index_search_many(ix, s.model, model_id, qe, nq, (int)k, -1, 0, hits, &n_hits, &used) != CLIPCL_OK) {
    cli_error("search");
    goto done;
  }
  for (int i = 0; i < nq; i++) {
    printf("%s%s \"%s\": %d of %zu images (scored on the %s)\n", i ? "\n" : "", q[i].text ? "text" : "image",
           q[i].text ? q[i].text : q[i].image, n_hits, clipcl_index_count(ix), used ? "device" : "host");
    for (int r = 0; r < n_hits; r++) {
      const clipcl_search_hit *h = &hits[(size_t)i * k + r];
      printf("%4d  %.4f  %s\n", r + 1, h->score, h->path);
    }
  }
  if (html) {
    char title[1024];
    snprintf(title, sizeof title, "%s: %.900s", q[0].text ? "text" : "image", q[0].text ? q[0].text : q[0].image);
    if (clipcl_search_write_html(html, title, hits, n_hits, NULL) != CLIPCL_OK) {
      cli_error("search");
      goto done;
    }
  }
  rc = 0;
done:
  cli_session_close(&s);
  clipcl_index_free(ix);
  free(qe), free(hits), free(texts), free(images), free(q);
  return rc;
usage:
  free(q);
  return 2;
}

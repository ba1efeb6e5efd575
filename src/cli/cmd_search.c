/* cmd_search.c: `clipcl search`, text or image queries against an index
 * from the command line: ranked paths with scores, optionally an HTML page
 * of thumbnails. Through the FAISS index when the index has one, else
 * exactly (on the host, or on the device for large jobs). Not here: the
 * index (src/search/index.c), scoring (src/search/ann.c,
 * src/search/search_device.c), the page (src/search/html.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char search_usage[] =
    "usage: clipcl search --index INDEX --model M (--text \"...\" | --image FILE)... [-k 10] [--html OUT.html]\n"
    "                     [--captions] [--exact] [--nprobe N] [--ef-search N] [--root DIR]\n"
    "                     [--model-config NAME|FILE] [--device D]\n";

static void search_help(void) {
  printf("%s\n"
         "Ranks the indexed images (--captions: their captions) by cosine similarity to each query (a\n"
         "text, or an image file) and prints the best k with their scores and paths. --text and --image\n"
         "may be repeated; --html (one query only) writes a page of thumbnails. The model must be the one\n"
         "the index was built with. With a FAISS index the search is approximate: --nprobe (IVF clusters\n"
         "visited, default 32) and --ef-search (HNSW candidates, default max(64, 2k)) trade speed for\n"
         "recall, --exact scores every row. Exact scores are computed on the host for small jobs and on\n"
         "the device from 2^20 query-image pairs on (CLIPCL_SEARCH=host|device forces either).\n"
         "--root says where the collection is when it moved away from the index.\n",
         search_usage);
}

typedef struct {
  const char *text; /* query text, or NULL */
  const char *image;
} query;

/* The stored path as the user can open it: below the root when relative. */
static void print_path(const clipcl_index *ix, const char *p) {
  const char *root = clipcl_index_root(ix);
  if (p[0] != '/' && root) printf("%s/%s\n", root, p);
  else printf("%s\n", p);
}

int cmd_search(int argc, char **argv) {
  cli_eval_opts eo;
  cli_eval_opts_init(&eo);
  const char *index = NULL, *html = NULL, *root = NULL, *v;
  long k = 10, nprobe = 0, ef = 0;
  int exact = 0, captions = 0;
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
    } else if (!strcmp(argv[i], "--root")) {
      if (!(root = cli_value("search", argc, argv, &i))) goto usage;
    } else if (!strcmp(argv[i], "--text")) {
      if (!(q[nq].text = cli_value("search", argc, argv, &i))) goto usage;
      nq++, nt++;
    } else if (!strcmp(argv[i], "--image")) {
      if (!(q[nq].image = cli_value("search", argc, argv, &i))) goto usage;
      nq++;
    } else if (!strcmp(argv[i], "-k") || !strcmp(argv[i], "--k")) {
      if (!(v = cli_value("search", argc, argv, &i)) || cli_int("search", "-k", v, 1, 100000, &k)) goto usage;
    } else if (!strcmp(argv[i], "--nprobe")) {
      if (!(v = cli_value("search", argc, argv, &i)) || cli_int("search", argv[i - 1], v, 1, 1 << 20, &nprobe))
        goto usage;
    } else if (!strcmp(argv[i], "--ef-search")) {
      if (!(v = cli_value("search", argc, argv, &i)) || cli_int("search", argv[i - 1], v, 1, 1 << 20, &ef))
        goto usage;
    } else if (!strcmp(argv[i], "--exact")) {
      exact = 1;
    } else if (!strcmp(argv[i], "--captions")) {
      captions = 1;
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
  int *n_hits = NULL;
  const char **texts = NULL, **images = NULL;
  /* FAISS when there is such an index (and it is wanted), else every row in memory */
  {
    clipcl_index *probe = NULL;
    if (clipcl_index_open(index, 0, &probe) != CLIPCL_OK) {
      cli_error("search");
      goto done;
    }
    int ann = !exact && clipcl_index_ann_factory(probe, captions) != NULL;
    clipcl_index_free(probe);
    if (clipcl_index_open(index, ann ? CLIPCL_INDEX_ANN : CLIPCL_INDEX_EMBEDDINGS, &ix) != CLIPCL_OK) {
      cli_error("search");
      goto done;
    }
  }
  if (root && clipcl_index_set_root(ix, root) != CLIPCL_OK) {
    cli_error("search");
    goto done;
  }
  if (captions && !clipcl_index_has_text(ix)) {
    fprintf(stderr, "clipcl search: %s: the index keeps no caption embeddings (--captions)\n", index);
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
  n_hits = calloc((size_t)nq, sizeof *n_hits);
  texts = malloc((size_t)nq * sizeof *texts);
  images = malloc((size_t)nq * sizeof *images);
  float *te = malloc((size_t)nq * E * sizeof *te), *ie = malloc((size_t)nq * E * sizeof *ie);
  int ni = 0;
  nt = 0;
  if (!qe || !hits || !n_hits || !texts || !images || !te || !ie) {
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
  const char *how;
  char howbuf[160];
  if (!exact && clipcl_index_ann_factory(ix, captions)) {
    clipcl_query_options qo = {captions, 0, (int)nprobe, (int)ef, 0};
    if (clipcl_index_query(ix, qe, nq, (int)k, &qo, hits, n_hits, NULL) != CLIPCL_OK) {
      cli_error("search");
      goto done;
    }
    snprintf(howbuf, sizeof howbuf, "FAISS %s, approximate", clipcl_index_ann_factory(ix, captions));
    how = howbuf;
  } else if (captions) {
    clipcl_query_options qo = {1, 1, 0, 0, 0};
    if (clipcl_index_query(ix, qe, nq, (int)k, &qo, hits, n_hits, NULL) != CLIPCL_OK) {
      cli_error("search");
      goto done;
    }
    how = "scored on the host";
  } else {
    int nh = 0, used = 0;
    if (clipcl_index_search_many(ix, s.model, model_id, qe, nq, (int)k, -1, 0, hits, &nh, &used) != CLIPCL_OK) {
      cli_error("search");
      goto done;
    }
    for (int i = 0; i < nq; i++) n_hits[i] = nh;
    how = used ? "scored on the device" : "scored on the host";
  }
  for (int i = 0; i < nq; i++) {
    printf("%s%s \"%s\": %d of %zu %s (%s)\n", i ? "\n" : "", q[i].text ? "text" : "image",
           q[i].text ? q[i].text : q[i].image, n_hits[i], clipcl_index_count(ix), captions ? "captions" : "images",
           how);
    for (int r = 0; r < n_hits[i]; r++) {
      const clipcl_search_hit *h = &hits[(size_t)i * k + r];
      printf("%4d  %.4f  ", r + 1, h->score);
      print_path(ix, h->path);
    }
  }
  if (html) {
    char title[1024];
    snprintf(title, sizeof title, "%s: %.900s", q[0].text ? "text" : "image", q[0].text ? q[0].text : q[0].image);
    if (clipcl_search_write_html(html, title, hits, n_hits[0], clipcl_index_root(ix)) != CLIPCL_OK) {
      cli_error("search");
      goto done;
    }
  }
  rc = 0;
done:
  cli_session_close(&s);
  clipcl_index_free(ix);
  free(qe), free(hits), free(n_hits), free(texts), free(images), free(q);
  return rc;
usage:
  free(q);
  return 2;
}

/* cmd_index.c: `clipcl index`, build or extend a search index from an image
 * folder, a path list, a CSV/TSV manifest or WebDataset shards. Parses the
 * flags, opens (or creates) the index, checks the model before any
 * encoding, runs clipcl_index_update and prints what happened. Not here:
 * the layout (src/search/index.c), sources and embedding
 * (src/search/update.c), FAISS (src/search/ann.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char index_usage[] =
    "usage: clipcl index --model M (--images DIR|LIST.txt | --data MANIFEST.csv|SHARDS) --out INDEX\n"
    "                    [--root DIR] [--prune] [--index-type auto|exact|FACTORY] [--rebuild-ann]\n"
    "                    [--text-embeddings | --no-text-embeddings] [--part-rows N] [--memory-budget GIB]\n"
    "                    [--csv-img-key K] [--csv-caption-key K] [--csv-separator C]\n"
    "                    [--model-config NAME|FILE] [--batch N] [--workers N] [--device D]\n";

static void index_help(void) {
  printf("%s\n"
         "Embeds a collection into the index folder INDEX, laid out as clip-retrieval lays it out:\n"
         "img_emb/img_emb_{i}.npy (float16, L2-normalised), text_emb/ for captions, metadata/metadata_{i}.csv\n"
         "(image_path, caption, url and the manifest's other columns, row-aligned) and index.json.\n"
         "Sources: an image folder (recursive .png/.jpg/.jpeg), a text file of paths, a CSV/TSV manifest\n"
         "(--csv-img-key, default filepath; --csv-caption-key, default title when present) or WebDataset\n"
         "shards (\"shards/{000000..000009}.tar\"; caption from .txt or .json, which also gives url).\n"
         "Paths are stored relative to the collection root (--root; default the source's folder, or the\n"
         "index's root when the source lies inside it), so a moved collection keeps working: run the\n"
         "command on its new place and nothing is embedded again. An existing index is extended: only\n"
         "items it does not hold are embedded; --prune drops rows whose files are gone. A part is saved\n"
         "every --part-rows rows (default 100000), so an interrupted run keeps what it finished.\n"
         "FAISS (when built in): --index-type auto picks by size (exact below 10,000 rows, IVF{c},Flat\n"
         "while the vectors fit --memory-budget, default half the memory up to 16 GiB, then\n"
         "IVF{c},PQ{m}x8); exact keeps exact search only; any FAISS factory string is taken as is.\n"
         "Captions are embedded too (text_emb/) when a new index's source has them, unless\n"
         "--no-text-embeddings. An index built with another model (weights or config) is refused.\n"
         "Unreadable items are skipped and named on stderr.\n",
         index_usage);
}

int cmd_index(int argc, char **argv) {
  cli_eval_opts eo;
  cli_eval_opts_init(&eo);
  clipcl_index_update_options uo;
  clipcl_index_update_options_init(&uo);
  const char *source = NULL, *out = NULL, *v;
  for (int i = 1; i < argc; i++) {
    int r = cli_eval_opt("index", argc, argv, &i, &eo);
    if (r < 0) return 2;
    if (r > 0) continue;
    const char *a = argv[i];
    if (!strcmp(a, "--images") || !strcmp(a, "--data")) {
      if (!(source = cli_value("index", argc, argv, &i))) return 2;
    } else if (!strcmp(a, "--out")) {
      if (!(out = cli_value("index", argc, argv, &i))) return 2;
    } else if (!strcmp(a, "--root")) {
      if (!(uo.root = cli_value("index", argc, argv, &i))) return 2;
    } else if (!strcmp(a, "--index-type")) {
      if (!(uo.index_type = cli_value("index", argc, argv, &i))) return 2;
    } else if (!strcmp(a, "--prune")) {
      uo.prune = 1;
    } else if (!strcmp(a, "--rebuild-ann")) {
      uo.rebuild_ann = 1;
    } else if (!strcmp(a, "--text-embeddings")) {
      uo.text_embeddings = 1;
    } else if (!strcmp(a, "--no-text-embeddings")) {
      uo.text_embeddings = 0;
    } else if (!strcmp(a, "--part-rows")) {
      long n;
      if (!(v = cli_value("index", argc, argv, &i)) || cli_int("index", a, v, 1, 100000000, &n)) return 2;
      uo.part_rows = (size_t)n;
    } else if (!strcmp(a, "--memory-budget")) {
      long n;
      if (!(v = cli_value("index", argc, argv, &i)) || cli_int("index", a, v, 1, 1 << 20, &n)) return 2;
      uo.memory_budget = (size_t)n << 30;
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      index_help();
      return 0;
    } else {
      fprintf(stderr, "clipcl index: unknown option '%s'\n", a);
      return 2;
    }
  }
  if (!eo.model || !source || !out) {
    fputs(index_usage, stderr);
    return 2;
  }
  uo.img_key = eo.img_key;
  uo.caption_key = eo.caption_key;
  uo.separator = eo.separator;
  int rc = 1;
  cli_session s = {0};
  clipcl_index *ix = NULL;
  /* an existing index is read (and its model checked) before any encoding */
  int existed = clipcl_index_exists(out);
  if (existed && clipcl_index_open(out, 0, &ix) != CLIPCL_OK) {
    cli_error("index");
    goto done;
  }
  if (cli_session_open(&s, "index", &eo, 1)) goto done;
  char model_id[256];
  if (cli_model_id("index", s.model, model_id, sizeof model_id)) goto done;
  if (ix && clipcl_index_check_model(ix, model_id) != CLIPCL_OK) {
    fprintf(stderr, "clipcl index: %s: %s\n", out, clipcl_last_error());
    goto done;
  }
  if (!ix && clipcl_index_create(model_id, clipcl_model_config(s.model)->embed_dim, &ix) != CLIPCL_OK) {
    cli_error("index");
    goto done;
  }
  uo.eval = s.eval;
  clipcl_index_update_stats st;
  clipcl_status rs = clipcl_index_update(ix, out, source, s.model, s.tok, &uo, &st);
  cli_progress_end(&s);
  if (rs != CLIPCL_OK) {
    cli_error("index");
    goto done;
  }
  printf("%s: embedded %zu new images (%zu already indexed, %zu unreadable, %zu pruned); %zu images in the index\n",
         out, st.added, st.present, st.bad, st.pruned, st.count);
  if (st.ann[0])
    printf("%s: FAISS index %s %s\n", out, st.ann, st.ann_built ? "built" : "kept up to date");
  else
    printf("%s: exact search (no FAISS index)\n", out);
  rc = 0;
done:
  clipcl_index_free(ix);
  cli_session_close(&s);
  return rc;
}

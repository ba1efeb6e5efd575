/* cmd_retrieval.c: `clipcl retrieval`: image-text retrieval on a CSV of
 * image-caption pairs (clipcl_retrieval_run), recall@1/5/10 both ways and
 * mean rank as a table and as JSON with CLIP_benchmark's key names. Not
 * here: the metrics (src/eval/retrieval.c) or the grouping of captions by
 * image (src/eval/run.c). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char usage_text[] =
    "usage: clipcl retrieval --model M --data CSV [--json OUT]\n"
    "                        [--csv-img-key filepath] [--csv-caption-key title] [--csv-separator C]\n"
    "                        [--max-bad-fraction 0.01] [--model-config NAME|FILE] [--batch N] [--workers N]\n"
    "                        [--device D]\n";

static void help(void) {
  printf("%s\n"
         "Image-text retrieval (CLIP_benchmark's definitions). Rows naming the same image are one image\n"
         "with several captions. Text-to-image (image_retrieval_recall@k): each caption finds its image in\n"
         "the top k; image-to-text (text_retrieval_recall@k): one of the image's captions is in the top k.\n"
         "Equal scores rank the lower index (image or row order) first. Image paths are relative to the\n"
         "CSV's folder. Rows with a bad caption or an unreadable image are skipped and named on stderr\n"
         "(more than --max-bad-fraction of the rows, default 0.01, fails the run).\n"
         "  --json OUT   image_retrieval_recall@{1,5,10}, text_retrieval_recall@{1,5,10}, *_mean_rank,\n"
         "               *_median_rank, n_images, n_texts, tie_rule, model, data, skipped_rows,\n"
         "               unreadable_images\n",
         usage_text);
}

int cmd_retrieval(int argc, char **argv) {
  cli_eval_opts eo;
  cli_eval_opts_init(&eo);
  const char *data = NULL, *json = NULL;
  for (int i = 1; i < argc; i++) {
    int r = cli_eval_opt("retrieval", argc, argv, &i, &eo);
    if (r < 0) return 2;
    if (r > 0) continue;
    const char **dst = NULL;
    if (!strcmp(argv[i], "--data")) dst = &data;
    else if (!strcmp(argv[i], "--json")) dst = &json;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      help();
      return 0;
    } else {
      fprintf(stderr, "clipcl retrieval: unknown option '%s'\n", argv[i]);
      return 2;
    }
    if (!(*dst = cli_value("retrieval", argc, argv, &i))) return 2;
  }
  if (!eo.model || !data) {
    fputs(usage_text, stderr);
    return 2;
  }
  if (eo.label_key) {
    fprintf(stderr, "clipcl retrieval: --csv-label-key does not apply (captions are read, not labels)\n");
    return 2;
  }
  clipcl_dataset_options d;
  clipcl_dataset_options_init(&d);
  d.kind = CLIPCL_DATA_CSV;
  d.img_key = eo.img_key;
  d.caption_key = eo.caption_key;
  d.separator = eo.separator;
  clipcl_dataset *ds = NULL;
  if (clipcl_dataset_open(data, &d, &ds) != CLIPCL_OK) return cli_error("retrieval");
  int rc = 1;
  cli_session s;
  clipcl_retrieval_result res = {0};
  if (cli_session_open(&s, "retrieval", &eo, 1)) {
    clipcl_dataset_free(ds);
    return 1;
  }
  char model_id[256];
  if (cli_model_id("retrieval", s.model, model_id, sizeof model_id)) goto done;
  if (clipcl_retrieval_run(s.model, s.tok, ds, &s.eval, &res) != CLIPCL_OK) {
    cli_progress_end(&s);
    cli_error("retrieval");
    goto done;
  }
  cli_progress_end(&s);
  const clipcl_retrieval_metrics *m = &res.metrics;
  printf("retrieval on %s: %zu images, %zu captions", data, res.n_images, res.n_texts);
  if (res.bad_rows) printf(", %lld rows skipped", (long long)res.bad_rows);
  printf("\n                   R@1      R@5     R@10   mean rank  median rank\n");
  printf("  text -> image  %6.2f%%  %6.2f%%  %6.2f%%  %9.2f  %11.1f\n", 100 * m->image_recall[0],
         100 * m->image_recall[1], 100 * m->image_recall[2], m->image_mean_rank, m->image_median_rank);
  printf("  image -> text  %6.2f%%  %6.2f%%  %6.2f%%  %9.2f  %11.1f\n", 100 * m->text_recall[0],
         100 * m->text_recall[1], 100 * m->text_recall[2], m->text_mean_rank, m->text_median_rank);
  rc = 0;
  if (json) {
    char *text;
    if (clipcl_retrieval_json(m, &text) != CLIPCL_OK) {
      rc = cli_error("retrieval");
    } else {
      json_t *extra = json_pack("{s:s, s:s, s:I, s:I}", "model", model_id, "data", data, "skipped_rows",
                                (json_int_t)res.bad_rows, "unreadable_images", (json_int_t)res.bad_images);
      rc = cli_write_report("retrieval", json, text, extra);
    }
  }
done:
  clipcl_retrieval_result_free(&res);
  cli_session_close(&s);
  clipcl_dataset_free(ds);
  return rc;
}

/* report.h: what a training run keeps for its outputs besides the
 * checkpoints: the loss history (rebuilt from metrics.jsonl on resume),
 * validation losses, zero-shot results, and report.html with a loss-curve
 * PNG (plot.h). Rank 0 only. Nothing here prints. */
#ifndef CC_TRAIN_REPORT_H
#define CC_TRAIN_REPORT_H
#include <stdio.h>

#include "clipcl.h"

typedef struct {
  long step;
  double epoch, value;
} cc_point;

typedef struct {
  long step;
  double epoch, top1, top5, chance;
} cc_zs_point;

typedef struct {
  cc_point *loss, *val;
  size_t nloss, nval, cap_loss, cap_val;
  cc_zs_point *zs;
  size_t nzs, cap_zs;
  clipcl_zeroshot_result last; /* the last zero-shot run (with embeddings) */
  int have_last;
  char *config_json;
} cc_report;

void cc_report_init(cc_report *r);
void cc_report_free(cc_report *r);
void cc_report_add_loss(cc_report *r, long step, double loss);
void cc_report_add_val(cc_report *r, long step, double epoch, double loss);
/* On resume: keeps the metrics.jsonl lines of steps <= upto (dropping lines a
 * killed run logged after its last checkpoint), rewrites the file, and
 * refills the loss/validation/zero-shot history from it. */
clipcl_status cc_report_load_metrics(cc_report *r, const char *dir, long upto);
/* Zero-shot top-1/top-5 of the model on a labelled image folder (or a CSV
 * with filepath,label); the result is kept for the report and its metrics
 * appended to the history. on_bad reports skipped images. */
clipcl_status cc_report_zeroshot(cc_report *r, clipcl_model *m, clipcl_tokenizer *tok, const char *data,
                                 const char *classnames, const char *templates, int workers, long step,
                                 double epoch, clipcl_bad_sample_fn on_bad, void *user);
/* report.html + loss.png in dir (report.html written atomically). */
clipcl_status cc_report_write(cc_report *r, const char *dir, const char *title);
#endif

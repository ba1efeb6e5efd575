/* train_report.h: what the train command keeps for its outputs besides the
 * checkpoints: the loss history (also rebuilt from metrics.jsonl on resume),
 * validation losses, zero-shot results, and report.html with a loss-curve PNG. */
#ifndef CC_TRAIN_REPORT_H
#define CC_TRAIN_REPORT_H
#include <stdio.h>

#include "clipcl.h"
#include "train/trainer.h"

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
/* On resume: keeps the metrics.jsonl lines of steps <= upto (dropping lines a
 * killed run logged after its last checkpoint), rewrites the file, and
 * refills the loss/validation history from it. */
void cc_report_load_metrics(cc_report *r, const char *dir, long upto);
/* Mean contrastive loss over one epoch of the validation loader (batches of
 * up to n); logged as {"type": "val", ...}. Returns 0, or 1 (printed). */
int cc_report_val_loss(cc_report *r, cc_trainer *t, clipcl_loader *vld, float *pix, int32_t *ids, long n, long step,
                       double epoch, FILE *mf);
/* Zero-shot top-1/top-5 of the model on a labelled image folder (or a CSV
 * with filepath,label), logged as {"type": "zeroshot", ...}; the last run is
 * kept for the report. Returns 0, or 1 (printed). */
int cc_report_zeroshot(cc_report *r, clipcl_model *m, clipcl_tokenizer *tok, const char *data,
                       const char *classnames, const char *templates, int workers, long step, double epoch,
                       FILE *mf);
/* report.html + loss.png in dir. Returns 0, or 1 (printed). */
int cc_report_write(cc_report *r, const char *dir, const char *title);
#endif

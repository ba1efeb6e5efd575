/* reduce.h: summing the parameter gradients over the ranks in buckets while
 * the backward pass still runs, and the ZeRO-1 split of the optimiser state.
 *
 * The flat gradient buffer is cut into buckets of whole residual blocks (in
 * the order the backward pass finishes them: the vision blocks from the last
 * to the first, then the text blocks) and the remaining tensors (embeddings,
 * projections, final norms, logit scale and bias), which are complete only
 * at the end. When the model signals that a block's gradients are enqueued,
 * its bucket's download is enqueued behind them; once downloaded, the bucket
 * is reduce-scattered (each rank sums one part, the same bits everywhere)
 * and, without ZeRO, all-gathered back and uploaded whole. With ZeRO-1 each
 * rank keeps only its part of each bucket: its AdamW moments cover exactly
 * those parts, it updates those parameters, and the parameters are then
 * all-gathered. Bucket size: CLIPCL_BUCKET_MB (default 25, as PyTorch DDP).
 * Not here: the loss (loss.c), the step itself (trainer.c). */
#ifndef CC_TRAIN_REDUCE_H
#define CC_TRAIN_REDUCE_H
#include "dist/dist.h"
#include "model/model.h"

typedef struct {
  size_t start, n;  /* range of the flat buffer */
  size_t chunk;     /* per-rank part: [start + r*chunk, start + min(n, (r+1)*chunk)) */
  size_t mom_off;   /* ZeRO: where this rank's part sits in its moments */
  int pending;      /* blocks still to finish in this backward */
  int blocks;       /* blocks in the bucket (0: the tensors finished last) */
  int state;        /* see reduce.c */
  float *buf;       /* R*chunk: the downloaded gradients, then the gathered sums */
  float *part;      /* chunk: this rank's summed part */
  cl_event ev;
  cc_dist_req *req;
} cc_bucket;

typedef struct {
  cc_model *m;
  cc_dist *d;
  int R, rank, zero, armed;
  int nb;
  cc_bucket *b;
  int *vis_of, *txt_of; /* bucket of each block */
  int *order, norder;   /* buckets in the order they were issued this step */
  int *pos_of;          /* each bucket's place in that order */
  int next_rs, next_ag; /* places whose reduce-scatter / all-gather is the next to post */
  size_t mom_total;     /* ZeRO: elements of this rank's parts (each chunk) */
} cc_reducer;

clipcl_status cc_reducer_create(cc_model *m, cc_dist *d, int zero, cc_reducer **out);
void cc_reducer_free(cc_reducer *r);
/* Before the last micro-batch's backward: zero-filled gradients are summed
 * from here on, as blocks finish (the model's on_block_grads hook). */
void cc_reducer_arm(cc_reducer *r);
/* After the whole backward is enqueued: issues the remaining buckets and
 * completes every exchange. Without ZeRO the gradient buffer then holds the
 * sums; with ZeRO only this rank's parts do. Collective. */
clipcl_status cc_reducer_finish(cc_reducer *r);
/* This rank's part of bucket i: start and length (0 when empty). */
void cc_reducer_part(const cc_reducer *r, int i, size_t *start, size_t *len);
/* ZeRO: all-gathers every rank's parts of the parameters into the parameter
 * buffer. Collective. */
clipcl_status cc_reducer_gather_params(cc_reducer *r);
/* ZeRO: the whole of a per-part buffer (moments, gradients) on root:
 * src holds this rank's parts (at each bucket's mom_off when packed, else
 * at the buckets' own offsets), full (L.total, root only) receives. Collective. */
clipcl_status cc_reducer_gather(cc_reducer *r, cc_view src, int packed, float *full, int root);
/* ZeRO: the inverse for packed buffers: this rank's parts of full (every
 * rank holds full) into dst. */
clipcl_status cc_reducer_scatter_host(cc_reducer *r, const float *full, cc_view dst);
#endif

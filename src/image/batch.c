/* batch.c: clipcl_image_batch: decode + preprocess many images on host
 * threads into one (B, 3, S, S) buffer, with a status per item so the data
 * loader can skip and count bad files. Not here: reading sources (tar, CSV)
 * or choosing seeds; that is the loader's job (src/data/).
 *
 * Items are handed out through an atomic counter, and each item's output
 * depends only on its source and seed, so any thread count gives the same
 * bytes. The calling thread works too; if helper threads cannot start, the
 * batch still completes with fewer of them.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"
#include "util/error.h"

#define CC_BATCH_MAX_THREADS 256

typedef struct {
  const clipcl_image_source *src;
  int n, size;
  const uint64_t *seeds;
  float *out;
  clipcl_status *status;
  atomic_int next;
  pthread_mutex_t lock;
  int n_bad, first_bad;
  char first_msg[1024];
} cc_batch;

static clipcl_status run_item(cc_batch *b, int i, uint8_t *hwc) {
  const clipcl_image_source *s = &b->src[i];
  clipcl_image img = {0, 0, NULL};
  clipcl_status st;
  if (s->path)
    st = clipcl_image_load(s->path, &img);
  else
    st = clipcl_image_decode(s->data, s->len, s->name, &img);
  if (st == CLIPCL_OK) {
    if (b->seeds) {
      uint64_t rng = b->seeds[i];
      cc_box box = cc_rrc_box(img.w, img.h, CC_RRC_SCALE_MIN, CC_RRC_SCALE_MAX, CC_RRC_RATIO_MIN,
                              CC_RRC_RATIO_MAX, &rng);
      st = cc_image_box_u8(&img, box, b->size, hwc);
    } else {
      st = cc_image_center_u8(&img, b->size, hwc);
    }
  }
  clipcl_image_free(&img);
  return st;
}

static void *worker(void *arg) {
  cc_batch *b = arg;
  size_t plane = (size_t)b->size * b->size;
  uint8_t *hwc = malloc(plane * 3);
  for (;;) {
    int i = atomic_fetch_add(&b->next, 1);
    if (i >= b->n) break;
    float *slot = b->out + (size_t)i * 3 * plane;
    clipcl_status st = hwc ? run_item(b, i, hwc)
                           : cc_fail(CLIPCL_ERR_NOMEM, "batch: out of memory for a %d x %d image", b->size, b->size);
    if (st == CLIPCL_OK) {
      cc_image_normalize(hwc, b->size, slot);
    } else {
      memset(slot, 0, 3 * plane * sizeof *slot);
      pthread_mutex_lock(&b->lock);
      b->n_bad++;
      if (i < b->first_bad) {
        b->first_bad = i;
        strncpy(b->first_msg, clipcl_last_error(), sizeof b->first_msg - 1);
        b->first_msg[sizeof b->first_msg - 1] = 0;
      }
      pthread_mutex_unlock(&b->lock);
    }
    if (b->status) b->status[i] = st;
  }
  free(hwc);
  return NULL;
}

clipcl_status clipcl_image_batch(const clipcl_image_source *src, int n, int size, const uint64_t *seeds,
                                 int threads, float *out, clipcl_status *item_status, int *n_failed) {
  if (n_failed) *n_failed = 0;
  if (n < 0 || (n > 0 && (!src || !out)))
    return cc_fail(CLIPCL_ERR_ARG, "image batch: bad arguments (n=%d, src or out NULL)", n);
  if (size < 1 || size > CC_IMAGE_MAX_SIZE)
    return cc_fail(CLIPCL_ERR_ARG, "image batch: size %d is outside 1..%d", size, CC_IMAGE_MAX_SIZE);
  for (int i = 0; i < n; i++)
    if (!src[i].path && !src[i].data)
      return cc_fail(CLIPCL_ERR_ARG, "image batch: item %d has neither a path nor data", i);
  if (n == 0) return CLIPCL_OK;
  if (threads <= 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    threads = cpus > 0 ? (int)(cpus < CC_BATCH_MAX_THREADS ? cpus : CC_BATCH_MAX_THREADS) : 1;
  }
  if (threads > n) threads = n;
  if (threads > CC_BATCH_MAX_THREADS) threads = CC_BATCH_MAX_THREADS;

  cc_batch b = {.src = src, .n = n, .size = size, .seeds = seeds, .out = out, .status = item_status,
                .first_bad = n};
  atomic_init(&b.next, 0);
  if (pthread_mutex_init(&b.lock, NULL) != 0) return cc_fail(CLIPCL_ERR_NOMEM, "image batch: cannot create a mutex");
  pthread_t tid[CC_BATCH_MAX_THREADS];
  int started = 0;
  for (int t = 1; t < threads; t++) {
    if (pthread_create(&tid[started], NULL, worker, &b) != 0) break; /* fewer helpers still finish */
    started++;
  }
  worker(&b);
  for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
  pthread_mutex_destroy(&b.lock);
  if (n_failed) *n_failed = b.n_bad;
  if (b.n_bad)
    cc_fail(CLIPCL_OK, "%s", b.first_msg);
  else
    cc_clear_error();
  return CLIPCL_OK;
}

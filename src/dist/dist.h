/* dist.h: this process's place in a data-parallel job and the collectives the
 * trainer needs, on host memory, over MPI (Open MPI) when the library was
 * built with it and the program was started by a launcher (mpirun, srun);
 * otherwise a one-rank stand-in where every collective is a copy. Used by
 * src/train/ only. Not here: what is exchanged (train/), devices (cl/).
 *
 * Sums are reduced so that every rank gets the same bits: reduce-scatter
 * (each element summed on one rank, in rank order) then all-gather, never an
 * all-reduce whose algorithm might combine in a different order per rank.
 * Waits poll with short sleeps instead of spinning, so a rank waiting for a
 * slower one leaves the CPU to the device threads that share it.
 * Counts are elements; every call checks they fit MPI's int counts. */
#ifndef CC_DIST_H
#define CC_DIST_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

typedef struct cc_dist cc_dist;
typedef struct cc_dist_req cc_dist_req;

/* The process-wide job (started on first use, finalised at exit when this
 * library started MPI). CLIPCL_DIST=off forces one rank. */
clipcl_status cc_dist_get(cc_dist **out);
int cc_dist_rank(const cc_dist *d);
int cc_dist_size(const cc_dist *d);
int cc_dist_local_rank(const cc_dist *d);
int cc_dist_local_size(const cc_dist *d);
int cc_dist_is_mpi(const cc_dist *d);
/* A one-rank job, whatever the launcher says (tests, evaluation helpers). */
cc_dist *cc_dist_self(void);

/* A rank failed where the others cannot learn it (inside a step's
 * exchanges): at exit the job is aborted (MPI_Abort, which ends every rank
 * with a message naming this one) instead of finalised, which would wait for
 * ranks that wait for this one. */
void cc_dist_mark_broken(cc_dist *d);

/* CPUs this process may run on (its affinity mask), and the share of the
 * host's CPUs one of the local ranks should use. */
int cc_dist_cpu_share(const cc_dist *d);

/* recv (R*n) = every rank's send (n), in rank order. */
clipcl_status cc_dist_allgather(cc_dist *d, const float *send, float *recv, size_t n);
/* recv (n) = sum over ranks of their send[rank*n .. rank*n+n), summed in rank order. */
clipcl_status cc_dist_reduce_scatter(cc_dist *d, const float *send, float *recv, size_t n);
/* x (n) summed over ranks in place, same bits on every rank (n small: host scalars). */
clipcl_status cc_dist_sum_d(cc_dist *d, double *x, int n);
clipcl_status cc_dist_max_i64(cc_dist *d, int64_t *x, int n);
clipcl_status cc_dist_min_i64(cc_dist *d, int64_t *x, int n);
clipcl_status cc_dist_bcast(cc_dist *d, void *buf, size_t bytes, int root);
/* recv (R*n, on root only) = every rank's send (n). */
clipcl_status cc_dist_gather(cc_dist *d, const float *send, float *recv, size_t n, int root);
/* recv (n) = root's send[rank*n ..) */
clipcl_status cc_dist_scatter(cc_dist *d, const float *send, float *recv, size_t n, int root);
/* Ring exchange: sends to_left to rank-1 and to_right to rank+1 (either may
 * be NULL: not sent), receives from rank+1 into from_right and from rank-1
 * into from_left (NULL: not received). n floats each. Matches open_clip's
 * neighbour_exchange(_bidir). */
clipcl_status cc_dist_ring(cc_dist *d, const float *to_left, const float *to_right, float *from_left,
                           float *from_right, size_t n);
/* Waits for every rank, sleeping rather than spinning (after rank-0-only work). */
clipcl_status cc_dist_barrier(cc_dist *d);

/* Non-blocking reduce-scatter and all-gather (one request each); progress is
 * made in cc_dist_test/cc_dist_wait. *req is NULL when nothing was posted (one rank). */
clipcl_status cc_dist_ireduce_scatter(cc_dist *d, const float *send, float *recv, size_t n, cc_dist_req **req);
clipcl_status cc_dist_iallgather(cc_dist *d, const float *send, float *recv, size_t n, cc_dist_req **req);
/* 1 when done (the request is freed and *req set to NULL), 0 not yet, < 0 error (status). */
int cc_dist_test(cc_dist_req **req);
clipcl_status cc_dist_wait(cc_dist_req **req);
#endif

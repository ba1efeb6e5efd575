/* dist.c: see dist.h. With CLIPCL_HAVE_MPI the job is MPI_COMM_WORLD (a
 * duplicate with MPI_ERRORS_RETURN, so failures come back as statuses);
 * without it, or when the process was not started by a launcher, one rank. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "dist/dist.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"

#ifdef CLIPCL_HAVE_MPI
#include <mpi.h>
#endif

struct cc_dist {
  int rank, size, local_rank, local_size, mpi;
#ifdef CLIPCL_HAVE_MPI
  MPI_Comm comm;
#endif
};

struct cc_dist_req {
#ifdef CLIPCL_HAVE_MPI
  MPI_Request r;
#endif
  int dummy;
};

static cc_dist g_self = {0, 1, 0, 1, 0
#ifdef CLIPCL_HAVE_MPI
                         , MPI_COMM_NULL
#endif
};
static cc_dist g_job;
static clipcl_status g_status;
static char g_msg[512];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_broken;

cc_dist *cc_dist_self(void) { return &g_self; }
void cc_dist_mark_broken(cc_dist *d) {
  if (d->mpi) g_broken = 1;
}
int cc_dist_rank(const cc_dist *d) { return d->rank; }
int cc_dist_size(const cc_dist *d) { return d->size; }
int cc_dist_local_rank(const cc_dist *d) { return d->local_rank; }
int cc_dist_local_size(const cc_dist *d) { return d->local_size; }
int cc_dist_is_mpi(const cc_dist *d) { return d->mpi; }

int cc_dist_cpu_share(const cc_dist *d) {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  int share = online > 0 ? (int)online : 1;
  if (d->local_size > 1) share = share / d->local_size;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int allowed = CPU_COUNT(&set);
    /* a launcher that bound this rank to its cores has already said how many */
    if (allowed > 0 && allowed < share) share = allowed;
  }
  return share < 1 ? 1 : share;
}

/* Sleeps ~50 us: long enough to leave the core to other threads. */
static void nap(void) {
  struct timespec t = {0, 50000};
  nanosleep(&t, NULL);
}

#ifdef CLIPCL_HAVE_MPI
static void finalize_at_exit(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  if (fin) return;
  if (g_broken) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Finalize();
}

static clipcl_status mpi_fail(int err, const char *call) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", err);
  return cc_fail(CLIPCL_ERR_IO, "%s failed: %s", call, s);
}
#define MPI_TRY(call)                                   \
  do {                                                  \
    int mpi_e_ = (call);                                \
    if (mpi_e_ != MPI_SUCCESS) return mpi_fail(mpi_e_, #call); \
  } while (0)

/* Started by a launcher: Open MPI's mpirun, PMIx (srun --mpi=pmix, prterun)
 * or another PMI. A plain `clipcl train` stays out of MPI entirely. */
static int launched(void) {
  const char *v[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
  for (size_t i = 0; i < sizeof v / sizeof *v; i++)
    if (getenv(v[i])) return 1;
  return 0;
}

static clipcl_status start_mpi(void) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return cc_fail(CLIPCL_ERR_IO, "MPI_Init_thread failed");
    atexit(finalize_at_exit);
  }
  MPI_TRY(MPI_Comm_dup(MPI_COMM_WORLD, &g_job.comm));
  MPI_TRY(MPI_Comm_set_errhandler(g_job.comm, MPI_ERRORS_RETURN));
  MPI_TRY(MPI_Comm_rank(g_job.comm, &g_job.rank));
  MPI_TRY(MPI_Comm_size(g_job.comm, &g_job.size));
  MPI_Comm local;
  MPI_TRY(MPI_Comm_split_type(g_job.comm, MPI_COMM_TYPE_SHARED, g_job.rank, MPI_INFO_NULL, &local));
  MPI_TRY(MPI_Comm_rank(local, &g_job.local_rank));
  MPI_TRY(MPI_Comm_size(local, &g_job.local_size));
  MPI_Comm_free(&local);
  g_job.mpi = 1;
  return CLIPCL_OK;
}
#endif

static void init_once(void) {
  g_job = g_self;
  g_status = CLIPCL_OK;
  const char *mode = getenv("CLIPCL_DIST");
  if (mode && !strcmp(mode, "off")) return;
#ifdef CLIPCL_HAVE_MPI
  if ((mode && !strcmp(mode, "mpi")) || launched()) {
    g_status = start_mpi();
    if (g_status) {
      snprintf(g_msg, sizeof g_msg, "%s", clipcl_last_error());
      g_job = g_self;
    }
  }
#else
  if (mode && !strcmp(mode, "mpi")) {
    g_status = CLIPCL_ERR_UNSUPPORTED;
    snprintf(g_msg, sizeof g_msg, "CLIPCL_DIST=mpi: this libclipcl was built without MPI");
  }
#endif
}

clipcl_status cc_dist_get(cc_dist **out) {
  pthread_once(&g_once, init_once);
  *out = g_status ? NULL : &g_job;
  if (g_status) return cc_fail(g_status, "%s", g_msg);
  return CLIPCL_OK;
}

clipcl_status clipcl_dist_get(clipcl_dist_info *info) {
  if (!info) return cc_fail(CLIPCL_ERR_ARG, "clipcl_dist_get: no output");
  cc_dist *d;
  CC_TRY(cc_dist_get(&d));
  *info = (clipcl_dist_info){d->rank, d->size, d->local_rank, d->local_size, d->mpi};
  return CLIPCL_OK;
}

static clipcl_status check_count(size_t n, int ranks) {
  if (n > (size_t)INT_MAX || (ranks > 1 && n > (size_t)INT_MAX / (size_t)ranks))
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "a collective of %zu elements exceeds MPI's int counts", n);
  return CLIPCL_OK;
}

#ifdef CLIPCL_HAVE_MPI
/* Completes a request by polling. */
static clipcl_status poll_wait(MPI_Request *r, const char *what) {
  for (;;) {
    int done = 0;
    int e = MPI_Test(r, &done, MPI_STATUS_IGNORE);
    if (e != MPI_SUCCESS) return mpi_fail(e, what);
    if (done) return CLIPCL_OK;
    nap();
  }
}
#endif

clipcl_status cc_dist_allgather(cc_dist *d, const float *send, float *recv, size_t n) {
  CC_TRY(check_count(n, d->size));
  if (!d->mpi) {
    if (recv != send) memmove(recv, send, n * sizeof *recv);
    return CLIPCL_OK;
  }
#ifdef CLIPCL_HAVE_MPI
  MPI_Request r;
  MPI_TRY(MPI_Iallgather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, d->comm, &r));
  return poll_wait(&r, "MPI_Iallgather");
#else
  return CLIPCL_OK;
#endif
}

clipcl_status cc_dist_reduce_scatter(cc_dist *d, const float *send, float *recv, size_t n) {
  CC_TRY(check_count(n, d->size));
  if (!d->mpi) {
    if (recv != send) memmove(recv, send, n * sizeof *recv);
    return CLIPCL_OK;
  }
#ifdef CLIPCL_HAVE_MPI
  MPI_Request r;
  MPI_TRY(MPI_Ireduce_scatter_block(send, recv, (int)n, MPI_FLOAT, MPI_SUM, d->comm, &r));
  return poll_wait(&r, "MPI_Ireduce_scatter_block");
#else
  return CLIPCL_OK;
#endif
}

clipcl_status cc_dist_sum_d(cc_dist *d, double *x, int n) {
  if (!d->mpi || n <= 0) return CLIPCL_OK;
#ifdef CLIPCL_HAVE_MPI
  /* gathered and summed in rank order on every rank: the same bits everywhere */
  double *all = malloc((size_t)n * (size_t)d->size * sizeof *all);
  if (!all) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  MPI_Request r;
  int e = MPI_Iallgather(x, n, MPI_DOUBLE, all, n, MPI_DOUBLE, d->comm, &r);
  clipcl_status s = e == MPI_SUCCESS ? poll_wait(&r, "MPI_Iallgather") : mpi_fail(e, "MPI_Iallgather");
  if (!s)
    for (int i = 0; i < n; i++) {
      double acc = 0;
      for (int k = 0; k < d->size; k++) acc += all[(size_t)k * n + i];
      x[i] = acc;
    }
  free(all);
  return s;
#else
  (void)x;
  return CLIPCL_OK;
#endif
}

static clipcl_status reduce_i64(cc_dist *d, int64_t *x, int n, int want_max) {
  if (!d->mpi || n <= 0) return CLIPCL_OK;
#ifdef CLIPCL_HAVE_MPI
  MPI_Request r;
  MPI_TRY(MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_INT64_T, want_max ? MPI_MAX : MPI_MIN, d->comm, &r));
  return poll_wait(&r, "MPI_Iallreduce");
#else
  (void)x;
  (void)want_max;
  return CLIPCL_OK;
#endif
}
clipcl_status cc_dist_max_i64(cc_dist *d, int64_t *x, int n) { return reduce_i64(d, x, n, 1); }
clipcl_status cc_dist_min_i64(cc_dist *d, int64_t *x, int n) { return reduce_i64(d, x, n, 0); }

clipcl_status cc_dist_bcast(cc_dist *d, void *buf, size_t bytes, int root) {
  if (!d->mpi) return CLIPCL_OK;
#ifdef CLIPCL_HAVE_MPI
  /* in pieces of at most 1 GiB: MPI counts are ints */
  for (size_t off = 0; off < bytes;) {
    size_t k = bytes - off < ((size_t)1 << 30) ? bytes - off : ((size_t)1 << 30);
    MPI_Request r;
    MPI_TRY(MPI_Ibcast((char *)buf + off, (int)k, MPI_BYTE, root, d->comm, &r));
    CC_TRY(poll_wait(&r, "MPI_Ibcast"));
    off += k;
  }
  return CLIPCL_OK;
#else
  (void)buf;
  (void)bytes;
  (void)root;
  return CLIPCL_OK;
#endif
}

clipcl_status cc_dist_gather(cc_dist *d, const float *send, float *recv, size_t n, int root) {
  CC_TRY(check_count(n, d->size));
  if (!d->mpi) {
    if (recv != send) memmove(recv, send, n * sizeof *recv);
    return CLIPCL_OK;
  }
#ifdef CLIPCL_HAVE_MPI
  MPI_Request r;
  MPI_TRY(MPI_Igather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, root, d->comm, &r));
  return poll_wait(&r, "MPI_Igather");
#else
  (void)root;
  return CLIPCL_OK;
#endif
}

clipcl_status cc_dist_scatter(cc_dist *d, const float *send, float *recv, size_t n, int root) {
  CC_TRY(check_count(n, d->size));
  if (!d->mpi) {
    if (recv != send) memmove(recv, send, n * sizeof *recv);
    return CLIPCL_OK;
  }
#ifdef CLIPCL_HAVE_MPI
  MPI_Request r;
  MPI_TRY(MPI_Iscatter(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, root, d->comm, &r));
  return poll_wait(&r, "MPI_Iscatter");
#else
  (void)root;
  return CLIPCL_OK;
#endif
}

clipcl_status cc_dist_ring(cc_dist *d, const float *to_left, const float *to_right, float *from_left,
                           float *from_right, size_t n) {
  CC_TRY(check_count(n, 1));
  if (!d->mpi) {
    /* one rank is its own neighbour on both sides */
    if (from_left && to_right) memmove(from_left, to_right, n * sizeof(float));
    if (from_right && to_left) memmove(from_right, to_left, n * sizeof(float));
    return CLIPCL_OK;
  }
#ifdef CLIPCL_HAVE_MPI
  int left = (d->rank - 1 + d->size) % d->size, right = (d->rank + 1) % d->size;
  MPI_Request r[4];
  int k = 0;
  /* tags name the direction of travel, so that with two ranks (left ==
   * right) the two messages between the same pair cannot be confused */
  enum { TO_LEFT = 11, TO_RIGHT = 12 };
  if (from_left) MPI_TRY(MPI_Irecv(from_left, (int)n, MPI_FLOAT, left, TO_RIGHT, d->comm, &r[k++]));
  if (from_right) MPI_TRY(MPI_Irecv(from_right, (int)n, MPI_FLOAT, right, TO_LEFT, d->comm, &r[k++]));
  if (to_left) MPI_TRY(MPI_Isend(to_left, (int)n, MPI_FLOAT, left, TO_LEFT, d->comm, &r[k++]));
  if (to_right) MPI_TRY(MPI_Isend(to_right, (int)n, MPI_FLOAT, right, TO_RIGHT, d->comm, &r[k++]));
  for (int i = 0; i < k; i++) CC_TRY(poll_wait(&r[i], "ring exchange"));
  return CLIPCL_OK;
#else
  return CLIPCL_OK;
#endif
}

clipcl_status cc_dist_barrier(cc_dist *d) {
  if (!d->mpi) return CLIPCL_OK;
#ifdef CLIPCL_HAVE_MPI
  MPI_Request r;
  MPI_TRY(MPI_Ibarrier(d->comm, &r));
  return poll_wait(&r, "MPI_Ibarrier");
#else
  return CLIPCL_OK;
#endif
}

static clipcl_status post(cc_dist *d, const float *send, float *recv, size_t n, cc_dist_req **req, int gather) {
  *req = NULL;
  CC_TRY(check_count(n, d->size));
  if (!d->mpi) {
    if (recv != send) memmove(recv, send, n * sizeof *recv);
    return CLIPCL_OK;
  }
#ifdef CLIPCL_HAVE_MPI
  cc_dist_req *q = calloc(1, sizeof *q);
  if (!q) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  int e = gather ? MPI_Iallgather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, d->comm, &q->r)
                 : MPI_Ireduce_scatter_block(send, recv, (int)n, MPI_FLOAT, MPI_SUM, d->comm, &q->r);
  if (e != MPI_SUCCESS) {
    free(q);
    return mpi_fail(e, gather ? "MPI_Iallgather" : "MPI_Ireduce_scatter_block");
  }
  *req = q;
  return CLIPCL_OK;
#else
  (void)gather;
  return CLIPCL_OK;
#endif
}

clipcl_status cc_dist_ireduce_scatter(cc_dist *d, const float *send, float *recv, size_t n, cc_dist_req **req) {
  return post(d, send, recv, n, req, 0);
}
clipcl_status cc_dist_iallgather(cc_dist *d, const float *send, float *recv, size_t n, cc_dist_req **req) {
  return post(d, send, recv, n, req, 1);
}

int cc_dist_test(cc_dist_req **req) {
  if (!*req) return 1;
#ifdef CLIPCL_HAVE_MPI
  int done = 0;
  int e = MPI_Test(&(*req)->r, &done, MPI_STATUS_IGNORE);
  if (e != MPI_SUCCESS) {
    free(*req);
    *req = NULL;
    return (int)mpi_fail(e, "MPI_Test");
  }
  if (!done) return 0;
#endif
  free(*req);
  *req = NULL;
  return 1;
}

clipcl_status cc_dist_wait(cc_dist_req **req) {
  for (;;) {
    int t = cc_dist_test(req);
    if (t < 0) return (clipcl_status)t;
    if (t) return CLIPCL_OK;
    nap();
  }
}

// faiss_shim.cpp: the extern "C" functions of faiss_shim.h over FAISS's C++
// API (Debian's libfaiss-dev has no C symbols). The only C++ in clipcl: kept
// to this file, built only when CMake finds FAISS, and no exception crosses
// into C. Not here: choosing the index type or when to build (ann.c).
#include "search/faiss_shim.h"

#include <faiss/Index.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <condition_variable>
#include <memory>
#include <mutex>

// Search parameters are set on the index itself: FAISS 1.7.3's HNSW honours
// SearchParametersHNSW::efSearch only in part (the global hnsw.efSearch
// still bounds the search) and IndexRefine does not pass parameters on. So
// searches wanting the same nprobe and efSearch run together, a search
// wanting others waits until they are done (tests/test_index.c checks that
// efSearch and nprobe change what is found).
struct cc_faiss {
  faiss::Index *index;
  std::mutex lock;
  std::condition_variable idle;
  int nprobe = -1, ef = -1, active = 0;
};

namespace {

void say(char *err, size_t cap, const char *what, const char *why) {
  if (err && cap) std::snprintf(err, cap, "%s: %s", what, why);
}

// The index doing the search under transforms (OPQ, PCA) and refinement.
faiss::Index *inner(faiss::Index *idx) {
  for (;;) {
    if (auto *pt = dynamic_cast<faiss::IndexPreTransform *>(idx)) idx = pt->index;
    else if (auto *rf = dynamic_cast<faiss::IndexRefine *>(idx)) idx = rf->base_index;
    else return idx;
  }
}

}  // namespace

extern "C" {

int cc_faiss_available(void) { return 1; }

void cc_faiss_set_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

int cc_faiss_create(const char *factory, int dim, cc_faiss **out, char *err, size_t cap) {
  *out = nullptr;
  try {
    std::unique_ptr<faiss::Index> idx(faiss::index_factory(dim, factory, faiss::METRIC_INNER_PRODUCT));
    // ",RFlat": re-score 4k candidates exactly (FAISS's default is k)
    if (auto *rf = dynamic_cast<faiss::IndexRefine *>(idx.get())) rf->k_factor = 4;
    *out = new cc_faiss;
    (*out)->index = idx.release();
    return 0;
  } catch (const std::exception &e) {
    say(err, cap, factory, e.what());
  } catch (...) {
    say(err, cap, factory, "unknown C++ exception");
  }
  return 1;
}

int cc_faiss_needs_training(const cc_faiss *f) { return f && !f->index->is_trained; }

int cc_faiss_train(cc_faiss *f, const float *x, int64_t n, char *err, size_t cap) {
  try {
    // FAISS's k-means prints a warning to stderr below 39 points per
    // centroid; a library must not print, and small indexes are fine
    faiss::Index *in = inner(f->index);
    if (auto *v = dynamic_cast<faiss::IndexIVF *>(in)) v->cp.min_points_per_centroid = 1;
    if (auto *p = dynamic_cast<faiss::IndexIVFPQ *>(in)) p->pq.cp.min_points_per_centroid = 1;
    if (auto *p = dynamic_cast<faiss::IndexPQ *>(in)) p->pq.cp.min_points_per_centroid = 1;
    f->index->train(n, x);
    return 0;
  } catch (const std::exception &e) {
    say(err, cap, "train", e.what());
  } catch (...) {
    say(err, cap, "train", "unknown C++ exception");
  }
  return 1;
}

int cc_faiss_add(cc_faiss *f, const float *x, int64_t n, char *err, size_t cap) {
  try {
    f->index->add(n, x);
    return 0;
  } catch (const std::exception &e) {
    say(err, cap, "add", e.what());
  } catch (...) {
    say(err, cap, "add", "unknown C++ exception");
  }
  return 1;
}

namespace {
// A search's turn at one efSearch value; released however the search ends.
struct ef_turn {
  cc_faiss *f = nullptr;
  ~ef_turn() {
    if (!f) return;
    std::lock_guard<std::mutex> g(f->lock);
    if (--f->active == 0) f->idle.notify_all();
  }
};
}  // namespace

int cc_faiss_search(const cc_faiss *cf, const float *q, int64_t nq, int k, int nprobe, int ef_search, float *scores,
                    int64_t *ids, char *err, size_t cap) {
  cc_faiss *f = const_cast<cc_faiss *>(cf);  // only for the parameter turn-taking
  try {
    faiss::Index *in = inner(f->index);
    auto *h = dynamic_cast<faiss::IndexHNSW *>(in);
    auto *v = dynamic_cast<faiss::IndexIVF *>(in);
    int want_np = v && nprobe > 0 ? nprobe : v ? (int)v->nprobe : 0;
    int want_ef = h && ef_search > 0 ? ef_search : h ? h->hnsw.efSearch : 0;
    ef_turn turn;
    {
      std::unique_lock<std::mutex> g(f->lock);
      f->idle.wait(g, [&] { return f->active == 0 || (f->nprobe == want_np && f->ef == want_ef); });
      if (f->active == 0) {
        if (v) v->nprobe = (size_t)want_np;
        // an HNSW coarse quantizer ("IVF4096_HNSW32") must explore at least nprobe centroids
        if (auto *qh = v ? dynamic_cast<faiss::IndexHNSW *>(v->quantizer) : nullptr)
          qh->hnsw.efSearch = want_np * 2 > 64 ? want_np * 2 : 64;
        if (h) h->hnsw.efSearch = want_ef;
        f->nprobe = want_np, f->ef = want_ef;
      }
      f->active++;
      turn.f = f;
    }
    static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "FAISS ids are 64-bit");
    f->index->search(nq, q, k, scores, reinterpret_cast<faiss::Index::idx_t *>(ids));
    for (int64_t i = 0; i < nq * k; i++)
      if (ids[i] < 0) scores[i] = -std::numeric_limits<float>::infinity();
    return 0;
  } catch (const std::exception &e) {
    say(err, cap, "search", e.what());
  } catch (...) {
    say(err, cap, "search", "unknown C++ exception");
  }
  return 1;
}

int cc_faiss_write(const cc_faiss *f, const char *path, char *err, size_t cap) {
  try {
    faiss::write_index(f->index, path);
    return 0;
  } catch (const std::exception &e) {
    say(err, cap, "write", e.what());
  } catch (...) {
    say(err, cap, "write", "unknown C++ exception");
  }
  return 1;
}

int cc_faiss_read(const char *path, cc_faiss **out, char *err, size_t cap) {
  *out = nullptr;
  try {
    std::unique_ptr<faiss::Index> idx(faiss::read_index(path, 0));
    if (idx->metric_type != faiss::METRIC_INNER_PRODUCT) {
      say(err, cap, "read", "not an inner-product index");
      return 1;
    }
    *out = new cc_faiss;
    (*out)->index = idx.release();
    return 0;
  } catch (const std::exception &e) {
    say(err, cap, "read", e.what());
  } catch (...) {
    say(err, cap, "read", "unknown C++ exception");
  }
  return 1;
}

int64_t cc_faiss_ntotal(const cc_faiss *f) { return f ? (int64_t)f->index->ntotal : 0; }
int cc_faiss_dim(const cc_faiss *f) { return f ? (int)f->index->d : 0; }

size_t cc_faiss_memory(const cc_faiss *f) {
  if (!f) return 0;
  faiss::Index *in = inner(f->index);
  size_t n = (size_t)f->index->ntotal, bytes = 0;
  if (auto *rf = dynamic_cast<faiss::IndexRefine *>(f->index)) bytes += (size_t)rf->refine_index->sa_code_size() * n;
  if (auto *h = dynamic_cast<faiss::IndexHNSW *>(in)) {
    bytes += h->hnsw.neighbors.size() * sizeof(h->hnsw.neighbors[0]) + h->hnsw.levels.size() * sizeof(int) +
            h->hnsw.offsets.size() * sizeof(size_t);
    if (h->storage) bytes += (size_t)h->storage->sa_code_size() * n;
  } else if (auto *v = dynamic_cast<faiss::IndexIVF *>(in)) {
    bytes += v->code_size * n + n * sizeof(faiss::Index::idx_t) + (size_t)v->nlist * (size_t)v->d * sizeof(float);
  } else {
    bytes += (size_t)in->sa_code_size() * n;
  }
  return bytes;
}

void cc_faiss_free(cc_faiss *f) {
  if (!f) return;
  delete f->index;
  delete f;
}

}  // extern "C"

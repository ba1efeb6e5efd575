/* cmd_serve.c: `clipcl serve`, the search service (clip-retrieval's back-end
 * API, the page, /metrics) over one or more indexes until SIGINT or SIGTERM.
 * Parses flags, opens the indexes (FAISS when they have it, else every
 * embedding in memory for exact search), starts the server and logs
 * requests to stderr. Not here: the service (src/search/serve.c). */
#define _DEFAULT_SOURCE /* sigwait, strndup */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli/cli.h"

static const char serve_usage[] =
    "usage: clipcl serve --index [NAME=]DIR[,[NAME=]DIR...] --model M [--host 127.0.0.1] [--port 1234]\n"
    "                    [--threads 8] [--max-body MIB] [--max-results N] [--timeout S] [--text-cache N]\n"
    "                    [--nprobe N] [--ef-search N] [--exact] [--root DIR] [--quiet]\n"
    "                    [--model-config NAME|FILE] [--device D]\n";

static void serve_help(void) {
  printf("%s\n"
         "Serves the indexes (named after their folders unless NAME= is given; all built with model M)\n"
         "over HTTP with clip-retrieval's back-end API: GET /indices-list, POST /knn-service,\n"
         "POST /metadata, GET /config.json; and GET / (a search page), GET /image?index=NAME&id=N,\n"
         "GET /healthz, GET /metrics (Prometheus). Bodies are parsed as JSON whatever their\n"
         "Content-Type; --max-body (default 16 MiB) and --max-results (default 10000) bound requests,\n"
         "--timeout (default 30 s) idle connections. Image URLs are read only as file:// inside a\n"
         "served collection: the server fetches nothing. Indexes with a FAISS index are searched\n"
         "through it (--nprobe, --ef-search) unless --exact; others exactly, with every embedding in\n"
         "memory. --port 0 picks a free port (printed). Logs one line per request to stderr (--quiet:\n"
         "none). Stops on SIGINT or SIGTERM.\n",
         serve_usage);
}

static void log_line(void *user, const char *line) {
  (void)user;
  char ts[32];
  time_t t = time(NULL);
  struct tm tm;
  strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
  fprintf(stderr, "%s %s\n", ts, line);
}

int cmd_serve(int argc, char **argv) {
  cli_eval_opts eo;
  cli_eval_opts_init(&eo);
  clipcl_server_options so;
  clipcl_server_options_init(&so);
  const char *spec = NULL, *root = NULL, *v;
  int exact = 0, quiet = 0;
  long x;
  so.log = log_line;
  for (int i = 1; i < argc; i++) {
    int r = cli_eval_opt("serve", argc, argv, &i, &eo);
    if (r < 0) return 2;
    if (r > 0) continue;
    const char *a = argv[i];
    if (!strcmp(a, "--index")) {
      if (!(spec = cli_value("serve", argc, argv, &i))) return 2;
    } else if (!strcmp(a, "--host")) {
      if (!(so.host = cli_value("serve", argc, argv, &i))) return 2;
    } else if (!strcmp(a, "--root")) {
      if (!(root = cli_value("serve", argc, argv, &i))) return 2;
    } else if (!strcmp(a, "--port")) {
      if (!(v = cli_value("serve", argc, argv, &i)) || cli_int("serve", a, v, 0, 65535, &x)) return 2;
      so.port = (int)x;
    } else if (!strcmp(a, "--threads")) {
      if (!(v = cli_value("serve", argc, argv, &i)) || cli_int("serve", a, v, 1, 256, &x)) return 2;
      so.threads = (int)x;
    } else if (!strcmp(a, "--max-body")) {
      if (!(v = cli_value("serve", argc, argv, &i)) || cli_int("serve", a, v, 1, 4096, &x)) return 2;
      so.max_body = (size_t)x << 20;
    } else if (!strcmp(a, "--max-results")) {
      if (!(v = cli_value("serve", argc, argv, &i)) || cli_int("serve", a, v, 1, 1000000, &x)) return 2;
      so.max_results = (int)x;
    } else if (!strcmp(a, "--timeout")) {
      if (!(v = cli_value("serve", argc, argv, &i)) || cli_int("serve", a, v, 1, 86400, &x)) return 2;
      so.timeout_s = (int)x;
    } else if (!strcmp(a, "--text-cache")) {
      if (!(v = cli_value("serve", argc, argv, &i)) || cli_int("serve", a, v, 0, 10000000, &x)) return 2;
      so.text_cache = (size_t)x;
    } else if (!strcmp(a, "--nprobe")) {
      if (!(v = cli_value("serve", argc, argv, &i)) || cli_int("serve", a, v, 1, 1 << 20, &x)) return 2;
      so.nprobe = (int)x;
    } else if (!strcmp(a, "--ef-search")) {
      if (!(v = cli_value("serve", argc, argv, &i)) || cli_int("serve", a, v, 1, 1 << 20, &x)) return 2;
      so.ef_search = (int)x;
    } else if (!strcmp(a, "--exact")) {
      exact = 1;
    } else if (!strcmp(a, "--quiet")) {
      quiet = 1;
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      serve_help();
      return 0;
    } else {
      fprintf(stderr, "clipcl serve: unknown option '%s'\n", a);
      return 2;
    }
  }
  if (!spec || !eo.model) {
    fputs(serve_usage, stderr);
    return 2;
  }
  if (quiet) so.log = NULL;
  /* NAME=DIR,NAME=DIR */
  int cap = 1;
  for (const char *p = spec; *p; p++) cap += *p == ',';
  char **names = calloc((size_t)cap, sizeof *names), **dirs = calloc((size_t)cap, sizeof *dirs);
  clipcl_index **ix = calloc((size_t)cap, sizeof *ix);
  int n = 0, rc = 1;
  cli_session s = {0};
  clipcl_server *srv = NULL;
  if (!names || !dirs || !ix) {
    fprintf(stderr, "clipcl serve: out of memory\n");
    goto done;
  }
  for (const char *p = spec; *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    char *item = strndup(p, len);
    if (!item) goto done;
    char *eq = strchr(item, '=');
    if (eq) {
      *eq = 0;
      names[n] = strdup(item);
      dirs[n] = strdup(eq + 1);
    } else {
      size_t l = strlen(item);
      while (l > 1 && item[l - 1] == '/') item[--l] = 0;
      const char *base = strrchr(item, '/');
      names[n] = strdup(base ? base + 1 : item);
      dirs[n] = strdup(item);
    }
    free(item);
    if (!names[n] || !dirs[n]) goto done;
    n++;
    p += len + (e != NULL);
  }
  for (int i = 0; i < n; i++) {
    clipcl_index *probe = NULL;
    if (clipcl_index_open(dirs[i], 0, &probe) != CLIPCL_OK) {
      cli_error("serve");
      goto done;
    }
    int ann = !exact && clipcl_faiss_available() && clipcl_index_ann_factory(probe, 0) &&
              (!clipcl_index_has_text(probe) || clipcl_index_ann_factory(probe, 1));
    clipcl_index_free(probe);
    if (clipcl_index_open(dirs[i], ann ? CLIPCL_INDEX_ANN : CLIPCL_INDEX_EMBEDDINGS, &ix[i]) != CLIPCL_OK) {
      cli_error("serve");
      goto done;
    }
    if (root && clipcl_index_set_root(ix[i], root) != CLIPCL_OK) {
      cli_error("serve");
      goto done;
    }
    if (!clipcl_index_root(ix[i]))
      fprintf(stderr, "clipcl serve: %s: the collection root is unknown (moved?): no images; give --root\n", dirs[i]);
  }
  if (cli_session_open(&s, "serve", &eo, 1)) goto done;
  /* the signals are taken by sigwait below: block them before the server's threads start */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
#ifdef __GLIBC__
  /* glibc gives each request thread (and FAISS's OpenMP threads) a malloc
   * arena of its own; under load the freed memory stays spread over them and
   * the server's resident size kept rising by ~40 MB per 8,000 queries (up
   * to 16 arenas here). Two arenas hold it flat at the same speed
   * (bench/serve_load.py); MALLOC_ARENA_MAX in the environment still wins. */
  if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
#endif
  if (clipcl_server_start(s.model, s.tok, ix, (const char *const *)names, n, &so, &srv) != CLIPCL_OK) {
    cli_error("serve");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    const char *f = clipcl_index_ann_factory(ix[i], 0);
    printf("index %s: %zu images%s, %s\n", names[i], clipcl_index_count(ix[i]),
           clipcl_index_has_text(ix[i]) ? " with captions" : "", f && !exact && clipcl_faiss_available() ? f : "exact search");
  }
  printf("serving on http://%s%s%s:%d/\n", strchr(so.host, ':') ? "[" : "", so.host, strchr(so.host, ':') ? "]" : "",
         clipcl_server_port(srv));
  fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  fprintf(stderr, "clipcl serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  rc = 0;
done:
  clipcl_server_stop(srv);
  cli_session_close(&s);
  for (int i = 0; i < n; i++) clipcl_index_free(ix[i]), free(names[i]), free(dirs[i]);
  if (names && n < cap) free(names[n]), free(dirs[n]);
  free(names), free(dirs), free(ix);
  return rc;
}

/* fuzz_http.c: the HTTP side of clipcl serve, end to end: every input is a
 * request sent over a loopback connection to one server started at the
 * first run (libmicrohttpd's request parsing, the routes, the JSON bodies of
 * /knn-service and /metadata, base64 images, file:// URLs, /image with its
 * query string). No device: the server runs with a stand-in encoder (token
 * ids and pixels hashed to a vector, cc_server_encoder), over a 3-row index
 * of 8-dim embeddings whose collection root holds one PNG, one text file and
 * nothing else. Input, by its first byte:
 *   even: the rest is sent as it is (a raw request, or anything);
 *   odd:  byte 1 picks a route (knn-service, metadata, image, others) and the
 *         rest is its body (POST) or query string (GET), sent in a
 *         well-formed request, so that the fuzzer reaches the handlers.
 * Checked: an answer comes within the timeout, starts with an HTTP status
 * line, and is never a 500 (a client's input is never the server's fault);
 * the server keeps answering. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "search/search.h"

#define DIM 8

static const unsigned char png4x4[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
    0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x02, 0x00, 0x00, 0x00, 0x26, 0x93, 0x09, 0x29, 0x00,
    0x00, 0x00, 0x1c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x3c, 0x21, 0x67, 0xc3, 0x00, 0x03, 0x4c,
    0x0c, 0x0c, 0x0c, 0x16, 0x0f, 0x8f, 0x40, 0x38, 0x8c, 0xe8, 0x32, 0x70, 0x00, 0x00, 0x94, 0xa4, 0x04,
    0x28, 0x01, 0xe2, 0x89, 0xad, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

static clipcl_server *server;
static int port;

/* Stand-in encoders: deterministic, finite, not all zero. */
static clipcl_status enc_text(void *user, const int32_t *ids, float *out) {
  (void)user;
  for (int k = 0; k < DIM; k++) out[k] = 0.01f * (float)(k + 1);
  for (int t = 0; t < 16; t++) out[(unsigned)ids[t] % DIM] += (float)(ids[t] % 97) / 97.0f;
  return CLIPCL_OK;
}

static clipcl_status enc_image(void *user, const float *px, float *out) {
  (void)user;
  for (int k = 0; k < DIM; k++) out[k] = 0.01f * (float)(k + 1) + px[k * 7] * 0.1f;
  return CLIPCL_OK;
}

static void fail(const char *what) {
  fprintf(stderr, "fuzz_http: %s: %s\n", what, clipcl_last_error());
  abort();
}

static void start_server(void) {
  const char *root = fz_dir();
  fz_write(0, "a.png", png4x4, sizeof png4x4);
  fz_write(1, "notes.txt", (const uint8_t *)"not an image\n", 13);
  static clipcl_tokenizer *tk;
  static clipcl_index *ix;
  if (clipcl_tokenizer_create(&tk)) fail("tokenizer");
  if (clipcl_index_create("fuzz", DIM, &ix)) fail("index");
  if (clipcl_index_set_root(ix, root)) fail("root");
  const char *paths[3] = {"a.png", "notes.txt", "missing.jpg"};
  const char *cols[1] = {"caption"};
  const char *vals[3] = {"a red square", "a note \"quoted\" \\ ", ""};
  float emb[3 * DIM];
  for (int i = 0; i < 3 * DIM; i++) emb[i] = (float)((i * 37) % 11) - 5.0f;
  clipcl_index_rows rows = {3, paths, 1, cols, vals, emb, NULL};
  size_t added = 0;
  if (clipcl_index_append(ix, "fuzz", &rows, &added) || added != 3) fail("rows");
  static clipcl_index *list[1];
  list[0] = ix;
  static const char *names[1] = {"fz"};
  clipcl_server_options o;
  clipcl_server_options_init(&o);
  o.port = 0;
  o.threads = 2;
  o.max_body = 1 << 16;
  o.max_inline = 1 << 16;
  o.max_results = 50;
  o.timeout_s = 1;
  o.text_cache = 8;
  cc_server_encoder enc = {DIM, 16, 16, 0, enc_text, enc_image, NULL};
  if (cc_server_start_encoder(&enc, tk, list, names, 1, &o, &server)) fail("server");
  port = clipcl_server_port(server);
}

/* Sends n bytes, half-closes, reads the answer (at most cap bytes kept).
 * Returns the bytes read; when nothing arrives within first_ms, 0 if
 * patient is 0 (an incomplete raw request: the server rightly waits for the
 * rest until its own time-out), else -1 (a hang). */
static long exchange(const char *req, size_t n, char *ans, size_t cap, int first_ms, int patient) {
  /* libFuzzer's timer (SIGALRM) interrupts system calls: each is retried */
  int fd = -1;
  for (;;) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) abort();
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) break;
    if (errno != EINTR) {
      perror("fuzz_http: connect");
      abort(); /* the server is gone */
    }
    close(fd); /* interrupted: start again on a fresh socket */
  }
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break; /* the server may close early (a refused body) */
    off += (size_t)w;
  }
  shutdown(fd, SHUT_WR);
  struct pollfd pf = {fd, POLLIN, 0};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int pr, left = first_ms;
  while ((pr = poll(&pf, 1, left)) < 0 && errno == EINTR) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    left = first_ms - (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    if (left < 0) left = 0;
  }
  if (pr == 0) {
    close(fd);
    ans[0] = 0;
    return patient ? -1 : 0;
  }
  /* read until the first final answer is whole (its Content-Length; the
   * connection may stay open), or until the server closes */
  size_t got = 0, start = 0, need = 0;
  for (;;) {
    char buf[4096];
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) break;
    if (r < 0) {
      int timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
      ans[got] = 0;
      close(fd);
      return timed_out ? -1 : (long)got;
    }
    size_t k = (size_t)r < cap - 1 - got ? (size_t)r : cap - 1 - got;
    memcpy(ans + got, buf, k);
    got += k;
    ans[got] = 0;
    while (!need) {
      char *end = strstr(ans + start, "\r\n\r\n");
      if (!end) break;
      if (!strncmp(ans + start, "HTTP/1.1 100", 12)) { /* an interim answer */
        start = (size_t)(end + 4 - ans);
        continue;
      }
      *end = 0;
      char *cl = strcasestr(ans + start, "\r\nContent-Length:");
      need = cl ? (size_t)(end + 4 - ans) + strtoul(cl + 17, NULL, 10) : cap;
      *end = '\r';
    }
    if ((need && got >= need) || got >= cap - 1) break;
  }
  close(fd);
  if (start) memmove(ans, ans + start, got - start + 1), got -= start;
  return (long)got;
}

static const char *const routes[] = {"/knn-service", "/metadata", "/image", "/config.json", "/indices-list",
                                     "/metrics", "/healthz", "/"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!server) start_server();
  if (size < 1) return 0;
  char *req;
  size_t n;
  if (!(data[0] & 1)) {
    n = size - 1;
    req = malloc(n + 1);
    if (!req) abort();
    memcpy(req, data + 1, n);
  } else {
    int r = size > 1 ? data[1] % (int)(sizeof routes / sizeof *routes) : 0;
    const uint8_t *body = size > 2 ? data + 2 : data;
    size_t bn = size > 2 ? size - 2 : 0;
    int post = r <= 1;
    size_t cap = bn + 512;
    req = malloc(cap);
    if (!req) abort();
    int h;
    if (post)
      h = snprintf(req, cap, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n", routes[r], bn);
    else
      h = snprintf(req, cap, "GET %s?", routes[r]);
    n = (size_t)h;
    memcpy(req + n, body, bn);
    n += bn;
    if (!post) n += (size_t)snprintf(req + n, cap - n, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  }
  static char ans[1 << 20];
  long got = exchange(req, n, ans, sizeof ans, data[0] & 1 ? 5000 : 30, data[0] & 1);
  free(req);
  if (got < 0) {
    fprintf(stderr, "fuzz_http: no answer within 5 s\n");
    abort();
  }
  if (got > 0) {
    if (strncmp(ans, "HTTP/1.", 7) || got < 12) {
      fprintf(stderr, "fuzz_http: not an HTTP answer: %.80s\n", ans);
      abort();
    }
    if (!strncmp(ans + 9, "500", 3)) {
      fprintf(stderr, "fuzz_http: a 500 for a client's request:\n%.2000s\n", ans);
      abort();
    }
  }
  /* and the server still answers */
  static const char ping[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  got = exchange(ping, sizeof ping - 1, ans, sizeof ans, 5000, 1);
  if (got < 12 || strncmp(ans + 9, "200", 3)) {
    fprintf(stderr, "fuzz_http: /healthz after the request: %.200s\n", got > 0 ? ans : "(nothing)");
    abort();
  }
  return 0;
}

/* common.c: helpers shared by subcommands: errors, options, model loading,
 * text lines and image path lists. */
#define _DEFAULT_SOURCE /* DT_DIR, strdup */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

int cli_error(const char *cmd) {
  fprintf(stderr, "clipcl %s: %s\n", cmd, clipcl_last_error());
  return 1;
}

/* Once per process: the first run on a device compiles every kernel it
 * uses, which takes from seconds to minutes with nothing else to show. */
static void on_build(void *user, const char *file, const char *cache_dir) {
  static int told;
  (void)file;
  if (told) return;
  told = 1;
  if (cache_dir)
    fprintf(stderr, "clipcl: compiling the OpenCL kernels for %s (first run only: they are cached in %s)\n",
            (const char *)user, cache_dir);
  else
    fprintf(stderr, "clipcl: compiling the OpenCL kernels for %s (not cached: CLIPCL_CACHE_DIR=off)\n",
            (const char *)user);
}

void cli_announce_builds(clipcl_device *dev) {
  static char name[256];
  clipcl_device_info info;
  if (clipcl_device_get_info(dev, &info) == CLIPCL_OK) snprintf(name, sizeof name, "%s", info.name);
  else snprintf(name, sizeof name, "this device");
  clipcl_device_set_build_callback(dev, on_build, name);
}

clipcl_device *cli_open_device(const char *cmd, const char *spec) {
  clipcl_device *d = NULL;
  if (clipcl_device_open(spec, &d) != CLIPCL_OK) {
    cli_error(cmd);
    return NULL;
  }
  cli_announce_builds(d);
  return d;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "clipcl %s: %s needs a value\n", cmd, argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

int cli_int(const char *cmd, const char *opt, const char *v, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) {
    fprintf(stderr, "clipcl %s: %s %s: expected a whole number from %ld to %ld\n", cmd, opt, v, lo, hi);
    return -1;
  }
  *out = x;
  return 0;
}

clipcl_model *cli_load_model(const char *cmd, clipcl_device *dev, const char *path, const char *config) {
  clipcl_config cfg;
  if (config && clipcl_config_get(config, &cfg) != CLIPCL_OK) {
    cli_error(cmd);
    return NULL;
  }
  clipcl_model *m;
  if (clipcl_model_load(dev, path, config ? &cfg : NULL, &m) != CLIPCL_OK) {
    cli_error(cmd);
    return NULL;
  }
  if (!strcmp(clipcl_model_config_source(m), "inferred"))
    fprintf(stderr,
            "clipcl %s: %s has no clipcl config: inferred from tensor shapes (heads = width/64, exact GELU);"
            " pass --model-config (e.g. ViT-B-32-quickgelu for OpenAI weights) if that is wrong\n",
            cmd, path);
  return m;
}

int cli_read_lines(const char *cmd, const char *path, char ***out) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "clipcl %s: %s: %s\n", cmd, path, strerror(errno));
    return -1;
  }
  char **lines = NULL;
  int n = 0, cap = 0;
  char *line = NULL;
  size_t lcap = 0;
  ssize_t len;
  while ((len = getline(&line, &lcap, f)) >= 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    char *s = line;
    if (n == 0 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF) s += 3;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nl = realloc(lines, (size_t)cap * sizeof *nl);
      if (!nl) break;
      lines = nl;
    }
    lines[n] = strdup(s);
    if (!lines[n]) break;
    n++;
  }
  free(line);
  int err = ferror(f);
  fclose(f);
  if (err) {
    fprintf(stderr, "clipcl %s: %s: read error\n", cmd, path);
    cli_free_lines(lines, n);
    return -1;
  }
  *out = lines;
  return n;
}

void cli_free_lines(char **lines, int n) {
  for (int i = 0; i < n; i++) free(lines[i]);
  free(lines);
}

static int has_image_ext(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot) return 0;
  char e[8];
  size_t i = 0;
  for (dot++; *dot && i < sizeof e - 1; dot++) e[i++] = (char)tolower((unsigned char)*dot);
  e[i] = 0;
  return !strcmp(e, "png") || !strcmp(e, "jpg") || !strcmp(e, "jpeg");
}

typedef struct {
  char **v;
  int n, cap;
} strvec;

static int push(strvec *s, char *p) {
  if (!p) return -1;
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 256;
    char **nv = realloc(s->v, (size_t)s->cap * sizeof *nv);
    if (!nv) {
      free(p);
      return -1;
    }
    s->v = nv;
  }
  s->v[s->n++] = p;
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int walk(const char *dir, strvec *out, int depth) {
  if (depth > 32) return 0;
  DIR *d = opendir(dir);
  if (!d) return -1;
  strvec names = {0};
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    size_t n = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(n);
    if (!p) break;
    snprintf(p, n, "%s/%s", dir, e->d_name);
    push(&names, p);
  }
  closedir(d);
  qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
  for (int i = 0; i < names.n; i++) {
    struct stat st;
    if (stat(names.v[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      walk(names.v[i], out, depth + 1);
      free(names.v[i]);
    } else if (has_image_ext(names.v[i])) {
      push(out, names.v[i]);
    } else {
      free(names.v[i]);
    }
  }
  free(names.v);
  return 0;
}

int cli_image_paths(const char *cmd, const char *spec, char ***paths) {
  struct stat st;
  if (stat(spec, &st) != 0) {
    fprintf(stderr, "clipcl %s: %s: %s\n", cmd, spec, strerror(errno));
    return -1;
  }
  strvec out = {0};
  if (S_ISDIR(st.st_mode)) {
    if (walk(spec, &out, 0) != 0) {
      fprintf(stderr, "clipcl %s: %s: cannot read the directory\n", cmd, spec);
      return -1;
    }
  } else if (has_image_ext(spec)) {
    push(&out, strdup(spec)); /* one image named directly, not a list */
  } else {
    char **lines;
    int n = cli_read_lines(cmd, spec, &lines);
    if (n < 0) return -1;
    const char *slash = strrchr(spec, '/');
    int dirlen = slash ? (int)(slash - spec) : 0;
    for (int i = 0; i < n; i++) {
      if (!lines[i][0]) continue;
      if (lines[i][0] == '/' || !dirlen) {
        push(&out, strdup(lines[i]));
      } else {
        size_t len = (size_t)dirlen + strlen(lines[i]) + 2;
        char *p = malloc(len);
        if (p) snprintf(p, len, "%.*s/%s", dirlen, spec, lines[i]);
        push(&out, p);
      }
    }
    cli_free_lines(lines, n);
  }
  *paths = out.v;
  return out.n;
}

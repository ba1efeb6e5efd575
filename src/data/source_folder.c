/* source_folder.c: image folders for evaluation, as torchvision's ImageFolder
 * lists them: one sub-directory per class, class index = position in the
 * sorted directory names; inside a class every file whose name ends in an
 * image extension (any case), searched recursively with symlinks followed,
 * ordered by (directory path, file name). Not here: decoding (the loader).
 *
 * Differences from torchvision, on purpose: names starting with '.' are
 * skipped (".ipynb_checkpoints", macOS "._x.jpg" would otherwise become a
 * class or a broken sample), and the depth followed is capped so a symlink
 * cycle ends. Extensions torchvision accepts but we cannot decode (bmp, tif,
 * webp, ...) are listed, so they surface as bad samples instead of silently
 * changing the evaluation set.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"
#include "util/error.h"

static const char *const img_ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};

typedef struct {
  char *root; /* directory, from the class directory down */
  char *name;
} fent;

typedef struct {
  fent *v;
  size_t n, cap;
} flist;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int cmp_fent(const void *a, const void *b) {
  const fent *x = a, *y = b;
  int c = strcmp(x->root, y->root);
  return c ? c : strcmp(x->name, y->name);
}

static int is_image_name(const char *name) {
  for (size_t i = 0; i < sizeof img_ext / sizeof *img_ext; i++)
    if (cc_ends_with_ci(name, img_ext[i])) return 1;
  return 0;
}

/* Names in dir (no "." / ".." / hidden), sorted; *n their count. */
static clipcl_status list_dir(const char *dir, char ***names, int *n) {
  *names = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return cc_fail(CLIPCL_ERR_IO, "%s: cannot read directory: %s", dir, strerror(errno));
  char **v = NULL;
  int cnt = 0, cap = 0;
  struct dirent *e;
  clipcl_status s = CLIPCL_OK;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (cnt >= CC_DATA_MAX_NAMES) {
      s = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: more than %d entries", dir, CC_DATA_MAX_NAMES);
      break;
    }
    if (cnt == cap) {
      cap = cap ? cap * 2 : 64;
      char **nv = realloc(v, (size_t)cap * sizeof *nv);
      if (!nv) {
        s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
        break;
      }
      v = nv;
    }
    v[cnt] = strdup(e->d_name);
    if (!v[cnt]) {
      s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
      break;
    }
    cnt++;
  }
  closedir(d);
  if (s != CLIPCL_OK) {
    cc_names_free(v, cnt);
    return s;
  }
  if (cnt) qsort(v, (size_t)cnt, sizeof *v, cmp_str);
  *names = v;
  *n = cnt;
  return CLIPCL_OK;
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Collects image files under dir (rel: its path from the data set root). */
static clipcl_status walk(const char *dir, const char *rel, int depth, flist *out, size_t *total) {
  char **names;
  int n;
  CC_TRY(list_dir(dir, &names, &n));
  clipcl_status s = CLIPCL_OK;
  for (int i = 0; i < n && s == CLIPCL_OK; i++) {
    char *full = cc_path_join(dir, names[i]);
    if (!full) {
      s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
      break;
    }
    if (is_dir(full)) {
      if (depth < CC_DATA_MAX_DEPTH) {
        char *sub = cc_path_join(rel, names[i]);
        if (!sub)
          s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
        else
          s = walk(full, sub, depth + 1, out, total);
        free(sub);
      }
    } else if (is_image_name(names[i])) {
      if (*total >= (size_t)CC_DATA_MAX_NAMES * 10) {
        s = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: more than %d image files", dir, CC_DATA_MAX_NAMES * 10);
      } else if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 256;
        fent *v = realloc(out->v, cap * sizeof *v);
        if (!v)
          s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
        else
          out->v = v, out->cap = cap;
      }
      if (s == CLIPCL_OK) {
        char *root = strdup(rel);
        if (!root) {
          s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
        } else {
          out->v[out->n].root = root;
          out->v[out->n].name = names[i];
          names[i] = NULL;
          out->n++;
          (*total)++;
        }
      }
    }
    free(full);
  }
  cc_names_free(names, n);
  return s;
}

static void flist_free(flist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i].root), free(l->v[i].name);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

clipcl_status cc_folder_open(clipcl_dataset *ds, const char *dir) {
  ds->has_labels = 1;
  ds->has_captions = 0;
  ds->base_dir = strdup("");
  if (!ds->base_dir) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
  char **names;
  int n;
  CC_TRY(list_dir(dir, &names, &n));
  /* classes are the sub-directories */
  int nc = 0;
  for (int i = 0; i < n; i++) {
    char *full = cc_path_join(dir, names[i]);
    if (!full) {
      cc_names_free(names, n);
      return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
    }
    if (is_dir(full))
      names[nc++] = names[i];
    else
      free(names[i]);
    free(full);
  }
  ds->classes = names;
  ds->nclasses = nc;
  if (nc == 0) return cc_fail(CLIPCL_ERR_FORMAT, "%s: no class sub-directories", dir);

  size_t total = 0;
  for (int c = 0; c < nc; c++) {
    flist files = {0};
    char *cdir = cc_path_join(dir, names[c]);
    if (!cdir) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
    clipcl_status s = walk(cdir, names[c], 0, &files, &total);
    free(cdir);
    if (s == CLIPCL_OK && files.n == 0)
      s = cc_fail(CLIPCL_ERR_FORMAT, "%s: class '%s' has no image files (extensions: jpg jpeg png ppm bmp pgm tif tiff webp)",
                  dir, names[c]);
    if (s == CLIPCL_OK) qsort(files.v, files.n, sizeof *files.v, cmp_fent);
    for (size_t i = 0; i < files.n && s == CLIPCL_OK; i++) {
      char *rel = cc_path_join(files.v[i].root, files.v[i].name);
      char *full = rel ? cc_path_join(dir, rel) : NULL;
      cc_row row = {0};
      row.label = c;
      if (!full)
        s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", dir);
      else
        s = cc_arena_put(ds, full, strlen(full), &row.path);
      if (s == CLIPCL_OK) s = cc_arena_put(ds, "", 0, &row.caption);
      if (s == CLIPCL_OK) s = cc_rows_push(ds, &row);
      free(rel);
      free(full);
    }
    flist_free(&files);
    if (s != CLIPCL_OK) return s;
  }
  ds->size = (int64_t)ds->nrows;
  ds->num_labels = nc;
  return CLIPCL_OK;
}

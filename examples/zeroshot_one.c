/* zeroshot_one.c: zero-shot classification of one image with libclipcl, as
 * a program built against the installed library would do it:
 *
 *   zeroshot_one MODEL.safetensors IMAGE CLASS [CLASS ...]
 *
 * prints every class with its probability, best first. Each class becomes
 * the text "a photo of a <class>." (CLIP's default prompt); the image and the
 * texts are embedded, and the cosine similarities, scaled by 100 as CLIP
 * does, go through a softmax. Build it with pkg-config:
 *   cc -std=c11 zeroshot_one.c $(pkg-config --cflags --libs clipcl) -o zeroshot_one
 * or with CMake (examples/CMakeLists.txt: find_package(clipcl)). */
#include <clipcl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what) {
  fprintf(stderr, "zeroshot_one: %s: %s\n", what, clipcl_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: zeroshot_one MODEL.safetensors IMAGE CLASS [CLASS ...]\n");
    return 2;
  }
  const char *model_path = argv[1], *image_path = argv[2];
  const char *const *classes = (const char *const *)argv + 3;
  int nc = argc - 3, rc = 1;

  clipcl_device *dev = NULL;
  clipcl_model *model = NULL;
  clipcl_tokenizer *tok = NULL;
  clipcl_image img = {0, 0, NULL};
  char **prompts = calloc((size_t)nc, sizeof *prompts);
  float *text_emb = NULL, *class_emb = NULL, *pixels = NULL, *image_emb = NULL, *score = NULL;
  int32_t *rank = NULL;

  /* the device named by CLIPCL_DEVICE, else the first GPU, else device 0 */
  if (clipcl_device_open(NULL, &dev) != CLIPCL_OK) { fail("opening a device"); goto done; }
  if (clipcl_model_load(dev, model_path, NULL, &model) != CLIPCL_OK) { fail(model_path); goto done; }
  if (clipcl_tokenizer_create(&tok) != CLIPCL_OK) { fail("tokenizer"); goto done; }
  const clipcl_config *cfg = clipcl_model_config(model);
  int E = cfg->embed_dim, S = cfg->vision.image_size;

  /* the classifier: one normalised text embedding per class */
  text_emb = malloc((size_t)nc * E * sizeof *text_emb);
  class_emb = malloc((size_t)nc * E * sizeof *class_emb);
  if (!prompts || !text_emb || !class_emb) { fprintf(stderr, "zeroshot_one: out of memory\n"); goto done; }
  for (int c = 0; c < nc; c++)
    if (clipcl_template_format(CLIPCL_DEFAULT_TEMPLATE, classes[c], &prompts[c]) != CLIPCL_OK) {
      fail("prompt");
      goto done;
    }
  if (clipcl_encode_texts(model, tok, (const char *const *)prompts, (size_t)nc, NULL, text_emb) != CLIPCL_OK ||
      clipcl_zeroshot_classifier(text_emb, nc, 1, E, class_emb) != CLIPCL_OK) {
    fail("class texts");
    goto done;
  }

  /* the image: decode, resize and centre-crop, normalise, embed */
  pixels = malloc((size_t)3 * S * S * sizeof *pixels);
  image_emb = malloc((size_t)E * sizeof *image_emb);
  if (!pixels || !image_emb) { fprintf(stderr, "zeroshot_one: out of memory\n"); goto done; }
  if (clipcl_image_load(image_path, &img) != CLIPCL_OK || clipcl_image_preprocess(&img, S, pixels) != CLIPCL_OK ||
      clipcl_model_encode_images(model, pixels, 1, image_emb) != CLIPCL_OK) {
    fail(image_path);
    goto done;
  }

  /* every class ranked by cosine similarity (ties: the earlier class) */
  rank = malloc((size_t)nc * sizeof *rank);
  score = malloc((size_t)nc * sizeof *score);
  if (!rank || !score) { fprintf(stderr, "zeroshot_one: out of memory\n"); goto done; }
  if (clipcl_topk(image_emb, 1, class_emb, (size_t)nc, E, nc, 1, rank, score) != CLIPCL_OK) {
    fail("ranking");
    goto done;
  }
  double z = 0;
  for (int r = 0; r < nc; r++) z += exp(100.0 * (score[r] - score[0]));
  for (int r = 0; r < nc; r++)
    printf("%-24s %6.2f%%  (cosine %+.6f)\n", classes[rank[r]], 100.0 * exp(100.0 * (score[r] - score[0])) / z,
           score[r]);
  rc = 0;
done:
  free(rank);
  free(score);
  free(image_emb);
  free(pixels);
  clipcl_image_free(&img);
  free(class_emb);
  free(text_emb);
  for (int c = 0; prompts && c < nc; c++) free(prompts[c]);
  free(prompts);
  clipcl_tokenizer_free(tok);
  clipcl_model_free(model);
  clipcl_device_free(dev);
  return rc;
}

"""test_clipcl.py: the Python package against the `clipcl` command and the
committed reference fixtures (run by tests/test_python.sh after `pip install`):
  - encode_images / encode_texts equal `clipcl embed`'s .npy bit for bit, and
    numpy arrays and PIL images give the same bits as the files;
  - tokenize gives open_clip's ids; text_hidden_states equal transformers'
    CLIPTextModel (fixture) to 1e-5 and `clipcl embed --hidden-states` bitwise;
  - classify ranks as `clipcl zeroshot` does (class and cosine), with the
    default and with given templates;
  - Index.search returns what `clipcl search` prints;
  - failures raise clipcl.Error with the library's message, or TypeError /
    ValueError for misuse on the Python side.
Environment: CLIPCL (the command), SRC (the checkout)."""
import csv
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import clipcl

SRC = os.environ["SRC"]
CMD = os.environ["CLIPCL"]
IMAGES = os.path.join(SRC, "tests", "data", "images")
HIDDEN = os.path.join(SRC, "tests", "data", "hidden")
PNGS = ["png_rgb8_50x77.png", "png_pal4_45x46.png", "png_grey8_33x65.png", "png_rgb8_129x7.png",
        "png_greya8_65x33.png"]
JPGS = ["jpg_444_50x77.jpg", "jpg_420_333x222.jpg", "jpg_grey_129x31.jpg"]
TEXTS = ["a photo of a cat", "a red circle on a blue background", "", "caf\u00e9 \U0001f642"]


def run(*args):
    r = subprocess.run([CMD] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        raise AssertionError("clipcl %s failed: %s" % (" ".join(args), r.stderr))
    return r.stdout


def same_bits(a, b):
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        t = cls.tmp
        cls.model_path = os.path.join(t, "m.safetensors")
        run("init", "--model-config", "clipcl-micro", "--seed", "7", "--out", cls.model_path)
        # a labelled folder: three classes of image files
        cls.data = os.path.join(t, "data")
        cls.classes = {"red": PNGS[:2], "blue_square": PNGS[2:] + JPGS[:1], "green": JPGS[1:]}
        for c, files in cls.classes.items():
            os.makedirs(os.path.join(cls.data, c))
            for f in files:
                shutil.copy(os.path.join(IMAGES, f), os.path.join(cls.data, c, f))
        with open(os.path.join(t, "texts.txt"), "w", encoding="utf-8") as f:
            f.write("".join(x + "\n" for x in TEXTS))
        run("embed", "--model", cls.model_path, "--images", cls.data, "--texts", os.path.join(t, "texts.txt"),
            "--out", os.path.join(t, "e"))
        with open(os.path.join(t, "e.image.txt"), encoding="utf-8") as f:
            cls.embed_paths = f.read().splitlines()
        cls.model = clipcl.Model(cls.model_path)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()
        shutil.rmtree(cls.tmp)

    def test_installed_package_and_library(self):
        self.assertNotIn(os.path.join(SRC, "python"), os.path.abspath(clipcl.__file__))
        self.assertTrue(clipcl.version())
        self.assertGreaterEqual(len(clipcl.devices()), 1)
        self.assertEqual(self.model.config["name"], "clipcl-micro")
        self.assertEqual(self.model.config_source, "metadata")

    def test_images_equal_clipcl_embed(self):
        want = np.load(os.path.join(self.tmp, "e.image.npy"))
        got = self.model.encode_images(self.embed_paths)
        self.assertEqual(got.dtype, np.float32)
        self.assertTrue(same_bits(got, want), "encode_images differs from clipcl embed")

    def test_texts_equal_clipcl_embed(self):
        want = np.load(os.path.join(self.tmp, "e.text.npy"))
        self.assertTrue(same_bits(self.model.encode_texts(TEXTS), want), "encode_texts differs from clipcl embed")

    def test_arrays_and_pil_equal_files(self):
        paths = [os.path.join(IMAGES, f) for f in PNGS]
        want = self.model.encode_images(paths)
        from PIL import Image  # Debian's python3-pil (scripts/bootstrap)
        arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
        self.assertTrue(same_bits(self.model.encode_images(arrays), want), "uint8 arrays differ from files")
        pils = [Image.open(p) for p in paths]  # palette, grey, alpha: converted to RGB
        self.assertTrue(same_bits(self.model.encode_images(pils), want), "PIL images differ from files")
        # a mixed list, not a multiple of the batch, and a non-contiguous array
        m = clipcl.Model(self.model_path, batch=2)
        rgb = np.zeros((40, 30, 3), np.uint8)
        rgb[:, :, 0] = np.arange(30, dtype=np.uint8)[None, :] * 8
        strided = np.zeros((40, 30, 4), np.uint8)
        strided[:, :, :3] = rgb
        mixed = m.encode_images([paths[0], rgb, strided[:, :, :3], paths[1], paths[2]])
        self.assertTrue(same_bits(mixed[[0, 3, 4]], want[:3]))
        self.assertTrue(same_bits(mixed[1], mixed[2]))
        self.assertEqual(m.preprocess(rgb).shape, (3, 32, 32))
        m.close()

    def test_tokenize_matches_open_clip(self):
        with open(os.path.join(HIDDEN, "texts.txt"), encoding="utf-8") as f:
            texts = f.read().splitlines()
        want = np.load(os.path.join(HIDDEN, "ids.npy"))
        got = clipcl.tokenize(texts, context_length=want.shape[1])
        self.assertEqual(got.dtype, np.int32)
        self.assertTrue(np.array_equal(got, want))
        self.assertEqual(self.model.tokenize(["a cat"]).shape, (1, 32))
        self.assertEqual(clipcl.Tokenizer().decode(got[0]), "a photo of a cat")

    def test_hidden_states_equal_transformers(self):
        with open(os.path.join(HIDDEN, "texts.txt"), encoding="utf-8") as f:
            texts = f.read().splitlines()
        m = clipcl.Model(os.path.join(HIDDEN, "model.safetensors"), config=os.path.join(HIDDEN, "config.json"))
        for layer in ("last", "penultimate"):
            want = np.load(os.path.join(HIDDEN, layer + ".npy"))
            got = m.text_hidden_states(texts, layer)
            self.assertEqual(got.shape, want.shape)
            err = float(np.abs(got.astype(np.float64) - want).max())
            self.assertLessEqual(err, 1e-5, "%s: max abs difference %g" % (layer, err))
            run("embed", "--model", m.path, "--model-config", os.path.join(HIDDEN, "config.json"), "--texts",
                os.path.join(HIDDEN, "texts.txt"), "--hidden-states", layer, "--out", os.path.join(self.tmp, "h"))
            cli = np.load(os.path.join(self.tmp, "h.text_hidden.npy"))
            self.assertTrue(same_bits(got, cli), "%s: differs from clipcl embed --hidden-states" % layer)
            # ids in, the same states out
            self.assertTrue(same_bits(m.text_hidden_states(m.tokenize(texts), layer), got))
        self.assertTrue(same_bits(m.text_hidden_states(texts, 1), m.text_hidden_states(texts, "penultimate")))
        with self.assertRaises(clipcl.Error) as cm:
            m.text_hidden_states(texts, 3)  # the tower has 3 blocks
        self.assertIn("does not exist", str(cm.exception))
        with self.assertRaises(ValueError):
            m.text_hidden_states(texts, "first")
        m.close()

    def _zeroshot_cli(self, *extra):
        pred = os.path.join(self.tmp, "pred.csv")
        run("zeroshot", "--model", self.model_path, "--data", self.data, "--predictions", pred, *extra)
        with open(pred, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def test_classify_equals_clipcl_zeroshot(self):
        names = [c.replace("_", " ") for c in sorted(self.classes)]
        tmpl_file = os.path.join(self.tmp, "templates.txt")
        templates = ["a photo of a {}.", "a drawing of the {}", "{}"]
        with open(tmpl_file, "w") as f:
            f.write("\n".join(templates) + "\n")
        for tmpl, extra in ((None, ()), (templates, ("--templates", tmpl_file))):
            rows = self._zeroshot_cli(*extra)
            idx, score = self.model.classify([r["path"] for r in rows], names, tmpl, k=5)
            self.assertEqual(idx.shape, (len(rows), 3))  # k capped at the number of classes
            for r, i, s in zip(rows, idx[:, 0], score[:, 0]):
                self.assertEqual(names[i], r["predicted_label"], r["path"])
                self.assertAlmostEqual(float(s), float(r["score"]), places=8)
            self.assertTrue(np.all(np.diff(score, axis=1) <= 0))
        clf = self.model.zeroshot_classifier(names, templates)
        self.assertEqual(clf.shape, (3, self.model.embed_dim))
        self.assertTrue(np.allclose(np.linalg.norm(clf, axis=1), 1, atol=1e-6))
        with self.assertRaises(ValueError):
            self.model.zeroshot_classifier(names, ["no placeholder"])

    def test_index_search_equals_clipcl_search(self):
        ix_dir = os.path.join(self.tmp, "photos.index")
        run("index", "--model", self.model_path, "--images", self.data, "--out", ix_dir)
        out = run("search", "--model", self.model_path, "--index", ix_dir, "--text", "a red circle", "-k", "4")
        want = [(line.split(None, 2)[2], float(line.split()[1])) for line in out.splitlines()
                if line.strip() and line.split()[0].isdigit()]
        with clipcl.Index(ix_dir) as ix:
            self.assertEqual(len(ix), sum(len(v) for v in self.classes.values()))
            self.assertEqual(ix.model, self.model.identity)
            self.assertEqual(ix.embeddings.shape, (len(ix), self.model.embed_dim))
            hits = ix.search(self.model, text="a red circle", k=4)
            self.assertEqual(len(want), 4)
            self.assertEqual([h.path for h in hits], [p for p, _ in want])
            for h, (_, s) in zip(hits, want):
                self.assertAlmostEqual(h.score, s, places=4)
            # an image query finds the image itself first
            first = ix.paths[0]
            self.assertEqual(ix.search(self.model, image=first, k=1)[0].path, first)
            # another model's queries are refused with the library's message
            other = os.path.join(self.tmp, "other.safetensors")
            run("init", "--model-config", "clipcl-micro", "--seed", "8", "--out", other)
            with clipcl.Model(other) as m2:
                with self.assertRaises(clipcl.Error) as cm:
                    ix.search(m2, text="a red circle")
                self.assertIn(self.model.identity, str(cm.exception))

    def test_errors_carry_the_library_message(self):
        missing = os.path.join(self.tmp, "nope.safetensors")
        with self.assertRaises(clipcl.Error) as cm:
            clipcl.Model(missing)
        self.assertIn(missing, str(cm.exception))
        self.assertLess(cm.exception.status, 0)
        bad = os.path.join(IMAGES, "bad_empty.png")
        with self.assertRaises(clipcl.Error) as cm:
            self.model.encode_images([os.path.join(IMAGES, PNGS[0]), bad])
        self.assertIn("bad_empty.png", str(cm.exception))
        with self.assertRaises(clipcl.Error):
            self.model.encode_images([bad, np.zeros((4, 4, 3), np.uint8)])  # mixed list: decoded one by one
        with self.assertRaises(clipcl.Error) as cm:
            clipcl.Model(self.model_path, config="no-such-config")
        self.assertIn("no-such-config", str(cm.exception))
        with self.assertRaises(clipcl.Error):
            clipcl.Index(os.path.join(self.tmp, "no.index"))
        with self.assertRaises(ValueError):
            self.model.encode_images([np.zeros((4, 4), np.uint8)])
        with self.assertRaises(TypeError):
            self.model.encode_images([np.zeros((4, 4, 3), np.float32)])
        with self.assertRaises(TypeError):
            self.model.encode_texts("not a list")
        with self.assertRaises(clipcl.Error):
            self.model.encode_texts([b"\xff\xfe not UTF-8"])
        m = clipcl.Model(self.model_path)
        m.close()
        with self.assertRaises(ValueError):
            m.encode_texts(["closed"])


if __name__ == "__main__":
    unittest.main()

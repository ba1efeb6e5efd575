#!/usr/bin/env python3
"""make_eval_fixtures.py: writes the evaluation fixtures under tests/data/.

templates_openai.txt and templates_simple.txt: open_clip 2.20.0's
OPENAI_IMAGENET_TEMPLATES and SIMPLE_IMAGENET_TEMPLATES (zero_shot_metadata.py,
MIT licence), one per line with the class slot written "{}". test_text_lists
checks the built-in template sets against them.

Run with the reference environment (tests/tools/setup_pyref.sh):
  PYTHONPATH=/opt/pyref/site /usr/bin/python3 tests/tools/make_eval_fixtures.py
"""
import os

from open_clip import zero_shot_metadata as z

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "data")
for name, seq in [("openai", z.OPENAI_IMAGENET_TEMPLATES), ("simple", z.SIMPLE_IMAGENET_TEMPLATES)]:
    lines = [t("{}") for t in seq]
    with open(os.path.join(out, "templates_%s.txt" % name), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))
    print(name, len(lines))

#!/usr/bin/env bash
# test_search_html.sh: the search results page parses and says what it should.
# tests/test_index writes two pages with awkward paths (spaces, backslashes,
# LF, CR, non-ASCII, invalid UTF-8, quotes and markup characters, percent
# signs, an absolute path) and a relative or absolute base directory. Checks:
# the page is valid UTF-8 and well-formed XML (xml.etree, strict); python's
# html.parser sees every element closed in order (void elements aside); the
# title, the number of hits, their order and scores; each image URL
# percent-decodes to exactly the base joined with the path's bytes (file://
# for absolute paths); alt text is the path with bad bytes and controls as
# U+FFFD. Needs python3 only.
# Env: BUILD (build dir, from ctest); PYTHON overrides the interpreter.
set -euo pipefail
py=${PYTHON:-/usr/bin/python3}
bin=${BUILD:?BUILD not set}/tests/test_index
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" html "$tmp"
"$py" - "$tmp" <<'PYEOF'
import sys, urllib.parse
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

d = sys.argv[1]
# the paths of tests/test_index.c's html mode, in rank order
tricky = [b"plain.jpg", b"dir with space/img 1.png", b"back\\slash.png", b"new\nline.png", b"cr\rlf.png",
          "café/图.jpg".encode(), b"bad\xff\xfeutf8.png", b"quote\"&<tag>'.png", b"trailing\\", b"%41%2F.jpg",
          b"/abs/path/x y.png"]
scores = [0.9 - 0.05 * i for i in range(10)] + [0.1]

def shown(p):
    s = p.decode("utf-8", "replace")
    return "".join("\ufffd" if (ord(c) < 32 and c != "\t") or ord(c) == 127 else c for c in s)

class Balance(HTMLParser):
    VOID = {"meta", "img", "br", "link", "hr", "input"}
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors = [], []
    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
    def handle_startendtag(self, tag, attrs):
        if tag not in self.VOID:
            self.errors.append("self-closed <%s>" % tag)
    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes %s" % (tag, self.stack[-1:] or "nothing"))
        else:
            self.stack.pop()

def check(name, title, base, n):
    raw = open("%s/%s" % (d, name), "rb").read()
    text = raw.decode("utf-8")  # strict: the page must be valid UTF-8
    assert text.startswith("<!DOCTYPE html>"), "no doctype"
    root = ET.fromstring(text)  # strict well-formedness
    b = Balance()
    b.feed(text)
    b.close()
    assert not b.errors and not b.stack, (b.errors, b.stack)
    assert root.find("head/title").text == title, root.find("head/title").text
    assert root.find("head/meta").get("charset") == "utf-8"
    items = root.findall("body/ol/li")
    assert len(items) == n, len(items)
    last = 2.0
    for i, li in enumerate(items):
        p = tricky[i]
        score = float(li.get("data-score"))
        assert abs(score - scores[i]) < 1e-6 and score < last, (i, score)
        last = score
        assert li.get("value") == str(i + 1)
        a, img = li.find("a"), li.find("a/img")
        want = p if p.startswith(b"/") else base.encode() + b"/" + p
        if want.startswith(b"/"):
            want = b"file://" + want
        for url in (a.get("href"), img.get("src")):
            assert url.isascii() and " " not in url, url
            got = urllib.parse.unquote_to_bytes(url)
            assert got == want, (i, url, got, want)
            assert urllib.parse.urlsplit(url).scheme in ("", "file"), url
        assert img.get("alt") == shown(p), (img.get("alt"), shown(p))
        meta = li.find("div")
        assert "".join(meta.itertext()).endswith(shown(p)), "".join(meta.itertext())
    print("ok   %s: %d hits, well-formed, URLs and text as expected" % (name, n))

check("page.html", 'query: "red <circle>" & more', "../images", 11)
check("page_abs.html", "absolute base", "/data/set one", 3)
PYEOF
echo "search pages: all passed"

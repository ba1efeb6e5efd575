#!/usr/bin/env python3
"""gen_tokenizer_corpus.py: writes tests/data/tokenizer_corpus.jsonl, the
parity corpus for tests/test_tokenizer.c: hand-written hard cases plus seeded
random strings, each with the ids open_clip 2.20's tokenizer
(open_clip.get_tokenizer('ViT-B-32')) gives at context lengths 77 and 16.

One JSON object a line:
  text   the input (no NUL, no lone surrogates: the C API takes UTF-8 C strings)
  n      tokens before truncation, SOT and EOT included
  ids77  open_clip.tokenize(text, 77) with the trailing zero padding cut off
  ids16  the same at context length 16
  dec77  open_clip's decode() of ids77 (SOT/EOT spelled out)
  moji   1 when ftfy's heuristic mojibake repair changes the text (clipcl
         does not do that repair, so these are reported, not required)

Run:  PYTHONPATH=/opt/pyref/site /usr/bin/python3 tests/tools/gen_tokenizer_corpus.py
The strings are made up here (no third-party text); the output is committed.
"""
import html.entities
import json
import os
import random

import ftfy
import open_clip
from open_clip.tokenizer import _tokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer_corpus.jsonl")

HAND = [
    "a photo of a fox",
    "",
    " ",
    "   \t\n  ",
    "A PHOTO OF A FOX.",
    "a diagram", "a dog", "a cat",
    "Hello, World! It's 2024.",
    "it's they're we've I'm you'll he'd don't can't won't",
    "IT'S THEY'RE WE'VE I'M YOU'LL HE'D",
    "'s 't 're 've 'm 'll 'd", "'S 'T 'RE", "'ſ 'ſun", "dogs' toys'.", "rock'n'roll", "''quoted''",
    "3.14159 and 1,000,000 and 2024-01-31 and 12:30pm",
    "\u0661\u0662\u0663 \u0967\u0968 \u0e53 \u00bd \u00b2 \u2167 \u216b \u2460",
    "caf\u00e9 CAF\u00c9 na\u00efve r\u00e9sum\u00e9 \u00fcber STRASSE stra\u00dfe",
    "cafe\u0301 decomposed e\u0301 A\u030a o\u0308",
    "\u4e00\u53ea\u732b\u5728\u5e8a\u4e0a",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u30ab\u30bf\u30ab\u30ca",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\uff21\uff22\uff23 \uff41\uff42\uff43 \uff11\uff12\uff13\uff01\u3000\uff1f",
    "\uff76\uff80\uff76\uff85 \uff8a\uff9f \uffe3 \uffe0\uffe1",
    "\u0398\u03b5\u03cc\u03c2 \u039f\u0394\u039f\u03a3 \u03a3 \u03a3\u0391\u03a3. A\u03a3 A\u03a3B \u0391\u03a3' x \u03a3\u0345",
    "\u0130stanbul \u0130 I\u0307 \u0131",
    "\u212a kelvin \u212b \u00df \ufb05 \u1e9e",
    "\u0432\u0441\u0435\u043c \u043f\u0440\u0438\u0432\u0435\u0442 \u041c\u041e\u0421\u041a\u0412\u0410",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "emoji \U0001f600\U0001f431\U0001f436 \U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7 \U0001f44d\U0001f3fd 1\ufe0f\u20e3 \u2764\ufe0f",
    "\U0001f525\U0001f525\U0001f525 lit",
    "&amp; &lt;&gt; &quot;q&quot; &#39;a&#39; &#x27;b&#x27; &nbsp;x&nbsp;",
    "&amp;amp; &amp;lt; &amp;amp;amp;",
    "AT&T and Q&A and R&D",
    "&copy 2020 &copy;2021 &COPY; &Copy;",
    "&notit; &notin; &not &noti",
    "&NTILDE; &Ntilde; &ntilde; &nTILDE; &SZLIG; &EACUTE; P&EACUTE;REZ",
    "&#65;&#x41;&#X41;&#65&#x41 &#0; &#13; &#128; &#x80; &#x9F; &#129;",
    "&#x110000; &#xd800; &#xDFFF; &#1114111; &#99999999999; &#x;&#;&#x&#",
    "&#1; &#8; &#11; &#127; &#xFFFE; &#xFDD0; &#x1F600;",
    "&Jscr;ohn &HilbertSpace;ancock &checkmark;",
    "&amp &lt &gt &ampx &ampamp; &lt3",
    "&xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx;",
    "&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaamp;",
    "<b>bold</b> &amp; more",
    "no tag &amp; here\nline two <b> &amp; tag\nline three &amp; after",
    "first &amp;\nsecond &lt;\n",
    "a < b &amp; c",
    "\u201chello\u201d \u2018world\u2019 \u201ahm\u201b \u201e\u201f \u02bcn",
    "\ufb01 \ufb02 \ufb03 \ufb04 \ufb00 \ufb06 \u0132 \u0133 \u0149 \u01c4 \u01c5 \u01c6 \u01c7 \u01ca",
    "red \x1b[31mtext\x1b[0m and \x1b[1;4mbold\x1b[m \x1b[\u0661m x \x1b[12",
    "\ufeffbom at start",
    "mid\ufeffbom",
    "ctrl\x01\x02\x03\x07\x08\x0b\x0e\x1f\x7f end",
    "sep\x1c\x1d\x1e\x1f",
    "\x1cleading and trailing\x1f",
    "c1 \x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f",
    "c1 \x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f",
    "line\r\nbreaks\rand\u2028separators\u2029end\x85",
    "tabs\tand\u00a0nbsp\u2003em\u3000ideo\u202fnarrow\u205fmath\u1680ogham",
    "zero\u200bwidth\u200cjoiners\u200d\u2060\u180e",
    "\u206a\u206f deprecated \ufff9\ufffa\ufffb\ufffc",
    "<start_of_text> <end_of_text> <START_OF_TEXT> <|startoftext|> <|endoftext|>",
    "a<start_of_text>b <end_of_text><end_of_text>",
    "<\u017ftart_of_text>",
    "a\u0345b \u0345 x\u0345.",
    "\U00031350\U00031351 new cjk \U0001e4d0 nag \U0001e4f0\U0001e4f1",
    "\U00011f02 kawi \U00011f50",
    "private \ue000\uf8ff \U000f0000 unassigned \u0378 \U0001ffff",
    "\ufffd replacement \ufffd\ufffd",
    "mixed1234numbers5678and letters abc123def",
    "under_score hy-phen dot.ted slash/ed back\\slash",
    "!!!??? ... --- *** ### @@@ $$$ %%% ^^^ ((())) [[[]]] {{{}}}",
    "http://example.com/path?query=1&amp;b=2#frag",
    "user@example.com #hashtag @mention",
    "\u00a9 \u00ae \u2122 \u00b0C \u20ac100 \u00a35 \u00a5",
    "x" * 300,
    "ab" * 200,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 5,
    " ".join(["word"] * 100),
    " ".join("the quick brown fox jumps over the lazy dog".split() * 12),
    "\u00e9" * 100,
    "\u4e00" * 50,
    "\U0001f600" * 40,
    "a" + "\u0301" * 30,
    "\u03a3" * 10 + " " + "A\u03a3" * 10,
    # long single words: the heap BPE path, checked against Python's O(n^2) one
    "x" * 3000,
    "abc" * 700,
    "".join(random.Random(7).choice("etaoinshrdlu") for _ in range(2500)),
    "\u00e9t\u00e9" * 300,
]


def mojibake(s, enc):
    return s.encode("utf-8").decode(enc, errors="replace")


WORDS = """a an the of in on at with and or photo picture image drawing painting sketch
rendering close-up view cropped bright dark blurry good bad large small tiny big
dog cat bird fox horse cow sheep car truck bus train plane boat bicycle person man
woman child people group street city beach mountain forest river lake sky sunset
night day snow rain table chair bed sofa kitchen room house building bridge tower
red green blue yellow black white orange purple pink brown gray colorful old new
sitting standing running walking flying eating sleeping playing looking holding
two three four five many several some one my our their its it's isn't don't we're
you've they'll she'd i'm""".split()

TEMPLATES = ["a photo of a {}.", "a bad photo of the {}.", "a cropped photo of a {}.",
             "itap of a {}.", "art of the {}.", "a close-up photo of my {}!", "{}"]

POOLS = {
    "ascii": [chr(c) for c in range(0x20, 0x7F)],
    "digits": list("0123456789") + ["\u0661", "\u0967", "\u0e53", "\u00bd", "\u00b2", "\u2167", "\u2460", "\uff15"],
    "space": ["\t", "\n", "\x0b", "\x0c", "\r", " ", "\x85", "\xa0", "\u1680", "\u2000", "\u2009", "\u200a",
              "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\x1c", "\x1f", "\u200b", "\u180e"],
    "control": [chr(c) for c in list(range(1, 0x20)) + list(range(0x7F, 0xA0))] + ["\ufeff", "\u206a", "\ufffc"],
    "latin": [chr(c) for c in range(0xC0, 0x250)],
    "combining": [chr(c) for c in range(0x300, 0x370)] + ["\u0345", "\u20e3", "\ufe0f"],
    "greek": [chr(c) for c in range(0x391, 0x3CA)] + ["\u03a3"] * 6,
    "cyrillic": [chr(c) for c in range(0x410, 0x450)],
    "cjk": [chr(c) for c in range(0x4E00, 0x4E80)] + [chr(c) for c in range(0x3041, 0x30FF)] +
           [chr(c) for c in range(0xAC00, 0xAC40)],
    "width": [chr(c) for c in range(0xFF01, 0xFFEF)] + ["\u3000"],
    "lig": list("\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06\u0132\u0133\u0149\u01c4\u01c5\u01c6\u01c7\u01c8\u01c9\u01ca\u01cb\u01cc\u01f1\u01f2\u01f3"),
    "quotes": list("\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u02bc'\"`\u00b4"),
    "emoji": ["\U0001f600", "\U0001f431", "\U0001f436", "\u200d", "\U0001f3fd", "\U0001f1eb", "\U0001f1f7",
              "\u2764", "\ufe0f", "\U0001fae8", "\U0001f9d1", "\u2b50", "\U0001f4f7"],
    "special": ["\u0130", "\u0131", "\u017f", "\u212a", "\u212b", "\u00df", "\u1e9e", "\u0345", "\U00031350",
                "\U0001e4d0", "\U0001e4f5", "\U00011f02", "\u03c2", "\u1fbe", "\u0390", "\u1e9b"],
    "ansi": ["\x1b[31m", "\x1b[0m", "\x1b[1;4m", "\x1b[m", "\x1b[", "\x1b[12", "\x1b"],
    "entity": ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x27;", "&nbsp;", "&NTILDE;", "&notit;", "&amp",
               "&#65", "&#x1F600;", "&#0;", "&#128;", "&copy", "&", "&#", "&#x", "<", ";", "#", "&amp;lt;",
               "&SZLIG;", "&Eacute;", "&EACUTE;", "&hellip;", "&mdash;", "&rsquo;", "&ldquo;", "&#8217;"],
    "contraction": ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'\u017f", "'"],
    "sot": ["<start_of_text>", "<end_of_text>", "<|startoftext|>"],
}
HTML5_NAMES = sorted(html.entities.html5)


def rand_string(rng):
    kind = rng.random()
    if kind < 0.35:
        # caption-like
        n = rng.randint(1, 14)
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words = [w.upper() if rng.random() < 0.3 else w.capitalize() for w in words]
        s = rng.choice(TEMPLATES).format(" ".join(words))
        if rng.random() < 0.3:
            s = s.replace(" ", rng.choice(["  ", " \t", "\n", "\u00a0", " "]))
        if rng.random() < 0.2:
            s = rng.choice(["&amp; ", "\u201c", "\ufeff", "  ", "\U0001f600 "]) + s + rng.choice(["!", "\u201d", " &lt;3", "", "..."])
        return s
    if kind < 0.85:
        # mixtures from the pools
        pools = rng.sample(sorted(POOLS), rng.randint(1, 4))
        n = rng.randint(1, 40)
        parts = []
        for _ in range(n):
            p = rng.choice(pools)
            if p == "entity" and rng.random() < 0.3:
                name = rng.choice(HTML5_NAMES)
                parts.append("&" + (name.upper() if rng.random() < 0.3 else name))
            else:
                parts.append(rng.choice(POOLS[p]))
            if rng.random() < 0.3:
                parts.append(rng.choice(WORDS))
            if rng.random() < 0.25:
                parts.append(" ")
        return "".join(parts)
    if kind < 0.92:
        # any code point at all (assigned or not), no NUL or surrogates
        out = []
        for _ in range(rng.randint(1, 20)):
            while True:
                c = rng.choice([rng.randint(1, 0x2FF), rng.randint(0x300, 0xFFFF), rng.randint(0x10000, 0x10FFFF)])
                if not (0xD800 <= c <= 0xDFFF):
                    break
            out.append(chr(c))
        return "".join(out)
    # long text: more than 77 tokens
    n = rng.randint(60, 160)
    return " ".join(rng.choice(WORDS + ["\u4e00\u53ea", "&amp;", "2024", "\U0001f600", "caf\u00e9"]) for _ in range(n))


def entry(text):
    n = len(_tokenizer.encode(text)) + 2
    ids77 = open_clip.tokenize([text], 77)[0].tolist()
    ids16 = open_clip.tokenize([text], 16)[0].tolist()
    tok = open_clip.get_tokenizer("ViT-B-32")
    assert tok([text], 77)[0].tolist() == ids77

    def trim(a):
        while a and a[-1] == 0:
            a.pop()
        return a

    moji = int(ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False))
    ids77 = trim(ids77)
    return {"text": text, "n": n, "ids77": ids77, "ids16": trim(ids16), "dec77": _tokenizer.decode(ids77),
            "moji": moji}


def main():
    rng = random.Random(20240531)
    texts = list(HAND)
    # mojibake: UTF-8 read as a single-byte code page (marked by ftfy's own judgement)
    for s in ["caf\u00e9 au lait", "\u201cquoted\u201d", "na\u00efve", "\u00fcber", "\U0001f600 smile",
              "voil\u00e0 le travail", "\u4e00\u53ea\u732b"]:
        for enc in ["latin-1", "cp1252", "cp1251", "mac_roman"]:
            texts.append(mojibake(s, enc))
    seen = set(texts)
    while len(texts) < 1400:
        s = rand_string(rng)
        if "\x00" in s or s in seen:
            continue
        seen.add(s)
        texts.append(s)
    rows = []
    for s in texts:
        assert "\x00" not in s
        try:
            rows.append(entry(s))
        except Exception as e:  # keep strings open_clip itself cannot take out
            print("skipped (open_clip raised %s): %r" % (type(e).__name__, s[:60]))
    tmp = OUT + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=True) + "\n")
    os.replace(tmp, OUT)
    print("wrote %s: %d strings, %d marked mojibake, %d longer than 77 tokens" % (
        os.path.relpath(OUT, ROOT), len(rows), sum(r["moji"] for r in rows), sum(r["n"] > 77 for r in rows)))


if __name__ == "__main__":
    main()

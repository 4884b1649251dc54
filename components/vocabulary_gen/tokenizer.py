"""Text standardization and tokenization as rules, run by TensorFlow or by Arrow.

A Tokenizer lowercases, applies RE2 replacements in order, then splits on ASCII whitespace.
Called on a string tensor it is a TensorFlow function: the preprocessing_fn runs it, so it is part
of the TransformGraph and of the served model. VocabularyGen's Beam workers run the same rules
with Arrow's kernels (the same RE2 engine) on documents of printable-or-control ASCII without NUL,
where both give the same tokens (tests compare them on random ASCII); any other document goes
through the TensorFlow function. Workers that see only such documents never import TensorFlow,
which is most of the cost of a short Beam job.

A counter needs less: the rules at the end that act within a word (lowercasing, a replacement
of runs of one non-whitespace character class, see `_within_words`) give the same tokens
whether they run over the text or over each distinct word, so `prepare_ascii` stops before them
and `finish_ascii` runs them once per distinct word after counting.
"""

import dataclasses
import functools
import re
import warnings
from typing import Tuple

try:  # Python's own regex parser: the shape of a pattern (RE2 judges its characters).
    from re import _parser as sre_parse
except ImportError:  # Python < 3.11
    import sre_parse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """lowercase, then each (RE2 pattern, rewrite) of replacements, then split on whitespace."""
    lowercase: bool = True
    replacements: Tuple[Tuple[str, str], ...] = ()

    def standardize(self, text):
        """A string tensor, standardized (TensorFlow)."""
        import tensorflow as tf  # Here, not above: Arrow-only workers never load it.
        if self.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        for pattern, rewrite in self.replacements:
            text = tf.strings.regex_replace(text, pattern, rewrite)
        return text

    def __call__(self, text):
        """A [batch] string tensor to a ragged [batch, None] tensor of tokens (TensorFlow)."""
        import tensorflow as tf
        return tf.strings.split(self.standardize(text))

    def tokenize_ascii(self, documents, max_tokens=None):
        """The tokens of Arrow string documents that all pass `is_plain_ascii`, flattened.

        Only the first max_tokens of each document, if set. Same tokens as __call__ (where
        tf.strings.lower is ASCII lowercasing; the split's whitespace is " \\t\\n\\v\\f\\r").
        """
        if max_tokens is None:
            tokens = self.finish_ascii(
                pc.ascii_split_whitespace(self.prepare_ascii(documents)).flatten())
        else:  # Every rule before the split: a document's first tokens are its tokens' first.
            for step in self._steps:
                documents = _apply(step, documents)
            # Arrow keeps an empty token for leading or trailing whitespace, TensorFlow does not.
            tokens = _first(pc.ascii_split_whitespace(pc.ascii_trim_whitespace(documents)),
                            max_tokens)
        return tokens.filter(pc.greater(pc.binary_length(tokens), 0))

    def prepare_ascii(self, documents):
        """Arrow string documents that all pass `is_plain_ascii`, with the rules applied that
        must see the whole text: those before the rules that act within a word. Their words
        (split on whitespace, by Arrow or by a counter) become tokens by `finish_ascii`."""
        for step in self._steps[:self._words_from]:
            documents = _apply(step, documents)
        return documents

    def finish_ascii(self, words):
        """The token each word of the prepared documents becomes (empty: none), word for word.
        Cheaper on the distinct words than on all: counts of words map to counts of tokens."""
        for step in self._steps[self._words_from:]:
            words = _apply(step, words)
        return words

    @functools.cached_property
    def _steps(self):
        return ((_LOWERCASE,) if self.lowercase else ()) + tuple(self.replacements)

    @functools.cached_property
    def _words_from(self):
        """Where the rules that act within a word, up to the last, begin."""
        start = len(self._steps)
        while start and (self._steps[start - 1] == _LOWERCASE
                         or _within_words(*self._steps[start - 1])):
            start -= 1
        return start


_LOWERCASE = ("lowercase",)
_WHITESPACE = " \t\n\v\f\r"  # What tf.strings.split and Arrow's ascii split split on.


def _apply(step, strings):
    if step == _LOWERCASE:
        return pc.ascii_lower(strings)
    pattern, rewrite = step
    return pc.replace_substring_regex(strings, pattern, rewrite)


def _within_words(pattern, rewrite):
    """True if replacing pattern by rewrite in a text is the same as replacing it in each of
    the text's whitespace-separated words: the pattern is one character class (or literal)
    repeated at least once, none of whose characters is whitespace, and the rewrite is plain
    text without whitespace. Then every match lies inside a word and is found there alike.
    Anything else (alternation other than of single characters, anchors, a pattern Python
    cannot parse) is False: it runs on the whole text.
    """
    if any(c in rewrite for c in _WHITESPACE + "\\"):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Possible nested set": not a single class.
            parsed = list(sre_parse.parse(pattern))
    except (re.error, RecursionError, OverflowError):
        return False
    if len(parsed) != 1:
        return False
    op, argument = parsed[0]
    least = 1
    if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
        least, _, repeated = argument
        repeated = list(repeated)
        if not 1 <= least <= _RUN or len(repeated) != 1:
            return False
        op, _ = repeated[0]
    if op not in (sre_parse.LITERAL, sre_parse.IN):
        return False
    # RE2, which runs the rule, judges the class: a run of any whitespace character must give
    # no match.
    runs = pa.array([c * _RUN for c in _WHITESPACE], pa.large_string())
    return not pc.any(pc.match_substring_regex(runs, pattern)).as_py()


_RUN = 64  # Whitespace characters in a row that a rule within words must not match.


def is_plain_ascii(document):
    """True if the Arrow kernels tokenize this document (bytes) exactly as TensorFlow does.

    NUL is out: tf.strings.lower(encoding="utf-8") stops at it.
    """
    return document.isascii() and b"\0" not in document


def plain_ascii_mask(documents):
    """is_plain_ascii of each document of an Arrow (large) binary array, as a numpy bool array,
    computed on the array's bytes at once."""
    offsets = np.frombuffer(documents.buffers()[1], np.int64)[
        documents.offset:documents.offset + len(documents) + 1]
    data = np.frombuffer(documents.buffers()[2] or b"", np.uint8)[offsets[0]:offsets[-1]]
    if not len(data) or (data.min() > 0 and data.max() < 0x80):  # Two passes, no temporary.
        return np.ones(len(documents), bool)
    bad = (data >= 0x80) | (data == 0)
    bad_before = np.concatenate([[0], np.cumsum(bad, dtype=np.int64)])
    relative = offsets - offsets[0]
    return bad_before[relative[1:]] == bad_before[relative[:-1]]


def _first(lists, n):
    """The first n values of each list of a ListArray, flattened."""
    offsets = np.asarray(lists.offsets)
    lengths = np.minimum(np.diff(offsets), n)
    kept_before = np.cumsum(lengths) - lengths  # Values kept from the lists before each one.
    indices = np.arange(lengths.sum()) + np.repeat(offsets[:-1] - kept_before, lengths)
    return lists.values.take(pa.array(indices))

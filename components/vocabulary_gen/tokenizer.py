"""Text standardization and tokenization as rules, run by TensorFlow or by Arrow.

A Tokenizer lowercases, applies RE2 replacements in order, then splits on ASCII whitespace.
Called on a string tensor it is a TensorFlow function: the preprocessing_fn runs it, so it is part
of the TransformGraph and of the served model. VocabularyGen's Beam workers run the same rules
with Arrow's kernels (the same RE2 engine) on documents of printable-or-control ASCII without NUL,
where both give the same tokens (tests compare them on random ASCII); any other document goes
through the TensorFlow function. Workers that see only such documents never import TensorFlow,
which is most of the cost of a short Beam job.
"""

import dataclasses
from typing import Tuple

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
        if self.lowercase:
            documents = pc.ascii_lower(documents)
        for pattern, rewrite in self.replacements:
            documents = pc.replace_substring_regex(documents, pattern, rewrite)
        # Arrow keeps an empty token for leading or trailing whitespace, TensorFlow does not.
        tokens = pc.ascii_split_whitespace(pc.ascii_trim_whitespace(documents))
        if max_tokens is not None:
            tokens = _first(tokens, max_tokens)
        else:
            tokens = tokens.flatten()
        return tokens.filter(pc.greater(pc.binary_length(tokens), 0))


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
    bad = (data >= 0x80) | (data == 0)
    if not bad.any():
        return np.ones(len(documents), bool)
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

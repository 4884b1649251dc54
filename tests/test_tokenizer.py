"""The text rules run by Arrow and by TensorFlow give the same tokens where Arrow runs them."""

import random
import subprocess
import sys

import pyarrow as pa
import pytest
import tensorflow as tf

from tfx_embeddings.components.vocabulary_gen import tokenizer
from tfx_embeddings.pipeline.demo import text

# Every ASCII character but NUL, and what the rules look for: line breaks in all spellings,
# punctuation runs, whitespace runs.
PIECES = [chr(i) for i in range(1, 128)] + [
    "<br>", "<BR />", "<br\t/>", "<br/ >", "Word", "it's", "--", "...", " ", "  \t", "\n\r\x0b\x0c"]


def _random_documents(count, seed=7):
    rng = random.Random(seed)
    documents = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30)))
                 for _ in range(count)]
    return documents + ["", " ", "\t\n", " leading and trailing ", "UPPER lower"]


# Rules that act within words (run on distinct words after the split) and rules that do not,
# in every order: the project's, all within words, one that is not last, none.
TOKENIZERS = {
    "project": text.tokenize,
    "within_words": tokenizer.Tokenizer(replacements=((r"[0-9]+", "#"), ("e", "E"), (r"\.", ""),
                                                      (r"[!?]{2,}", "!"))),
    "spacing_last": tokenizer.Tokenizer(replacements=((r"[!?]", ""), (r"\.", " "))),
    "lowercase_only": tokenizer.Tokenizer(),
    # Rules that change their own output: each must run once (on the text, then within words).
    "not_idempotent": tokenizer.Tokenizer(replacements=(("x", "x x"), ("a", "aa"))),
    "none": tokenizer.Tokenizer(lowercase=False),
}


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("max_tokens", [None, 1, 3])
def test_arrow_and_tensorflow_tokens_are_the_same_on_plain_ascii(name, max_tokens):
    rules = TOKENIZERS[name]
    documents = _random_documents(3000)
    assert all(tokenizer.is_plain_ascii(d.encode()) for d in documents)
    expected = rules(tf.constant(documents))
    if max_tokens is not None:
        expected = expected[:, :max_tokens]
    ours = rules.tokenize_ascii(pa.array(documents, pa.large_string()), max_tokens)
    assert [t.encode() for t in ours.to_pylist()] == expected.flat_values.numpy().tolist()
    assert len(ours) > 2000  # The documents do make tokens.


def test_rules_within_words_wait_for_the_split():
    """Which rules run on each distinct word instead of the text: the count's shortcut."""
    assert text.tokenize._words_from == 2  # Lowercase and <br>: on the text; punctuation: words.
    assert TOKENIZERS["within_words"]._words_from == 0
    assert TOKENIZERS["spacing_last"]._words_from == 3  # All on the text.
    assert TOKENIZERS["not_idempotent"]._words_from == 2
    within = [(text._PUNCTUATION, ""), ("[!?]+", "x"), ("a|b", ""), ("a", ""), (r"\w{2,}", "w"),
              ("(?i)[a-z]", "")]
    across = [(r"<br\s*/?>", " "), (r"\s+", " "), ("x*", ""), (".", ""), ("[^a]", ""),
              (r"\W", ""), ("^a", ""), (r"a\b", ""), ("ab", ""), ("[[:punct:]]", ""),
              (r"\pP", ""), ("[!]", " "), ("[!]", "\\0\\0"), ("a{65}", "")]
    assert [rule for rule in within if not tokenizer._within_words(*rule)] == []
    assert [rule for rule in across if tokenizer._within_words(*rule)] == []


def test_only_plain_ascii_takes_the_arrow_path():
    # NUL: tf.strings.lower stops there, Arrow would not.
    assert tf.strings.lower("AB\0CD", encoding="utf-8").numpy() == b"ab"
    assert tokenizer.is_plain_ascii(b"plain \x01\x7f text")
    assert not tokenizer.is_plain_ascii(b"AB\0CD")
    assert not tokenizer.is_plain_ascii("É".encode())


@pytest.mark.parametrize("documents", [
    [b"plain", b"", b"\x01\x7f edges", b"AB\0CD", "\u00c9".encode(), b"\x80", b"ok", b"\0"],
    [b"all", b"plain \x01\x7f", b""],
    [b"ascii", b"with\0NUL", b""],  # NUL alone: ASCII, yet not plain.
    [b"", b""],
])
def test_the_mask_of_a_batch_is_is_plain_ascii_of_each_document(documents):
    array = pa.array([b"\xff skipped"] + documents + [b"\0 skipped"], pa.large_binary())
    sliced = array.slice(1, len(documents))  # Bytes before and after its own: not its.
    assert tokenizer.plain_ascii_mask(sliced).tolist() == [
        tokenizer.is_plain_ascii(d) for d in documents]


def test_a_tokenizer_is_the_tensorflow_function():
    tokens = text.tokenize(tf.constant(["The END.<br />It's", ""]))
    assert tokens.to_list() == [[b"the", b"end", b"its"], []]


def test_counting_plain_ascii_never_imports_tensorflow(tmp_path):
    """A Beam worker that counts only plain ASCII text pays no TensorFlow import."""
    path = tmp_path / "vocabulary.txt"
    script = f"""
import sys
import apache_beam as beam
from tfx_embeddings.components.vocabulary_gen import beam_impl
from tfx_embeddings.pipeline.demo import text
with beam.Pipeline(runner="FnApiRunner") as pipeline:
    _ = (pipeline | beam.Create(["A b, b!", "c<br/>B"])
         | beam_impl.WriteVocabulary({str(path)!r}, text.tokenize, store_frequency=True))
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    assert path.read_bytes() == b"3 b\n1 c\n1 a\n"

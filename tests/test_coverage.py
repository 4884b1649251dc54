"""The coverage line: one line with the coverage, a WARNING below coverage_warning, and the
cheap changes that would raise it, each with the coverage it would give."""

import logging
import unicodedata

import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import write_glove
from tfx_embeddings.components.embedding_gen import coverage
from tfx_embeddings.components.embedding_gen.build import build_embedding

# What a whitespace tokenizer without lowercasing gives (the user): 10 tokens, 4 with a
# vector as they are, 3 more case-folded (The, Movie, Great), 2 more without punctuation at
# their ends (film., "plot: the file's tokens hold an apostrophe, never . or "), and one with
# none either way (zzz). Counts 10, 9, ... 1: the corpus share is (10+9+8+7)/55.
VOCABULARY = ["the", "movie", "was", "good", "The", "Movie", "Great", "film.", '"plot', "zzz"]
FILE = ["the", "movie", "was", "good", "great", "film", "plot", "it's", "of", "a"]


@pytest.fixture
def vectors_file(tmp_path):
    rng = np.random.default_rng(0)
    return str(write_glove(tmp_path / "v.txt", [(t, rng.standard_normal(4)) for t in FILE]))


def _build(tmp_path, vectors_file, vocabulary=VOCABULARY, **parameters):
    path = tmp_path / "vocab.txt"  # Counts 10, 9, ... 1; UTF-8, whatever the locale's.
    path.write_bytes("".join(f"{len(vocabulary) - i} {t}\n"
                             for i, t in enumerate(vocabulary)).encode())
    vocabulary = path
    return build_embedding(str(vocabulary), vectors_file, str(tmp_path / "out"),
                           row_layout="padded", min_coverage=0, **parameters)


def test_the_line_names_what_would_raise_coverage(tmp_path, vectors_file, caplog):
    with caplog.at_level(logging.INFO):
        _build(tmp_path, vectors_file)
    [record] = [r for r in caplog.records if "EmbeddingGen coverage" in r.getMessage()]
    assert any("shards published; 4 of the vocabulary's" in r.getMessage()
               for r in caplog.records)  # The last progress line too.
    assert record.levelno == logging.WARNING and record.name == "tfx_embeddings.embedding_gen"
    assert record.getMessage() == (
        "EmbeddingGen coverage: 4 of the vocabulary's 10 tokens have a vector (40.0%), 61.8% "
        "of the corpus's tokens; case folding (case_fold_fallback: true) would give 70.0%; "
        "2 of the 6 tokens without a vector hold punctuation (\".) no token of the file has; a "
        "tokenizer that splits punctuation off words would give 60.0%")


def test_case_folding_already_on_is_not_suggested(tmp_path, vectors_file, caplog):
    with caplog.at_level(logging.INFO):
        manifest = _build(tmp_path, vectors_file, case_fold_fallback=True)
    assert manifest.coverage.tokens_with_vector == 7
    [line] = [r.getMessage() for r in caplog.records if "EmbeddingGen coverage" in
              r.getMessage()]
    assert "7 of the vocabulary's 10 tokens have a vector (70.0%)" in line
    assert "case folding" not in line


def test_good_coverage_is_in_the_last_progress_line(tmp_path, caplog):
    path = write_glove(tmp_path / "v.txt", [(t, np.ones(3)) for t in VOCABULARY])
    with caplog.at_level(logging.INFO):
        _build(tmp_path, str(path))
    [record] = [r for r in caplog.records if "have a vector" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert record.getMessage() == ("progress: 4 shards published; 10 of the vocabulary's 10 "
                                   "tokens have a vector (100.0%), 100.0% of the corpus's tokens")


def test_hints_fold_non_ascii_tokens_as_str_casefold():
    hints = coverage.Hints([b"stra\xc3\x9fe", "Émile".encode(), b"abc"])
    marks, punctuation = hints.new_marks(), set()
    hints.mark(pa.array(["STRASSE".encode(), "émile".encode(), b"x,y"], pa.binary()), marks,
               punctuation)
    assert hints.reachable(marks)["case_folded"].tolist() == [True, True, False]
    assert punctuation == {ord(",")}


def test_unicode_normalization_is_hinted_then_applied(tmp_path, caplog):
    """A vocabulary in NFC and a vector file in NFD ("café": U+00E9 against e and U+0301)
    match nothing byte for byte: the coverage line names the option and what it would give;
    with it, the vocabulary's and the file's tokens are normalized alike and match."""
    import json
    import os

    import tensorflow as tf

    nfc = ["the", "café", "naïve", "film", "zzz"]
    in_file = ["the", unicodedata.normalize("NFD", "café"),
               unicodedata.normalize("NFD", "naïve"), "\ufb01lm", "other"]  # "ﬁlm": NFKC only.
    assert [unicodedata.normalize("NFC", t) for t in nfc] == nfc and in_file[1] != "café"
    rows = {token: [float(i), float(i) + 0.5] for i, token in enumerate(in_file)}
    path = tmp_path / "v.txt"
    path.write_bytes("".join(f"{t} {a} {b}\n" for t, (a, b) in rows.items()).encode())
    with caplog.at_level(logging.INFO):
        manifest = _build(tmp_path, str(path), vocabulary=nfc)
    [line] = [r.getMessage() for r in caplog.records if "EmbeddingGen coverage" in
              r.getMessage()]
    assert manifest.coverage.tokens_with_vector == 1
    assert line == ("EmbeddingGen coverage: 1 of the vocabulary's 5 tokens have a vector "
                    "(20.0%), 33.3% of the corpus's tokens; 3 more tokens would match if "
                    "normalized (unicode_normalization: NFKC), 80.0% (NFC: 2, 60.0%); case "
                    "folding (case_fold_fallback: true) would give 40.0%")  # casefold: ﬁ is fi.

    for form, matched in (("NFC", ["the", "café", "naïve"]),
                          ("NFKC", ["the", "café", "naïve", "film"])):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            manifest = _build(tmp_path, str(path), vocabulary=nfc, unicode_normalization=form)
        assert manifest.coverage.tokens_with_vector == len(matched)
        assert manifest.source.unicode_normalization == form
        with open(tmp_path / "out" / "manifest.json") as f:
            assert json.load(f)["source"]["unicode_normalization"] == form
        matrix = tf.train.load_variable(os.path.join(tmp_path, "out", "checkpoint",
                                                     "embeddings"), "embeddings")
        for token in matched:  # Padded layout: token i is row i + 1.
            file_token = in_file[[unicodedata.normalize("NFKC", t) for t in in_file].index(
                token)]
            np.testing.assert_array_equal(matrix[nfc.index(token) + 1], rows[file_token])
        [line] = [r.getMessage() for r in caplog.records if "shards published" in
                  r.getMessage()]
        assert f"{len(matched)} of the vocabulary's 5 tokens have a vector" in line
        assert "normalized" not in line  # Already.


def test_hints_measure_each_normal_form():
    nfd_cafe = unicodedata.normalize("NFD", "café")
    hints = coverage.Hints(["café".encode(), b"film", b"abc"])
    marks, punctuation = hints.new_marks(), set()
    hints.mark(pa.array([nfd_cafe.encode(), "\ufb01lm".encode(), b"ABC"], pa.binary()), marks,
               punctuation)
    reachable = hints.reachable(marks)
    assert reachable["NFC"].tolist() == [True, False, False]
    assert reachable["NFKC"].tolist() == [True, True, False]
    assert reachable["case_folded"].tolist() == [False, True, True]  # str.casefold: ﬁ is fi.
    # The vocabulary decomposed (NFD) and the file composed: the same, the other way round.
    hints = coverage.Hints([nfd_cafe.encode(), b"abc"])
    marks = hints.new_marks()
    hints.mark(pa.array(["café".encode(), b"x"], pa.binary()), marks, set())
    assert hints.reachable(marks)["NFC"].tolist() == [True, False]



def test_vocabulary_tokens_alike_once_normalized_each_take_the_vector(tmp_path):
    """"café" composed and decomposed are two tokens of the vocabulary (two ids): with NFC,
    both rows take the file's vector."""
    import os

    import tensorflow as tf

    composed, decomposed = "café", unicodedata.normalize("NFD", "café")
    path = tmp_path / "v.txt"
    path.write_bytes(f"{decomposed} 1 2\nthe 3 4\n".encode())
    manifest = _build(tmp_path, str(path), vocabulary=["the", composed, decomposed],
                      unicode_normalization="NFC")
    matrix = tf.train.load_variable(os.path.join(tmp_path, "out", "checkpoint", "embeddings"),
                                    "embeddings")
    np.testing.assert_array_equal(matrix[1:4], [[3, 4], [1, 2], [1, 2]])
    assert manifest.coverage.tokens_with_vector == 3 and manifest.counts.duplicate_tokens == 0

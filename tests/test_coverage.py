"""The coverage line: one line with the coverage, a WARNING below coverage_warning, and the
cheap changes that would raise it, each with the coverage it would give."""

import logging

import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import write_glove, write_vocabulary
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


def _build(tmp_path, vectors_file, **parameters):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", VOCABULARY)
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

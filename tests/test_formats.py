"""Every vector format, plain and compressed: the checkpoint rows are bit-identical to what gensim
reads from the same file; detection, binary ranges, matching policies and bad input."""

import bz2
import gzip
import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf
from gensim.models import KeyedVectors

from tests.conftest import write_vocabulary
from tfx_embeddings.components import embedding_artifact
from tfx_embeddings.components.embedding_gen import vectors
from tfx_embeddings.components.embedding_gen.build import build_embedding

DIM = 5
FILE_TOKENS = ["the", "naïve", "日本", "Paris", "x1", "x2", "y", "ünïcode", "last"]
VOCABULARY = ["the", "日本", "absent", "naïve", "last", "y"]


def _keyed_vectors():
    rng = np.random.default_rng(7)
    # Magnitudes from 1e-30 to 1e30, so text values take every decimal shape gensim writes.
    shape = (len(FILE_TOKENS), DIM)
    values = rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)
    kv = KeyedVectors(DIM)
    kv.add_vectors(FILE_TOKENS, values.astype(np.float32))
    return kv


def _compress(path, suffix):
    if suffix:
        with open(path, "rb") as f:
            data = f.read()
        opener = gzip.open if suffix == ".gz" else bz2.open
        with opener(path + suffix, "wb") as out:
            out.write(data)
    return path + suffix


def _write(kv, tmp_path, kind):
    """Writes kv in one format with gensim's writer (or as the C tool / fastText write it)."""
    path = str(tmp_path / f"vectors.{kind}")
    if kind == "glove":
        kv.save_word2vec_format(path, write_header=False)
    elif kind in ("word2vec_text", "word2vec_binary"):
        kv.save_word2vec_format(path, binary=kind == "word2vec_binary")
    elif kind == "fasttext_vec":  # A space ends each row.
        kv.save_word2vec_format(path)
        with open(path, "rb") as f:
            header, *rows = f.read().splitlines()
        with open(path, "wb") as f:
            f.write(header + b"\n" + b"".join(row + b" \n" for row in rows))
    elif kind == "word2vec_c_binary":  # The C tool ends each vector with a newline.
        with open(path, "wb") as f:
            f.write(b"%d %d\n" % (len(kv), DIM))
            for token in kv.index_to_key:
                f.write(token.encode() + b" " + kv[token].astype("<f4").tobytes() + b"\n")
    return path


def _build(tmp_path, path, tokens=VOCABULARY, out="out", **kwargs):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", tokens)
    out = str(tmp_path / out)
    manifest = build_embedding(str(vocabulary), path, out, num_shards=2,
                               **{"row_layout": "padded", **kwargs})
    matrix = tf.train.load_variable(os.path.join(out, embedding_artifact.CHECKPOINT_PREFIX),
                                    embedding_artifact.TENSOR_NAME)
    return matrix, manifest


FORMAT_OF = {"glove": "glove", "word2vec_text": "word2vec_text", "fasttext_vec": "word2vec_text",
             "word2vec_binary": "word2vec_binary", "word2vec_c_binary": "word2vec_binary"}


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2"])
@pytest.mark.parametrize("kind", list(FORMAT_OF))
def test_rows_are_bit_identical_to_gensim(tmp_path, kind, suffix):
    path = _compress(_write(_keyed_vectors(), tmp_path, kind), suffix)
    expected = KeyedVectors.load_word2vec_format(
        path, binary="binary" in kind, no_header=kind == "glove")
    matrix, manifest = _build(tmp_path, path)
    assert manifest.source.format == FORMAT_OF[kind]  # Detected.
    assert manifest.counts.vector_rows_read == len(FILE_TOKENS)
    for i, token in enumerate(VOCABULARY):
        if token in expected:
            assert matrix[i + 1].tobytes() == expected[token].astype(np.float32).tobytes(), token
    assert manifest.coverage.tokens_with_vector == len(VOCABULARY) - 1


def test_text_values_round_as_gensim(tmp_path):
    """17-digit decimals, where parsing straight to float32 would differ in the last bit."""
    rng = np.random.default_rng(1)
    path = tmp_path / "glove.txt"
    tokens = [f"t{i}" for i in range(300)]
    with open(path, "w") as f:
        for token in tokens:
            f.write(token + " " + " ".join("%.17g" % x for x in rng.standard_normal(DIM)) + "\n")
    expected = KeyedVectors.load_word2vec_format(str(path), no_header=True)
    matrix, _ = _build(tmp_path, str(path), tokens)
    assert matrix[1:301].tobytes() == expected.vectors.tobytes()


@pytest.mark.parametrize("kind", ["word2vec_binary", "word2vec_c_binary"])
@pytest.mark.parametrize("range_bytes", [1, 40, 100])
def test_binary_ranges_cut_at_record_boundaries(tmp_path, kind, range_bytes):
    kv = _keyed_vectors()
    source = vectors.inspect_source(_write(kv, tmp_path, kind))
    ranges = vectors.split_ranges(source, range_bytes)
    assert ranges[0][0] == source.body_start and ranges[-1][1] == source.size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    matcher = vectors.Matcher.for_vocabulary([t.encode() for t in FILE_TOKENS], lambda i: i)
    found = {}
    for byte_range in ranges:
        for _, matched in vectors.parse_range(source, byte_range, matcher, hashlib.sha256()):
            for row, vector in zip(matched.rows, matched.vectors):
                assert row not in found
                found[row] = vector
    assert len(found) == len(FILE_TOKENS)
    for row, token in enumerate(FILE_TOKENS):
        assert found[row].tobytes() == kv[token].tobytes()


def test_detection(tmp_path):
    kv = _keyed_vectors()
    for kind, fmt in FORMAT_OF.items():
        source = vectors.inspect_source(_write(kv, tmp_path, kind))
        assert (source.format, source.dimension) == (fmt, DIM)
    path = tmp_path / "short.txt"
    path.write_text("2 4\na 1 2 3\nb 1 2 3\n")  # The header's dimension is not the rows'.
    with pytest.raises(vectors.VectorFileError, match=r"line 2: neither a text row of a token "
                                                      r"and 4 values \(found 3\) nor a binary"):
        vectors.inspect_source(str(path))
    with pytest.raises(vectors.VectorFileError, match="line 2 .*expected 4 values after the "
                                                      "token, found 3"):
        _build(tmp_path, str(path), ["a"], vector_format="word2vec_text")
    with pytest.raises(vectors.VectorFileError, match="line 1: GloVe has no header"):
        vectors.inspect_source(str(path), "glove")


def test_case_folded_fallback_never_beats_an_exact_match(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("Paris 1 1\nBERLIN 2 2\nparis 3 3\nBerlin 4 4\nROME 5 5\nrome 6 6\n")
    tokens = ["paris", "berlin", "Rome", "oslo"]
    matrix, manifest = _build(tmp_path, str(path), tokens, case_fold_fallback=True)
    np.testing.assert_array_equal(matrix[1:4], [[3, 3], [2, 2], [5, 5]])
    assert manifest.counts.case_folded_matches == 2  # berlin, Rome; paris is exact.
    assert manifest.coverage.tokens_with_vector == 3
    matrix, manifest = _build(tmp_path, str(path), tokens, "off")  # Off by default.
    np.testing.assert_array_equal(matrix[1], [3, 3])
    assert manifest.counts.case_folded_matches == 0
    assert manifest.coverage.tokens_with_vector == 1


def test_invalid_utf8_token(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_bytes(b"ok 1 1\nbad\xff 2 2\n")
    with pytest.raises(vectors.VectorFileError, match=r"line 2 \(byte offset 7\): token "
                                                      r"b'bad\\xff' is not valid UTF-8"):
        _build(tmp_path, str(path), ["ok"])
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    matrix, manifest = _build(tmp_path, str(path), ["ok", "bad\ufffd"], invalid_utf8="replace")
    np.testing.assert_array_equal(matrix[2], [2, 2])
    assert manifest.counts.invalid_utf8_replaced == 1


def _binary(tmp_path, rows, header=None, tail=b""):
    path = tmp_path / "vectors.bin"
    body = b"".join(t + b" " + np.asarray(v, "<f4").tobytes() for t, v in rows)
    path.write_bytes((header or b"%d 2\n" % len(rows)) + body + tail)
    return str(path)


@pytest.mark.parametrize("make, error", [
    (lambda p: _binary(p, [(b"a", [1, 2]), (b"b", [3, 4])], tail=b"c \x00\x00"),
     "byte offset 24: truncated record: token b'c' needs 8 bytes of vector, the file has 2"),
    (lambda p: _binary(p, [(b"a", [1, 2]), (b"b", [3, np.nan])]),
     "byte offset 14: a value is not a finite float32"),
    (lambda p: _binary(p, [(b"a", [1, 2]), (b"b", [3, 4])], header=b"3 2\n"),
     "line 1: the header announces 3 rows, the file has 2"),
    (lambda p: _binary(p, [(b"a", [1, 2]), (b"b", [3, np.inf])], header=b"2 2\n"),
     "byte offset 14: a value is not a finite float32"),
])
def test_bad_binary_file_publishes_nothing(tmp_path, make, error):
    path = make(tmp_path)
    with pytest.raises(vectors.VectorFileError) as raised:
        _build(tmp_path, path, ["a", "b"])
    assert str(raised.value) == f"{path} {error}"
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_empty_compressed_file(tmp_path):
    path = str(tmp_path / "vectors.txt.gz")
    with gzip.open(path, "wb"):
        pass
    with pytest.raises(vectors.VectorFileError, match="vectors.txt.gz: the vector file is empty"):
        _build(tmp_path, path)

"""fastText .bin models in EmbeddingGen: every row is gensim's load_facebook_vectors(path)[token],
bit for bit, for tokens in the model's dictionary, tokens it only has n-grams for, and non-ASCII
tokens; old and new file formats; damaged files refused; normalization of any format."""

import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from gensim.models import FastText, KeyedVectors
from gensim.models.fasttext import load_facebook_vectors, save_facebook_model

from tests.conftest import write_vocabulary
from tfx_embeddings.components.embedding_gen.build import build_embedding
from tfx_embeddings.components.embedding_gen.vectors import VectorFileError

SENTENCES = [["the", "naïve", "café", "日本語", "movie", "film", "über", "great"] * 3,
             ["bad", "zorblax", "naïve", "Paris", "the"] * 4] * 20
# In the model's dictionary, and not: misspellings, inflections, other scripts, one letter.
VOCABULARY = ["the", "movie", "naïve", "日本語", "über", "films", "moviee", "cafés", "日本",
              "paris", "a", "zzzz"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("fasttext") / "model.bin")
    model = FastText(vector_size=8, window=3, min_count=1, min_n=2, max_n=4, bucket=97,
                     epochs=2, seed=1, workers=1)
    model.build_vocab(SENTENCES)
    model.train(SENTENCES, total_examples=len(SENTENCES), epochs=2)
    save_facebook_model(model, path)
    return path


def _rows(out):
    return tf.train.load_variable(os.path.join(out, "checkpoint", "embeddings"), "embeddings")


def _build(tmp_path, path, tokens=VOCABULARY, name="out", **options):
    vocabulary = write_vocabulary(tmp_path / f"{name}_vocab.txt", tokens)
    out = str(tmp_path / name)
    return out, build_embedding(str(vocabulary), path, out, num_shards=3,
                               **{"row_layout": "padded", **options})


def test_rows_are_gensims_bit_for_bit(tmp_path, model_path):
    out, manifest = _build(tmp_path, model_path)  # Detected: the magic number.
    expected = load_facebook_vectors(model_path)
    rows = _rows(out)
    for i, token in enumerate(VOCABULARY):
        np.testing.assert_array_equal(rows[i + 1], expected[token], err_msg=token)
    words = {"the", "movie", "naïve", "日本語", "über"}
    assert manifest.source.format == "fasttext_bin"
    assert manifest.counts.vector_rows_matched == manifest.coverage.tokens_with_vector == 5
    assert manifest.counts.subword_vectors == manifest.coverage.tokens_with_subword_vector == 7
    assert manifest.counts.tokens_initialized == 0
    assert manifest.coverage.vocabulary_share == pytest.approx(5 / 12)  # Words only.
    assert set(VOCABULARY) - words == {"films", "moviee", "cafés", "日本", "paris", "a", "zzzz"}


def _old_format(new):
    """The same model in fastText's old file format: no magic and version, no prune index
    size, no quantization flag."""
    dictionary = 8 + struct.calcsize("<12id")
    entries = struct.unpack("<i", new[dictionary:dictionary + 4])[0]
    counts_end = dictionary + 12 + 8
    body = new[counts_end + 8:]  # Past the prune index size.
    position = 0
    for _ in range(entries):
        position = body.index(b"\0", position) + 10
    return new[8:counts_end] + body[:position] + body[position + 1:]  # Drop quant_input.


def test_the_old_file_format(tmp_path, model_path):
    with open(model_path, "rb") as f:
        old = tmp_path / "old.bin"
        old.write_bytes(_old_format(f.read()))
    out, manifest = _build(tmp_path, str(old), vector_format="fasttext_bin")
    np.testing.assert_array_equal(_rows(out), _rows(_build(tmp_path, model_path, name="new")[0]))
    assert manifest.counts.subword_vectors == 7


def test_case_folded_matches_take_the_file_words_vector(tmp_path, model_path):
    out, manifest = _build(tmp_path, model_path, ["paris", "the"], case_fold_fallback=True)
    np.testing.assert_array_equal(_rows(out)[1], load_facebook_vectors(model_path)["Paris"])
    assert manifest.counts.case_folded_matches == 1 and manifest.counts.subword_vectors == 0


@pytest.mark.parametrize("damage, error", [
    (lambda data: data[:_quant_flag(data) + 100], "truncated: the input matrix needs"),
    (lambda data: data[:300], "truncated"),
    (lambda data: data[:8] + struct.pack("<i", 0) + data[12:], "implausible fastText arguments"),
    (lambda data: data[:40] + b"\x7f" * 4 + data[44:],
     "the input matrix is 108 x 8, expected 11 words \\+ 2139062143 buckets by 8"),
    (lambda data: data[:_quant_flag(data)] + b"\x01" + data[_quant_flag(data) + 1:],
     r"a quantized fastText model \(\.ftz\)"),
])
def test_damaged_models_are_refused(tmp_path, model_path, damage, error):
    with open(model_path, "rb") as f:
        path = tmp_path / "damaged.bin"
        path.write_bytes(damage(f.read()))
    with pytest.raises(VectorFileError, match=f"^{path}: .*{error}"):
        _build(tmp_path, str(path))
    assert os.listdir(tmp_path / "out") == [] if (tmp_path / "out").exists() else True


def _quant_flag(data):
    dictionary = 8 + struct.calcsize("<12id")
    entries = struct.unpack("<i", data[dictionary:dictionary + 4])[0]
    position = dictionary + 12 + 8 + 8
    for _ in range(entries):
        position = data.index(b"\0", position) + 10
    return position


def test_a_compressed_model_is_refused_with_the_reason(tmp_path, model_path):
    import gzip
    path = tmp_path / "model.bin.gz"
    with open(model_path, "rb") as f:
        path.write_bytes(gzip.compress(f.read()))
    with pytest.raises(VectorFileError, match="decompress or unzip it first"):
        _build(tmp_path, str(path), vector_format="fasttext_bin")


def test_normalization(tmp_path, model_path):
    rng = np.random.default_rng(4)
    file_rows = rng.standard_normal((6, 3)).astype(np.float32)
    kv = KeyedVectors(3)
    kv.add_vectors([f"t{i}" for i in range(6)], file_rows)
    glove = str(tmp_path / "vectors.txt")
    kv.save_word2vec_format(glove, write_header=False)
    exact = KeyedVectors.load_word2vec_format(glove, no_header=True)
    read = np.stack([exact[f"t{i}"] for i in range(6)])
    tokens = ["t1", "t4", "none"]
    out, manifest = _build(tmp_path, glove, tokens, "both", normalization=["center", "l2"],
                           min_coverage=0)
    centered = read[[1, 4]] - read.mean(axis=0, dtype=np.float64).astype(np.float32)
    np.testing.assert_allclose(_rows(out)[1:3], centered / np.linalg.norm(
        centered, axis=1, keepdims=True), rtol=1e-6)
    assert manifest.source.normalization == ("center", "l2")
    assert 0 < np.abs(_rows(out)[3]).max() <= 0.05  # An initializer row is left as it is.
    out, _ = _build(tmp_path, model_path, name="l2", normalization=["l2"])
    np.testing.assert_allclose(np.linalg.norm(_rows(out)[1:13], axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="center its .vec export instead"):
        _build(tmp_path, model_path, name="center", normalization=["center"])
    with pytest.raises(ValueError, match="normalization must be steps of"):
        _build(tmp_path, glove, tokens, "bad", normalization=["l1"])


def test_unicode_normalization_matches_the_models_words_and_n_grams(tmp_path, model_path):
    """A vocabulary in NFD against a model trained on NFC text: with NFC, its tokens are the
    model's words, and a token without one takes the n-grams of its NFC form."""
    import unicodedata

    tokens = [unicodedata.normalize("NFD", t) for t in ("naïve", "über", "cafés")]
    assert tokens[0] != "naïve"
    expected = load_facebook_vectors(model_path)
    out, manifest = _build(tmp_path, model_path, tokens=tokens, name="plain", min_coverage=0)
    assert manifest.coverage.tokens_with_vector == 0  # Byte for byte: no word matches.
    out, manifest = _build(tmp_path, model_path, tokens=tokens, unicode_normalization="NFC")
    rows = _rows(out)
    for i, token in enumerate(("naïve", "über", "cafés")):
        np.testing.assert_array_equal(rows[i + 1], expected[token], err_msg=token)
    assert manifest.coverage.tokens_with_vector == 2
    assert manifest.counts.subword_vectors == 1
    assert manifest.source.unicode_normalization == "NFC"

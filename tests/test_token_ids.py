"""EmbeddingGen's check of the ids a user's own TransformGraph gives: every way tft gives ids is
found and either fits a row layout or is refused before training, with what to change."""

import logging
import os

import apache_beam as beam
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from tfx_embeddings.components import vocabulary_file
from tfx_embeddings.components.embedding_gen import token_ids
from tfx_embeddings.components.embedding_gen.token_ids import TokenIdsError


def preprocessing_fn(inputs):
    """One TransformGraph, many users' ways of giving ids (each an output feature)."""
    tokens = tf.strings.split(tf.strings.lower(inputs["text"]))
    vocabulary = tft.vocabulary(tokens, vocab_filename="words")
    dense = lambda ids, pad: ids.to_tensor(default_value=pad, shape=[None, 6])  # noqa: E731
    one = tft.apply_vocabulary(tokens, vocabulary, num_oov_buckets=1)
    default = tft.apply_vocabulary(tokens, vocabulary, default_value=-1)
    default_last = tft.apply_vocabulary(tokens, vocabulary, default_value=9)
    two = tft.apply_vocabulary(tokens, vocabulary, num_oov_buckets=2)
    return {"tft_ids": dense(one, 10), "tft_pad_zero": dense(one, 0),
            "padded_ids": dense(one + 1, 0), "default_ids": dense(default, -1),
            "default_plus_one": dense(default + 1, 0), "default_last": dense(default_last, 9),
            "two_buckets": dense(two + 1, 0), "offset_three": dense(one + 3, 0),
            "pad_minus_one": dense(one + 1, -1), "ragged": one,
            "label": tf.cast(inputs["n"] > 0, tf.int64)}


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    work = tmp_path_factory.mktemp("transform")
    data = [{"text": text, "n": i} for i, text in enumerate(
        ["the cat sat on the mat", "a dog and the cat", "the end"] * 3)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
        "text": tf.io.FixedLenFeature([], tf.string), "n": tf.io.FixedLenFeature([], tf.int64)}))
    with beam.Pipeline(runner="FnApiRunner") as pipeline, tft_beam.Context(temp_dir=str(work)):
        transform_fn = ((pipeline | beam.Create(data), metadata)
                        | tft_beam.AnalyzeDataset(preprocessing_fn))
        _ = transform_fn | tft_beam.WriteTransformFn(str(work / "graph"))
    metadata_io.write_metadata(metadata, os.path.join(work, "graph", "metadata"))  # Raw, as TFX.
    output = tft.TFTransformOutput(str(work / "graph"))
    tokens, _ = vocabulary_file.read_vocabulary(output.vocabulary_file_by_name("words"), False)
    assert tokens == [b"the", b"cat", b"sat", b"on", b"mat", b"end", b"dog", b"and", b"a"]
    return output, tokens


def _check(graph, feature, row_layout="auto", num_oov_buckets=1):
    output, tokens = graph
    return token_ids.check_token_ids(output, "words", tokens, row_layout=row_layout,
                                     num_oov_buckets=num_oov_buckets, ids_feature=feature)


@pytest.mark.parametrize("feature, num_oov_buckets, layout, oov_ids, padding_id, said", [
    ("tft_ids", 1, "tft", (9,), 10, "unknown tokens: id 9 (OOV bucket row 0); padding: id 10 "
                                    "(OOV bucket row 1)"),
    ("padded_ids", 1, "padded", (10,), 0, "padding: id 0 (the padding row, zeros, masked)"),
    ("default_plus_one", 0, "padded", (0,), 0, "unknown tokens: id 0 (the padding row"),
    ("default_last", 1, "tft", (9,), 9, "unknown tokens: id 9 (OOV bucket row 0)"),
    ("ragged", 1, "tft", (9,), None, "gives token i id i + 0 (tft layout)"),
])
def test_each_way_of_giving_ids_is_found(graph, feature, num_oov_buckets, layout, oov_ids,
                                         padding_id, said):
    if feature == "tft_ids":
        num_oov_buckets = 2  # The padding id 10 is a second OOV row here.
    found, ids = _check(graph, feature, num_oov_buckets=num_oov_buckets)
    assert (found.name, ids.feature, ids.oov_ids, ids.padding_id) == (
        layout, feature, oov_ids, padding_id)
    assert said in ids.describe(found, graph[1])
    assert _check(graph, feature, layout, num_oov_buckets)[0] == found  # Given: checked.


@pytest.mark.parametrize("feature, row_layout, num_oov_buckets, error", [
    ("padded_ids", "tft", 1, "row_layout is 'tft' but the TransformGraph's 'words' ids (feature "
                             "'padded_ids') are token index + 1: the 'padded' layout. Every row "
                             "would be shifted by one token"),
    ("tft_ids", "padded", 2, "row_layout is 'padded' but the TransformGraph's 'words' ids "
                             "(feature 'tft_ids') are token index + 0: the 'tft' layout"),
    ("default_ids", "auto", 1, "an unknown token gets id -1, which is no row of the embedding "
                               "(rows 0-9: tokens 0-8, OOV buckets 9-9). tft gives "
                               "default_value (-1 unless set) to unknown tokens when "
                               "num_oov_buckets is 0: pass num_oov_buckets=1"),
    ("two_buckets", "auto", 1, "an unknown token gets id 11, which is no row of the embedding "
                               "(rows 0-10: padding 0, tokens 1-9, OOV buckets 10-10). The "
                               "lookup has more OOV buckets than EmbeddingGen's num_oov_buckets"),
    ("offset_three", "auto", 1, "are token index + 3; an embedding's rows are token index + 0 "
                                "(row_layout 'tft'"),
    ("pad_minus_one", "auto", 1, "padding gets id -1, which is no row of the embedding"),
    (None, "auto", 1, "several transformed features give the tokens of 'words' ids of token "
                      "index + a constant: ['default_ids', 'default_last', 'default_plus_one'"),
    ("label", "auto", 1, "no transformed integer feature"),
    ("nope", "padded", 1, "ids_feature 'nope' is not a transformed feature"),
])
def test_ids_that_fit_no_row_are_refused_before_training(graph, feature, row_layout,
                                                         num_oov_buckets, error):
    with pytest.raises(TokenIdsError) as raised:
        _check(graph, feature, row_layout, num_oov_buckets)
    assert error in str(raised.value)


def test_padding_on_a_token_row_is_said(graph, caplog):
    with caplog.at_level(logging.WARNING):
        layout, ids = _check(graph, "tft_pad_zero")
    assert layout.name == "tft" and ids.padding_id == 0
    assert "padding positions get id 0, the row of token 'the': the model sees padding as " \
           "that word" in caplog.text


def test_a_given_layout_without_ids_to_check_is_said(graph, caplog):
    output, tokens = graph
    with caplog.at_level(logging.WARNING):
        layout, ids = token_ids.check_token_ids(output, "words", [b"zebra", b"yak", b"gnu", b"emu"],
                                                row_layout="tft", num_oov_buckets=1)
    assert ids is None and layout.name == "tft"
    assert "the row layout 'tft' is not checked against the token ids" in caplog.text
    with pytest.raises(TokenIdsError, match="Set row_layout"):
        token_ids.check_token_ids(output, "words", [b"zebra", b"yak", b"gnu", b"emu"], row_layout="auto",
                                  num_oov_buckets=1)

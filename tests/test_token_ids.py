"""EmbeddingGen's check of the ids a user's own TransformGraph gives: every way tft gives ids is
found and either fits a row layout or is refused before training, with what to change."""

import logging
import os
import re

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
from tfx.types import standard_artifacts

from tests.conftest import write_glove
from tfx_embeddings.components import embedding_artifact, specs, vocabulary_file
from tfx_embeddings.components.embedding_gen import beam_impl, executor, token_ids
from tfx_embeddings.components.embedding_gen.parameters import EmbeddingGenParameters
from tfx_embeddings.components.embedding_gen.token_ids import TokenIdsError
from tfx_embeddings.components.types import HtmlReport, PretrainedEmbedding


def preprocessing_fn(inputs):
    """One TransformGraph, many users' ways of giving ids (each an output feature)."""
    tokens = tf.strings.split(tf.strings.lower(inputs["text"]))
    vocabulary = tft.vocabulary(tokens, vocab_filename="words")
    tft.annotate_asset("the_words", "words")  # A name of its own (VocabularyTransform's way).
    dense = lambda ids, pad: ids.to_tensor(default_value=pad, shape=[None, 6])  # noqa: E731
    one = tft.apply_vocabulary(tokens, vocabulary, num_oov_buckets=1)
    default = tft.apply_vocabulary(tokens, vocabulary, default_value=-1)
    default_last = tft.apply_vocabulary(tokens, vocabulary, default_value=9)
    two = tft.apply_vocabulary(tokens, vocabulary, num_oov_buckets=2)
    past = tft.apply_vocabulary(tokens, vocabulary, default_value=20)  # top_k 20, 9 tokens.
    far = tft.apply_vocabulary(tokens, vocabulary, default_value=5_000_000)
    return {"tft_ids": dense(one, 10), "tft_pad_zero": dense(one, 0),
            "default_past": dense(past + 1, 0), "default_far": dense(far, 0),
            "tft_pad_past": dense(one, 12),
            "padded_ids": dense(one + 1, 0), "default_ids": dense(default, -1),
            "default_plus_one": dense(default + 1, 0), "default_last": dense(default_last, 9),
            "two_buckets": dense(two + 1, 0), "offset_three": dense(one + 3, 0),
            "pad_minus_one": dense(one + 1, -1), "ragged": one,
            "label": tf.cast(inputs["n"] > 0, tf.int64),
            # A second vocabulary (tft names it): the first word of each text.
            "first_word": tft.compute_and_apply_vocabulary(tokens[:, :1]).to_tensor(
                default_value=-1, shape=[None, 1])}


def imdb_preprocessing_fn(inputs):
    """TFX's IMDB example's (examples/imdb/imdb_utils_native_keras.py), as written there, with
    _VOCAB_SIZE 20 and _MAX_LEN 6: no vocab_filename, default_value=top_k, ids + 1."""
    review_sparse = tf.strings.split(tf.reshape(inputs["text"], [-1])).to_sparse()
    review_indices = tft.compute_and_apply_vocabulary(review_sparse, default_value=20, top_k=20)
    dense = tf.sparse.to_dense(review_indices, default_value=-1)
    dense = tf.pad(dense, [[0, 0], [0, 6]], "CONSTANT", -1)
    padded = tf.slice(dense, [0, 0], [-1, 6])
    padded += 1
    return {"label_xf": inputs["n"], "text_xf_input": padded}


def _transform_graph(work, fn):
    """A TransformGraph as TFX's Transform writes it, of fn over a few texts."""
    data = [{"text": text, "n": i} for i, text in enumerate(
        ["the cat sat on the mat", "a dog and the cat", "the end"] * 3)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
        "text": tf.io.FixedLenFeature([], tf.string), "n": tf.io.FixedLenFeature([], tf.int64)}))
    with beam.Pipeline(runner="FnApiRunner") as pipeline, tft_beam.Context(temp_dir=str(work)):
        transform_fn = ((pipeline | beam.Create(data), metadata)
                        | tft_beam.AnalyzeDataset(fn))
        _ = transform_fn | tft_beam.WriteTransformFn(str(work / "graph"))
    metadata_io.write_metadata(metadata, os.path.join(work, "graph", "metadata"))  # Raw, as TFX.
    return str(work / "graph")


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    output = tft.TFTransformOutput(_transform_graph(tmp_path_factory.mktemp("transform"),
                                                    preprocessing_fn))
    tokens, _ = vocabulary_file.read_vocabulary(output.vocabulary_file_by_name("words"), False)
    assert tokens == [b"the", b"cat", b"sat", b"on", b"mat", b"end", b"dog", b"and", b"a"]
    return output, tokens


@pytest.fixture(scope="module")
def imdb_graph(tmp_path_factory):
    return _transform_graph(tmp_path_factory.mktemp("imdb"), imdb_preprocessing_fn)


def _check(graph, feature, row_layout="auto", num_oov_buckets=1):
    output, tokens = graph
    return token_ids.check_token_ids(output, "words", tokens, row_layout=row_layout,
                                     num_oov_buckets=num_oov_buckets, ids_feature=feature)


@pytest.mark.parametrize("feature, num_oov_buckets, layout, oov_ids, padding_id, said", [
    ("tft_ids", 1, "tft", (9,), 10, "unknown tokens: id 9 (OOV bucket row 0); padding: id 10 "
                                    "(OOV bucket row 1)"),
    ("padded_ids", 1, "padded", (10,), 0, "padding: id 0 (the padding row, zeros)"),
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
    ("two_buckets", "auto", 1, "unknown tokens get ids 10, 11: the lookup hashes them into "
                               "OOV buckets, at least 2 (ids up to 11), past the embedding's "
                               "rows (0-10: padding 0, tokens 1-9, OOV buckets 10-10). Give "
                               "EmbeddingGen the lookup's num_oov_buckets (currently 1)."),
    ("default_far", "auto", 1, "an unknown token gets id 5000000, 4999991 rows past the "
                               "embedding's last (rows 0-9: tokens 0-8, OOV buckets 9-9)"),
    ("offset_three", "auto", 1, "are token index + 3; an embedding's rows are token index + 0 "
                                "(row_layout 'tft'"),
    ("pad_minus_one", "auto", 1, "padding gets id -1, which is no row of the embedding"),
    (None, "auto", 1, "several transformed features give the tokens of 'words' ids of token "
                      "index + a constant: ['default_far', 'default_ids', 'default_last', "
                      "'default_past'"),
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
        token_ids.check_token_ids(output, "words", [b"zebra", b"yak", b"gnu", b"emu"],
                                  row_layout="auto", num_oov_buckets=1)


@pytest.mark.parametrize("feature, num_oov_buckets, layout, oov_ids, padding_id, extra, said", [
    # TFX's IMDB example: default_value=top_k (20) with fewer tokens (9), ids + 1, padded 0.
    ("default_past", 1, "padded", (21,), 0, (11, 22),
     "unknown tokens: id 21 (extra row 21, past the vocabulary, from the initializer)"),
    ("default_past", 0, "padded", (21,), 0, (10, 22), "rows: padding 0, tokens 1-9, extra "
                                                      "rows 10-21"),
    ("tft_pad_past", 1, "tft", (9,), 12, (10, 13), "padding: id 12 (extra row 12, past the "
                                                   "vocabulary, from the initializer)"),
])
def test_an_id_past_the_vocabulary_gets_its_row(graph, caplog, feature, num_oov_buckets, layout,
                                                oov_ids, padding_id, extra, said):
    """The ids as the user wrote them: the table grows to the highest, stated once as a WARNING
    (visible under a user's own LocalDagRunner)."""
    with caplog.at_level(logging.WARNING):
        found, ids = _check(graph, feature, num_oov_buckets=num_oov_buckets)
    assert (found.name, ids.oov_ids, ids.padding_id) == (layout, oov_ids, padding_id)
    assert (found.first_extra_row, found.num_rows) == extra
    assert found.num_extra_rows == extra[1] - extra[0]
    statements = [r for r in caplog.records if r.name == "tfx_embeddings.model_changes"]
    assert [r.levelno for r in statements] == [logging.WARNING] * 2
    assert said in statements[0].getMessage()
    assert statements[0].getMessage().startswith(f"EmbeddingGen: vocabulary 'words' (9 tokens): "
                                                 f"the TransformGraph's feature {feature!r}")
    assert statements[1].getMessage() == (
        f"EmbeddingGen: {extra[1] - extra[0]} extra rows ({extra[0]}-{extra[1] - 1}) after the "
        f"vocabulary{' and its OOV buckets' if num_oov_buckets else ''}, from the initializer, "
        f"so that id {extra[1] - 1}, which the TransformGraph gives (a default_value at or past "
        f"the vocabulary's size), has a row")
    keys = found.row_keys(0, found.num_rows, graph[1])
    assert keys[extra[0]:] == [b"\x00<id-%d>" % i for i in range(*extra)]
    assert embedding_artifact.RowLayout.from_json(found.to_json()) == found
    assert found.to_json()["extra_rows"] == list(extra)


def test_the_only_vocabulary_is_found_without_a_name(imdb_graph):
    output = tft.TFTransformOutput(imdb_graph)
    name, path, tokens = token_ids.find_vocabulary(output, None, has_counts=False)
    assert name == "vocab_compute_and_apply_vocabulary_vocabulary"  # tft's own name for it.
    assert path == output.vocabulary_file_by_name(name) and len(tokens) == 9


def test_several_vocabularies_are_listed_with_the_features_of_their_ids(graph):
    output, tokens = graph
    with pytest.raises(TokenIdsError) as raised:
        token_ids.find_vocabulary(output, None, has_counts=False)
    assert str(raised.value) == (
        "the TransformGraph holds 2 vocabularies: 'vocab_compute_and_apply_vocabulary_vocabulary' "
        "(2 tokens: ids in 'first_word'); 'the_words' (9 tokens: ids in 'default_far', "
        "'default_ids', 'default_last', 'default_past', 'default_plus_one', 'offset_three', "
        "'pad_minus_one', 'padded_ids', 'ragged', 'tft_ids', 'tft_pad_past', 'tft_pad_zero', "
        "'two_buckets'); which one the embedding follows is not for EmbeddingGen to guess. Set "
        "vocabulary_name to one of them (or ids_feature to the feature the embedding looks up).")
    # ids_feature singles one out.
    assert token_ids.find_vocabulary(output, None, has_counts=False, ids_feature="padded_ids")[
        ::2] == ("the_words", tokens)
    assert token_ids.find_vocabulary(output, "words", has_counts=False)[::2] == ("words", tokens)
    assert token_ids.find_vocabulary(output, None, has_counts=False, ids_feature="first_word")[
        2] == [b"the", b"a"]
    with pytest.raises(TokenIdsError, match="none of them gives ids_feature 'label' its ids"):
        token_ids.find_vocabulary(output, None, has_counts=False, ids_feature="label")
    # EmbeddingGen's default, vocabulary_has_counts=True, on tft's files of tokens alone.
    with pytest.raises(TokenIdsError) as raised:
        token_ids.find_vocabulary(output, None, has_counts=True, ids_feature="padded_ids")
    assert "'the_words' (9 tokens read with vocabulary_has_counts=False: ids in" in str(
        raised.value)
    assert str(raised.value).endswith(", and vocabulary_has_counts=False for one read only so.")
    with pytest.raises(TokenIdsError, match=re.escape(
            "the TransformGraph has no vocabulary named 'word' (its assets: "
            "['the_words', 'vocab_compute_and_apply_vocabulary_vocabulary'])")):
        token_ids.find_vocabulary(output, "word", has_counts=False)


def test_the_imdb_example_as_written_gets_an_embedding(imdb_graph, tmp_path, caplog):
    """EmbeddingGen's executor on the IMDB example's TransformGraph, with no vocabulary_name:
    unknown tokens' id (default_value top_k, plus one) past the 9 tokens is an initializer row
    of its own; every change is stated once, as a WARNING."""
    output = tft.TFTransformOutput(imdb_graph)
    tokens = token_ids.find_vocabulary(output, None, has_counts=False)[2]
    rng = np.random.default_rng(0)
    vectors = {t.decode(): rng.standard_normal(4) for t in tokens[:6]}
    write_glove(tmp_path / "vectors.txt", vectors.items())
    graph_artifact = standard_artifacts.TransformGraph()
    graph_artifact.uri = imdb_graph
    embedding, report = PretrainedEmbedding(), HtmlReport()
    embedding.uri, report.uri = str(tmp_path / "embedding"), str(tmp_path / "report")
    parameters = EmbeddingGenParameters(vocabulary_has_counts=False, num_shards=2)
    context = executor.Executor.Context(
        make_beam_pipeline_fn=lambda: beam.Pipeline(runner="FnApiRunner"))
    with caplog.at_level(logging.WARNING):
        executor.Executor(context).Do(
            {specs.TRANSFORM_GRAPH_KEY: [graph_artifact]},
            {specs.EMBEDDING_KEY: [embedding], specs.REPORT_KEY: [report]},
            {specs.VECTORS_PATH_KEY: str(tmp_path / "vectors.txt"),
             **parameters.to_exec_properties()})
    artifact = embedding_artifact.EmbeddingArtifact(embedding.uri)
    manifest = artifact.manifest
    # The IMDB model's own Embedding(_VOCAB_SIZE + 2): 22 rows.
    assert manifest.shape == (22, 4)
    assert manifest.layout == embedding_artifact.RowLayout("padded", 9, 1, 11)
    assert manifest.token_ids == embedding_artifact.TokenIds("text_xf_input", 1, (21,), 0)
    matrix = artifact.read_rows(0, 22).numpy()
    assert not matrix[0].any()
    np.testing.assert_array_equal(matrix[21], beam_impl.initial_rows([b"\x00<id-21>"], 4, 0.05)[0])
    with open(artifact.row_keys_path, "rb") as f:
        assert f.read().split(b"\n")[10:22] == [b"\x00<oov-0>"] + [
            b"\x00<id-%d>" % i for i in range(11, 22)]
    statements = [r.getMessage() for r in caplog.records
                  if r.name == "tfx_embeddings.model_changes"]
    assert statements == [
        "EmbeddingGen: vocabulary 'vocab_compute_and_apply_vocabulary_vocabulary' (9 tokens): "
        "the TransformGraph's feature 'text_xf_input' gives token i id i + 1 (padded layout); "
        "unknown tokens: id 21 (extra row 21, past the vocabulary, from the initializer); "
        "padding: id 0 (the padding row, zeros); rows: padding 0, tokens 1-9, OOV buckets "
        "10-10, extra rows 11-21",
        "EmbeddingGen: 11 extra rows (11-21) after the vocabulary and its OOV buckets, from the "
        "initializer, so that id 21, which the TransformGraph gives (a default_value at or past "
        "the vocabulary's size), has a row"]

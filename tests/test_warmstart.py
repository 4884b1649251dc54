"""Warm start: each new row from the previous model, the pretrained vectors or the initializer."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import write_glove, write_vocabulary
from tfx_embeddings.components import embedding_artifact
from tfx_embeddings.components.embedding_gen.executor import build_embedding
from tfx_embeddings.components.embedding_trainer import restore, warmstart


def _matrix(artifact_dir):
    return tf.train.load_variable(
        embedding_artifact.EmbeddingArtifact(artifact_dir).checkpoint_prefix,
        embedding_artifact.TENSOR_NAME)


def _previous_model(tmp_path, vectors, tokens, num_shards, num_oov_buckets, layout="padded"):
    """A 'trained' previous model: its export holds rows that differ from anything pretrained."""
    vocabulary = write_vocabulary(tmp_path / "old_vocab.txt", tokens)
    artifact = str(tmp_path / "old_artifact")
    build_embedding(str(vocabulary), vectors, artifact, num_shards=num_shards,
                    num_oov_buckets=num_oov_buckets, row_layout=layout)
    layer = restore.pretrained_embedding(artifact)
    layer.build((None,))
    for i, part in enumerate(layer.partitions):
        part.assign_add(tf.fill(part.shape, 100.0 + i))  # "Training" moved every row.
    model_dir = str(tmp_path / "old_model")
    warmstart.export_trained_embedding(layer.partitions, artifact, model_dir)
    return os.path.join(model_dir, "Format-Serving")


@pytest.mark.parametrize(
    "old_shards, new_shards, old_oov, new_oov, old_layout, new_layout, rows_per_slice, keras", [
        (3, 5, 1, 2, "padded", "padded", None, "tf_keras"),
        (1, 2, 2, 1, "padded", "padded", None, "tf_keras"),
        (4, 4, 1, 1, "padded", "padded", None, "tf_keras"),
        (2, 3, 1, 1, "tft", "tft", None, "tf_keras"),
        (3, 2, 2, 1, "tft", "padded", None, "tf_keras"),
        (2, 2, 1, 0, "padded", "tft", None, "tf_keras"),
        (3, 5, 1, 2, "padded", "padded", 3, "tf_keras"),
        (2, 3, 1, 1, "tft", "padded", 2, "tf_keras"),
        (3, 5, 1, 2, "padded", "padded", None, "keras3"),
        (3, 2, 2, 1, "tft", "padded", 3, "keras3")])
def test_rows_come_from_the_right_source(tmp_path, monkeypatch, old_shards, new_shards, old_oov,
                                         new_oov, old_layout, new_layout, rows_per_slice, keras):
    """Rows are joined by their keys: a change of shards, OOV buckets or row layout between
    runs remaps the trained rows, never shifts them; with rows_per_slice, the export is stored
    in slices of that many rows, read several per RestoreV2 call. The same in a Keras 3 layer
    warm-started from a tf_keras model's export."""
    if rows_per_slice:
        monkeypatch.setattr(embedding_artifact, "SLICE_BYTES", 4 * 4 * rows_per_slice)
    rng = np.random.default_rng(5)
    vectors = str(write_glove(tmp_path / "vectors.txt",
                              [(f"v{i}", rng.standard_normal(4)) for i in range(60)]))
    old_tokens = [f"v{i}" for i in range(0, 30)] + ["gone", "old_novec"]
    new_tokens = (["new_novec"] + [f"v{i}" for i in range(40, 20, -1)]  # Other order, size.
                  + ["old_novec", "the_new"] + [f"v{i}" for i in range(50, 55)])
    base_model = _previous_model(tmp_path, vectors, old_tokens, old_shards, old_oov, old_layout)
    old_export = os.path.join(os.path.dirname(base_model), warmstart.EMBEDDING_EXPORT_DIR)
    old_matrix = _matrix(old_export)
    new_artifact = str(tmp_path / "new_artifact")
    build_embedding(str(write_vocabulary(tmp_path / "new_vocab.txt", new_tokens)), vectors,
                    new_artifact, num_shards=new_shards, num_oov_buckets=new_oov,
                    row_layout=new_layout)
    pretrained = _matrix(new_artifact)
    old = embedding_artifact.RowLayout(old_layout, len(old_tokens), old_oov)
    new = embedding_artifact.RowLayout(new_layout, len(new_tokens), new_oov)

    layer = restore.pretrained_embedding(new_artifact, base_model=base_model, keras=keras)
    assert layer.mask_zero == (new_layout == "padded")
    warm = layer(tf.constant([np.arange(len(pretrained))])).numpy()[0]

    sources = {"previous_model": 0, "pretrained": 0, "initializer": 0}
    if new.padding_row is not None:  # The previous model's padding row, or zeros.
        expected = (old_matrix[old.padding_row] if old.padding_row is not None
                    else np.zeros(4))
        np.testing.assert_array_equal(warm[new.padding_row], expected)
        sources["previous_model" if old.padding_row is not None else "initializer"] += 1
    old_index = {t: i for i, t in enumerate(old_tokens)}
    for i, token in enumerate(new_tokens):
        row = new.token_row(i)
        if token in old_index:  # Its trained row, moved to its new index.
            np.testing.assert_array_equal(warm[row], old_matrix[old.token_row(old_index[token])])
            sources["previous_model"] += 1
        else:  # This run's row: the pretrained vector, or the token-seeded initializer.
            np.testing.assert_array_equal(warm[row], pretrained[row])
            sources["pretrained" if token.startswith("v") else "initializer"] += 1
    for k in range(new_oov):  # OOV bucket k, by position.
        row = new.token_row(len(new_tokens)) + k
        if k < old_oov:
            np.testing.assert_array_equal(warm[row],
                                          old_matrix[old.token_row(len(old_tokens)) + k])
            sources["previous_model"] += 1
        else:
            np.testing.assert_array_equal(warm[row], pretrained[row])
            sources["initializer"] += 1
    assert layer.warm_start == embedding_artifact.WarmStart(**sources)
    # The deterministic initializer: a token in neither has the same row as in a cold start.
    first = new.token_row(0)
    cold = restore.pretrained_embedding(new_artifact)(tf.constant([[first]])).numpy()[0, 0]
    np.testing.assert_array_equal(warm[first], cold)


def test_no_numpy_copy_of_the_matrix(tmp_path, monkeypatch, no_numpy_matrix):
    rng = np.random.default_rng(1)
    vectors = str(write_glove(tmp_path / "vectors.txt",
                              [(f"v{i}", rng.standard_normal(4)) for i in range(20)]))
    base_model = _previous_model(tmp_path, vectors, [f"v{i}" for i in range(10)], 2, 1)
    new_artifact = str(tmp_path / "new")
    build_embedding(str(write_vocabulary(tmp_path / "new.txt", [f"v{i}" for i in range(5, 15)])),
                    vectors, new_artifact, num_shards=2, row_layout="padded")
    no_numpy_matrix(rows=12)
    layer = restore.pretrained_embedding(new_artifact, base_model=base_model)
    layer.build((None,))
    assert layer.warm_start.previous_model == 7  # v5..v9, padding, OOV.


def test_other_dimension_falls_back_to_pretrained(tmp_path, caplog):
    rng = np.random.default_rng(2)
    vectors4 = str(write_glove(tmp_path / "v4.txt", [(f"v{i}", rng.standard_normal(4))
                                                     for i in range(10)]))
    vectors6 = str(write_glove(tmp_path / "v6.txt", [(f"v{i}", rng.standard_normal(6))
                                                     for i in range(10)]))
    base_model = _previous_model(tmp_path, vectors4, [f"v{i}" for i in range(10)], 2, 1)
    new_artifact = str(tmp_path / "new")
    build_embedding(str(write_vocabulary(tmp_path / "new.txt", [f"v{i}" for i in range(10)])),
                    vectors6, new_artifact, num_shards=2, row_layout="padded")
    layer = restore.pretrained_embedding(new_artifact, base_model=base_model)
    rows = layer(tf.constant([np.arange(12)])).numpy()[0]
    np.testing.assert_array_equal(rows, _matrix(new_artifact))
    assert layer.warm_start.previous_model == 0
    assert "previous model's embedding has dimension 4, this run's has 6" in caplog.text


def test_a_model_without_export_starts_from_pretrained(tmp_path, small_vectors, caplog):
    new_artifact = str(tmp_path / "new")
    build_embedding(str(write_vocabulary(tmp_path / "new.txt", ["w1", "w2"])), small_vectors[0],
                    new_artifact, row_layout="padded")
    layer = restore.pretrained_embedding(new_artifact, base_model=str(tmp_path / "m" / "serving"))
    assert layer.warm_start.previous_model == 0
    assert "has no trained embedding export" in caplog.text


def test_warm_start_never_renormalizes_trained_rows(tmp_path):
    """This run's vectors are l2-normalized; the rows the previous model trained stay exactly."""
    rng = np.random.default_rng(6)
    vectors = str(write_glove(tmp_path / "vectors.txt",
                              [(f"v{i}", rng.standard_normal(4)) for i in range(20)]))
    base_model = _previous_model(tmp_path, vectors, [f"v{i}" for i in range(10)], 2, 1)
    old_matrix = _matrix(os.path.join(os.path.dirname(base_model),
                                      warmstart.EMBEDDING_EXPORT_DIR))
    new_artifact = str(tmp_path / "new")
    build_embedding(str(write_vocabulary(tmp_path / "new.txt", [f"v{i}" for i in range(5, 15)])),
                    vectors, new_artifact, num_shards=2, normalization=["l2"],
                    row_layout="padded")
    warm = restore.pretrained_embedding(new_artifact, base_model=base_model)(
        tf.constant([np.arange(12)])).numpy()[0]
    np.testing.assert_array_equal(warm[1:6], old_matrix[6:11])  # v5..v9: trained, as they were.
    np.testing.assert_allclose(np.linalg.norm(warm[6:11], axis=1), 1.0, rtol=1e-6)  # New.

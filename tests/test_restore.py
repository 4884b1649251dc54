"""The restore API: the variable's initial value is a restore op; no numpy copy of the matrix."""

import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras

from benchmarks.common import write_random_artifact
from tests.conftest import write_vocabulary
from tfx_embeddings.components import embedding_artifact
from tfx_embeddings.components.embedding_gen.executor import build_embedding
from tfx_embeddings.components.embedding_trainer import restore, warmstart

TOKENS = [f"w{i}" for i in range(0, 40, 2)] + ["absent"]
KERASES = pytest.mark.parametrize("keras_name", ["tf_keras", "keras3"])


@pytest.fixture
def artifact(tmp_path, small_vectors):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", TOKENS)
    out = str(tmp_path / "embedding")
    build_embedding(str(vocabulary), small_vectors[0], out, num_shards=3, row_layout="padded")
    return out


@KERASES
def test_layer_holds_the_checkpoint_rows(artifact, small_vectors, monkeypatch, no_numpy_matrix,
                                         keras_name):
    """Fails if building or calling the layer reads the matrix into numpy."""
    no_numpy_matrix(rows=1 + len(TOKENS) + 1)
    layer = restore.pretrained_embedding(artifact, trainable=False, keras=keras_name)
    looked_up = layer(tf.constant([[1, 2, 0, 20]], dtype=tf.int64))
    monkeypatch.undo()

    # One variable per checkpoint shard, in the writer's row layout.
    assert [v.shape[0] for v in layer.partitions] == [8, 8, 7] and not layer.trainable
    assert layer.mask_zero and not layer.trainable_weights
    np.testing.assert_array_equal(looked_up[0, 0], small_vectors[1]["w0"])
    np.testing.assert_array_equal(looked_up[0, 1], small_vectors[1]["w2"])
    np.testing.assert_array_equal(looked_up[0, 2], np.zeros(6))
    np.testing.assert_array_equal(looked_up[0, 3], small_vectors[1]["w38"])


@KERASES
@pytest.mark.parametrize("num_partitions", [1, 2, 5, 22])
def test_any_number_of_partitions_holds_the_same_rows(artifact, num_partitions, keras_name):
    full = tf.train.load_variable(os.path.join(artifact, embedding_artifact.CHECKPOINT_PREFIX),
                                  embedding_artifact.TENSOR_NAME)
    layer = restore.pretrained_embedding(artifact, num_partitions=num_partitions,
                                         keras=keras_name)
    ids = np.arange(len(full))
    np.testing.assert_array_equal(layer(tf.constant([ids])).numpy()[0], full)
    assert len(layer.trainable_weights) == num_partitions
    with tf.GradientTape() as tape:  # Trainable, row by row.
        loss = tf.reduce_sum(layer(tf.constant([[3, 3, 21]])))
    gradients = tape.gradient(loss, layer.trainable_weights)
    dense = np.concatenate([tf.convert_to_tensor(g).numpy() for g in gradients])
    assert dense[3].tolist() == [2.0] * 6 and dense[21].tolist() == [1.0] * 6
    assert np.count_nonzero(dense.sum(axis=1)) == 2


PS_PROBE = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.distribute import multi_worker_test_base
    from tfx_embeddings.components.embedding_trainer import restore

    cluster = multi_worker_test_base.create_in_process_cluster(num_workers=1, num_ps=2)
    strategy = tf.distribute.experimental.ParameterServerStrategy(
        tf.distribute.cluster_resolver.SimpleClusterResolver(tf.train.ClusterSpec(cluster),
                                                             rpc_layer="grpc"),
        variable_partitioner=tf.distribute.experimental.partitioners.FixedShardsPartitioner(2))
    with strategy.scope():
        layer = restore.pretrained_embedding(sys.argv[1], num_partitions=1)
        layer.build((None,))
    pieces = layer.embeddings.variables
    full = tf.train.load_variable(sys.argv[1] + "/checkpoint/embeddings", "embeddings")
    assert [p.shape[0] for p in pieces] == [12, 11], [p.shape for p in pieces]
    assert np.array_equal(np.concatenate([p.numpy() for p in pieces]), full)
    print("ok")
""")


def test_parameter_server_partitions_restore_their_rows(artifact):
    """Under ParameterServerStrategy, 2 variable partitions over a 3-shard checkpoint."""
    result = subprocess.run([sys.executable, "-c", PS_PROBE, artifact], capture_output=True,
                            text=True, timeout=300)
    assert result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_refuses_another_vocabulary(artifact, tmp_path):
    other = write_vocabulary(tmp_path / "other.txt", list(reversed(TOKENS)))

    class FakeTransformOutput:  # Only the vocabulary lookup of tft.TFTransformOutput is used.
        def vocabulary_file_by_name(self, name):
            return str(other)

    with pytest.raises(embedding_artifact.CheckpointError, match="built for another vocabulary"):
        restore.pretrained_embedding(artifact, transform_output=FakeTransformOutput(),
                                     vocabulary_name="tokens")


def test_refuses_wrong_shape(artifact):
    initializer = restore.CheckpointInitializer(
        os.path.join(artifact, embedding_artifact.CHECKPOINT_PREFIX), (22, 6))
    with pytest.raises(embedding_artifact.CheckpointError,
                       match=r"holds a \[22, 6\] embedding, the model asks for \[22, 8\]"):
        initializer((22, 8))


def test_refuses_damaged_or_unpublished_checkpoints(artifact):
    data = os.path.join(artifact, "checkpoint", "embeddings.data-00001-of-00003")
    size = os.path.getsize(data)
    with open(data, "r+b") as f:
        f.truncate(size - 10)
    with pytest.raises(embedding_artifact.CheckpointError,
                       match=f"embeddings.data-00001-of-00003 has {size - 10} bytes, {size} "
                             f"were published"):
        restore.pretrained_embedding(artifact)
    os.remove(data)
    with pytest.raises(embedding_artifact.CheckpointError,
                       match="damaged: checkpoint/embeddings.data-00001-of-00003 is missing"):
        restore.pretrained_embedding(artifact)
    os.remove(os.path.join(artifact, embedding_artifact.MANIFEST_FILE))
    with pytest.raises(embedding_artifact.CheckpointError, match="was never published"):
        restore.pretrained_embedding(artifact)


MEMORY_PROBE = textwrap.dedent("""
    import sys
    import tensorflow as tf
    from tfx_embeddings.components.embedding_trainer import restore

    def peak_mb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM"))

    layer = restore.pretrained_embedding(sys.argv[1], keras=sys.argv[2])
    tf.zeros([1])  # Warm TF up before the baseline.
    before = peak_mb()
    layer.build((None,))
    float(tf.reduce_sum(layer.partitions[-1][-1]))
    print(peak_mb() - before)
""")


@KERASES
def test_restore_memory_is_near_one_copy(tmp_path, keras_name):
    """A 150 MB matrix in 4 shards: peak RSS growth must stay well under two copies."""
    rows, dimension = 150_000, 256
    write_random_artifact(str(tmp_path), rows, dimension, num_shards=4)
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path), keras_name],
                            capture_output=True, text=True, check=True)
    growth_mb = float(result.stdout.strip().splitlines()[-1])
    matrix_mb = rows * dimension * 4 / 2**20
    assert growth_mb < 1.5 * matrix_mb, f"{growth_mb:.0f} MB for a {matrix_mb:.0f} MB matrix"


def test_tft_layout_looks_up_token_i_at_id_i(tmp_path, small_vectors):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", TOKENS)
    out = str(tmp_path / "tft")
    build_embedding(str(vocabulary), small_vectors[0], out, num_shards=2, row_layout="tft")
    layer = restore.pretrained_embedding(out, trainable=False)
    rows = layer(tf.constant([[0, 1, 19, 20, 21]])).numpy()[0]
    assert not layer.mask_zero  # Id 0 is a token.
    for row, token in zip(rows, ["w0", "w2", "w38"]):
        np.testing.assert_array_equal(row, small_vectors[1][token])
    assert 0 < np.abs(rows[3]).max() <= 0.05  # "absent": its initializer row.
    assert np.abs(rows[4]).max() > 0  # The OOV bucket's row, not padding.


@pytest.mark.parametrize("layer_keras, model_keras, words", [
    ("tf_keras", keras, "is a tf_keras (Keras 2: `import tf_keras`, or tf.keras with "
                        "TF_USE_LEGACY_KERAS=1) layer, called on a Keras 3"),
    ("keras3", tf_keras, "is a Keras 3 (`import keras`, or tf.keras without TF_USE_LEGACY_KERAS) "
                         "layer, called on a tf_keras"),
])
def test_a_layer_of_the_other_keras_says_which_each_is(artifact, layer_keras, model_keras, words):
    layer = restore.pretrained_embedding(artifact, keras=layer_keras)
    with pytest.raises(TypeError, match=re.escape(words)):
        layer(model_keras.Input(shape=(4,), dtype="int64"))


@KERASES
def test_an_id_outside_the_rows_is_named(artifact, keras_name):
    layer = restore.pretrained_embedding(artifact, keras=keras_name)
    rows = 1 + len(TOKENS) + 1
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=re.escape(f"a token id is not a row of the embedding (0-{rows - 1})")):
        layer(tf.constant([[1, rows]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="a token id is negative"):
        layer(tf.constant([[-1, 2]]))


def test_a_keras_3_model_trains_with_lazy_adam(artifact, small_vectors):
    """Keras 3 end to end: a functional model, LazyAdam, fit; only looked-up rows move."""
    from tfx_embeddings.components.embedding_trainer.optimizers import Keras3LazyAdam

    layer = restore.pretrained_embedding(artifact, keras="keras3")
    ids = keras.Input(shape=(3,), dtype="int64")
    model = keras.Model(ids, keras.layers.Dense(1)(
        keras.layers.GlobalAveragePooling1D()(layer(ids))))
    model.compile(optimizer=Keras3LazyAdam(0.01), loss="mse")
    before = np.concatenate([p.numpy() for p in layer.partitions])
    model.fit(np.array([[1, 2, 3], [2, 3, 4]] * 8), np.ones(16), batch_size=4, epochs=2,
              verbose=0)
    after = np.concatenate([p.numpy() for p in layer.partitions])
    moved = np.flatnonzero(np.any(after != before, axis=1)).tolist()
    assert moved == [1, 2, 3, 4] and not model.jit_compile
    np.testing.assert_array_equal(before[1], small_vectors[1]["w0"])


def _transform_graph_assets(path, **assets):
    """A TransformGraph directory holding only these vocabulary assets ({name: source file}):
    what pretrained_embedding reads of one."""
    directory = os.path.join(path, "transform_fn", "assets")
    os.makedirs(directory)
    for name, source in assets.items():
        shutil.copy(source, os.path.join(directory, name))
    return tft.TFTransformOutput(str(path))


def test_the_vocabulary_is_checked_without_its_name(artifact, tmp_path):
    """With a TransformGraph and no vocabulary_name: one of its vocabularies must be the
    artifact's, byte for byte."""
    other = write_vocabulary(tmp_path / "other.txt", list(reversed(TOKENS)))
    graph = _transform_graph_assets(tmp_path / "graph", vocab_compute_and_apply_vocabulary=other,
                                     words=tmp_path / "vocab.txt")
    layer = restore.pretrained_embedding(artifact, transform_output=graph)
    assert layer.input_dim == len(TOKENS) + 2
    wrong = _transform_graph_assets(tmp_path / "wrong", vocab_compute_and_apply_vocabulary=other)
    with pytest.raises(embedding_artifact.CheckpointError, match=re.escape(
            "the embedding was built for another vocabulary than the TransformGraph's "
            "('vocab_compute_and_apply_vocabulary'): its rows would not line up")):
        restore.pretrained_embedding(artifact, transform_output=wrong)


ROWS = ("23 rows (padding 0, tokens 1-21, OOV buckets 22-22; padded layout, not checked "
        "against a TransformGraph's ids); rows from: previous model 0, pretrained 20, "
        "initializer 3")


@KERASES
@pytest.mark.parametrize("mask_zero, said", [
    (None, "mask_zero on: id 0 is the padding row (zeros); the layers after it skip those "
           "positions (mask_zero=False turns it off)"),
    (False, "mask_zero off, as given, though id 0 is the padding row (zeros): the layers after "
            "it see padding positions as rows of zeros"),
    (True, "mask_zero on, as given: id 0 is the padding row (zeros)"),
])
def test_what_the_layer_changes_is_stated_once(artifact, caplog, keras_name, mask_zero, said):
    """Stated as WARNINGs (what a LocalDagRunner shows), when the layer is made, never again
    while the model trains."""
    kind = keras if keras_name == "keras3" else tf_keras
    with caplog.at_level(logging.WARNING):
        layer = restore.pretrained_embedding(artifact, keras=keras_name, mask_zero=mask_zero,
                                             input_dim=30, output_dim=64)
        ids = kind.Input(shape=(3,), dtype="int64")
        model = kind.Model(ids, kind.layers.Dense(1)(kind.layers.GlobalAveragePooling1D()(
            layer(ids))))
        model.compile(optimizer=restore_lazy_adam(keras_name), loss="mse")
        model.fit(np.array([[1, 2, 3], [2, 3, 0]] * 4), np.ones(8), batch_size=2, epochs=2,
                  verbose=0)
    statements = [r for r in caplog.records if r.name == "tfx_embeddings.model_changes"]
    assert [r.levelno for r in statements] == [logging.WARNING] * 3
    assert layer.model_changes == (
        f"layer 'embedding': {ROWS}", f"layer 'embedding': {said}",
        "layer 'embedding': width 6, the vector file's dimension, where the model's own "
        "Embedding had 64: the layers after it take 6 values per token; 23 rows (ids 0-22) "
        "where the model's own Embedding had 30: an id from 23 on fails the step")
    assert [r.getMessage() for r in statements] == [
        f"pretrained_embedding: {line}" for line in layer.model_changes]


def restore_lazy_adam(keras_name):
    from tfx_embeddings.components.embedding_trainer.optimizers import LazyAdam

    return LazyAdam(0.01, keras=keras_name)


def test_mask_zero_off_in_the_tft_layout_is_said(tmp_path, small_vectors, caplog):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", TOKENS)
    out = str(tmp_path / "tft")
    build_embedding(str(vocabulary), small_vectors[0], out, num_shards=2, row_layout="tft")
    with caplog.at_level(logging.WARNING):
        layer = restore.pretrained_embedding(out, output_dim=6)
        restore.pretrained_embedding(out, mask_zero=True)
    assert layer.model_changes[1:] == (
        "layer 'embedding': mask_zero off: id 0 is the row of token 0, not padding",
        "layer 'embedding': width 6, the vector file's dimension, as the model's own Embedding")
    assert ("pretrained_embedding: layer 'embedding': mask_zero on, as given, though id 0 is the "
            "row of token 0, not padding: that token is masked wherever it occurs"
            in caplog.messages)


def test_ids_past_the_vocabulary_restore_and_warm_start_by_their_id(tmp_path, small_vectors):
    """The IMDB example's unknown-token id, past a vocabulary smaller than top_k: its extra row
    restores, and the next run (a bigger vocabulary, the same id) starts from its trained row."""
    ids = embedding_artifact.TokenIds("text_xf", 1, (30,), 0)  # default_value=29, plus one.
    old_vocabulary = write_vocabulary(tmp_path / "old.txt", TOKENS[:10])
    old = str(tmp_path / "old")
    build_embedding(str(old_vocabulary), small_vectors[0], old, num_shards=2,
                    row_layout="padded", token_ids=ids)
    manifest = embedding_artifact.EmbeddingArtifact(old).manifest
    assert manifest.shape == (31, 6) and manifest.layout.num_extra_rows == 19
    layer = restore.pretrained_embedding(old)
    looked_up = layer(tf.constant([[1, 30]])).numpy()[0]
    np.testing.assert_array_equal(looked_up[0], small_vectors[1]["w0"])
    initial = embedding_artifact.EmbeddingArtifact(old).read_rows(30, 31).numpy()[0]
    np.testing.assert_array_equal(looked_up[1], initial)
    assert 0 < np.abs(initial).max() <= 0.05
    for i, part in enumerate(layer.partitions):
        part.assign_add(tf.fill(part.shape, 100.0 + i))  # "Training" moved every row.
    trained = np.concatenate([p.numpy() for p in layer.partitions])
    warmstart.export_trained_embedding(layer.partitions, old, str(tmp_path / "model"))

    new_vocabulary = write_vocabulary(tmp_path / "new.txt", TOKENS[:15])
    new = str(tmp_path / "new")
    build_embedding(str(new_vocabulary), small_vectors[0], new, num_shards=3,
                    row_layout="padded", token_ids=ids)
    assert embedding_artifact.EmbeddingArtifact(new).manifest.layout.num_extra_rows == 14
    warm = restore.pretrained_embedding(new, base_model=str(tmp_path / "model" / "Format-Serving"))
    rows = warm(tf.constant([list(range(31))])).numpy()[0]
    np.testing.assert_array_equal(rows[30], trained[30])  # id-30: the same row, trained.
    np.testing.assert_array_equal(rows[17:30], trained[17:30])  # id-17 to id-29 likewise.
    np.testing.assert_array_equal(rows[1:11], trained[1:11])  # The old tokens.

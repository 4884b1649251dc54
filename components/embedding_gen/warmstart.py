"""Warm start across retraining runs whose vocabulary changed.

Row by row, in the new vocabulary's order: a token the previous model knew gets its trained row
from that model; any other token gets this run's EmbeddingGen row (its pretrained vector, or the
deterministic initializer's row when the vector file lacks it). Padding and OOV bucket rows
follow the same rule by position.

To make that possible each trained model carries, beside its SavedModel, its trained embedding
in the EmbeddingGen artifact format (`<model>/Format-Embedding/`: one logical tensor saved as
row slices, its vocabulary and manifest). The remap then reads rows from checkpoints with
`LoadAndRemapMatrix`, in C++ and in chunks: the matrix never exists as a numpy array.
"""

import logging
import os

import numpy as np
import tensorflow as tf

from components.embedding_gen import checkpoint
from components.embedding_gen.vocabulary import read_vocabulary

EMBEDDING_EXPORT_DIR = "Format-Embedding"
_CHUNK_BYTES = 64 << 20


class WarmStartPlan:
    """Which previous-model row each new row comes from (-1: from this run's checkpoint)."""

    def __init__(self, previous_dir, current_dir):
        self.previous_dir, self.current_dir = previous_dir, current_dir
        self.previous = checkpoint.load_manifest(previous_dir)
        self.current = checkpoint.load_manifest(current_dir)
        old_dim, new_dim = self.previous["shape"][1], self.current["shape"][1]
        if old_dim != new_dim:
            raise checkpoint.CheckpointError(
                f"{previous_dir}: the previous model's embedding has dimension {old_dim}, this "
                f"run's has {new_dim}")
        self.old_rows = _old_rows(self.previous, _tokens(previous_dir, self.previous),
                                  self.current, _tokens(current_dir, self.current))

    @property
    def previous_prefix(self):
        return os.path.join(self.previous_dir, self.previous["checkpoint_prefix"])

    @property
    def current_prefix(self):
        return os.path.join(self.current_dir, self.current["checkpoint_prefix"])

    def counts(self):
        """How many rows come from each source."""
        fresh = self.old_rows < 0
        has_vector = checkpoint.read_has_vector(self.current_dir, len(self.old_rows))
        return {"previous_model": int((~fresh).sum()),
                "pretrained": int((fresh & has_vector).sum()),
                "initializer": int((fresh & ~has_vector).sum())}

    def rows(self, start, stop):
        """The [stop - start, dimension] float32 rows of the warm-started matrix, as a tensor."""
        old_rows = self.old_rows[start:stop]
        dimension = self.current["shape"][1]
        chunk = max(1, _CHUNK_BYTES // (4 * dimension))
        fresh = np.flatnonzero(old_rows < 0) + start
        initial = tf.zeros([0], tf.float32)
        if len(fresh):
            initial = tf.raw_ops.LoadAndRemapMatrix(
                ckpt_path=self.current_prefix, old_tensor_name=self.current["tensor_name"],
                row_remapping=tf.constant(fresh, tf.int64), col_remapping=tf.zeros([0], tf.int64),
                initializing_values=tf.zeros([0], tf.float32), num_rows=len(fresh),
                num_cols=dimension, max_rows_in_memory=chunk)
        return tf.raw_ops.LoadAndRemapMatrix(
            ckpt_path=self.previous_prefix, old_tensor_name=self.previous["tensor_name"],
            row_remapping=tf.constant(old_rows, tf.int64), col_remapping=tf.zeros([0], tf.int64),
            initializing_values=tf.reshape(initial, [-1]), num_rows=stop - start,
            num_cols=dimension, max_rows_in_memory=chunk)


def _tokens(artifact_dir, manifest):
    path = os.path.join(artifact_dir, manifest["vocabulary_file"])
    return read_vocabulary(path, manifest["vocabulary_has_counts"])[0]


def _old_rows(previous, old_tokens, current, new_tokens):
    old_layout, new_layout = previous["reserved_rows"], current["reserved_rows"]
    rows = np.full(current["shape"][0], -1, np.int64)
    rows[new_layout["padding_row"]] = old_layout["padding_row"]
    old_index = {token: i for i, token in enumerate(old_tokens)}
    old_first, new_first = old_layout["first_token_row"], new_layout["first_token_row"]
    for i, token in enumerate(new_tokens):
        j = old_index.get(token)
        if j is not None:
            rows[new_first + i] = old_first + j
    (old_oov, old_end), (new_oov, new_end) = old_layout["oov_rows"], new_layout["oov_rows"]
    shared = min(old_end - old_oov, new_end - new_oov)  # OOV buckets hash alike: keep by index.
    rows[new_oov:new_oov + shared] = np.arange(old_oov, old_oov + shared)
    return rows


def previous_embedding_dir(base_model_serving_dir):
    """Where a model made by this project keeps its trained embedding, or None."""
    path = os.path.join(os.path.dirname(base_model_serving_dir.rstrip("/")), EMBEDDING_EXPORT_DIR)
    return path if tf.io.gfile.exists(os.path.join(path, checkpoint.MANIFEST_FILE)) else None


def export_embedding(partitions, artifact_dir, model_dir, warm_start=None):
    """Saves the trained partitions as one logical tensor in <model_dir>/Format-Embedding.

    artifact_dir is the EmbeddingGen artifact the model was trained from: its vocabulary and
    row layout describe the trained rows too.
    """
    manifest = checkpoint.load_manifest(artifact_dir)
    shape = tuple(manifest["shape"])
    out = os.path.join(model_dir, EMBEDDING_EXPORT_DIR)
    tf.io.gfile.makedirs(out)
    staging = checkpoint.staging_dir(out)
    bounds = np.cumsum([0] + [int(p.shape[0]) for p in partitions])
    prefix = os.path.join(staging, checkpoint.CHECKPOINT_PREFIX)
    tf.io.gfile.makedirs(os.path.dirname(prefix))
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=[checkpoint.TENSOR_NAME] * len(partitions),
        shape_and_slices=[checkpoint.slice_spec(shape, bounds[i], bounds[i + 1])
                          for i in range(len(partitions))],
        tensors=[p.read_value() for p in partitions])
    tf.io.gfile.copy(os.path.join(artifact_dir, manifest["vocabulary_file"]),
                     os.path.join(staging, checkpoint.VOCABULARY_FILE))
    exported = {key: manifest[key] for key in (
        "format_version", "tensor_name", "checkpoint_prefix", "vocabulary_has_counts", "shape",
        "dtype", "vocabulary_size", "reserved_rows", "fingerprints")}
    exported.update({
        "vocabulary_file": checkpoint.VOCABULARY_FILE,
        "shards": [{"rows": [int(bounds[i]), int(bounds[i + 1])]}
                   for i in range(len(partitions))],
        "files": checkpoint.file_sizes(staging, checkpoint.CHECKPOINT_DIR),
        "trained_from": artifact_dir,
        "warm_start": warm_start,
    })
    checkpoint.publish(staging, out, exported)
    return out


def restore_matching_weights(model, base_model_serving_dir, skip_layer):
    """Gives every other weight of model the previous model's value where its shape matches.

    Keras names a functional model's weights in a SavedModel by position among the layers
    that have weights; a weight whose layer moved or changed shape starts fresh.
    """
    prefix = os.path.join(base_model_serving_dir, "variables", "variables")
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    restored = []
    for index, layer in enumerate(l for l in model.layers if l.weights):
        if layer is skip_layer:
            continue
        for weight in layer.weights:
            attribute = weight.name.split(":")[0].split("/", 1)[1].replace("/", ".S")
            key = f"layer_with_weights-{index}/{attribute}/.ATTRIBUTES/VARIABLE_VALUE"
            if shapes.get(key) == weight.shape.as_list():
                weight.assign(tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[key],
                                                   shape_and_slices=[""],
                                                   dtypes=[weight.dtype])[0])
                restored.append(weight.name)
    logging.info("Warm start: %d other weights from the previous model: %s", len(restored),
                 restored)
    return restored

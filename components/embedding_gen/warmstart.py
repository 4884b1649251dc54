"""Warm start across retraining runs whose vocabulary changed.

Row by row, in the new vocabulary's order: a token the previous model knew gets its trained row
from that model; any other token gets this run's EmbeddingGen row (its pretrained vector, or the
deterministic initializer's row when the vector file lacks it). Rows are joined by their keys
(row_keys.txt: the token, or a reserved name for padding and each OOV bucket), so padding and
OOV bucket rows carry over by position.

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

EMBEDDING_EXPORT_DIR = "Format-Embedding"
_CHUNK_BYTES = 16 << 20


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
        # In C++, from the two row-key files: no Python object per token.
        self.old_rows = tf.raw_ops.GenerateVocabRemapping(
            new_vocab_file=os.path.join(current_dir, checkpoint.ROW_KEYS_FILE),
            old_vocab_file=os.path.join(previous_dir, checkpoint.ROW_KEYS_FILE),
            new_vocab_offset=0, num_new_vocab=self.current["shape"][0],
            old_vocab_size=self.previous["shape"][0])[0].numpy()

    @property
    def previous_prefix(self):
        return os.path.join(self.previous_dir, self.previous["checkpoint_prefix"])

    def counts(self):
        """How many rows come from each source."""
        fresh = self.old_rows < 0
        has_vector = checkpoint.read_has_vector(self.current_dir, len(self.old_rows))
        return {"previous_model": int((~fresh).sum()),
                "pretrained": int((fresh & has_vector).sum()),
                "initializer": int((fresh & ~has_vector).sum())}

    def overlay(self, variable, start):
        """Writes the previous model's rows into variable (rows [start, start + its rows) of
        the new matrix, holding this run's rows), in place, one chunk of old rows at a time."""
        old_rows = self.old_rows[start:start + int(variable.shape[0])]
        known = np.flatnonzero(old_rows >= 0)
        known = known[np.argsort(old_rows[known], kind="stable")]
        chunk = _chunk_rows(self.current["shape"][1])
        for group in np.split(known, np.flatnonzero(np.diff(old_rows[known] // chunk)) + 1):
            if not len(group):
                continue
            previous = tf.raw_ops.LoadAndRemapMatrix(
                ckpt_path=self.previous_prefix, old_tensor_name=self.previous["tensor_name"],
                row_remapping=tf.constant(old_rows[group], tf.int64),
                col_remapping=tf.zeros([0], tf.int64), initializing_values=tf.zeros([0]),
                num_rows=len(group), num_cols=variable.shape[1], max_rows_in_memory=chunk)
            variable.scatter_nd_update(tf.constant(group[:, None], tf.int64), previous)


def _chunk_rows(dimension):
    return max(1, _CHUNK_BYTES // (4 * dimension))


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
    # Stored in chunk-sized slices: reading part of a stored slice reads all of it, and the
    # next run's warm start reads this matrix a chunk at a time.
    chunk = _chunk_rows(shape[1])
    slices, tensors = [], []
    for part, first in zip(partitions, bounds):
        for offset in range(0, int(part.shape[0]), chunk):
            rows = min(chunk, int(part.shape[0]) - offset)
            slices.append(checkpoint.slice_spec(shape, first + offset, first + offset + rows))
            tensors.append(part[offset:offset + rows])
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[checkpoint.TENSOR_NAME] * len(slices),
                      shape_and_slices=slices, tensors=tensors)
    for name in (manifest["vocabulary_file"], checkpoint.ROW_KEYS_FILE):
        tf.io.gfile.copy(os.path.join(artifact_dir, name), os.path.join(staging, name))
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

"""Warm start across retraining runs whose vocabulary changed, and the export it starts from.

Row by row, in the new vocabulary's order: a token the previous model knew gets its trained row
from that model; any other token gets this run's EmbeddingGen row (its pretrained vector, or the
deterministic initializer's row when the vector file lacks it). Rows are joined by their keys
(row_keys.txt: the token, or a reserved name for padding and each OOV bucket), so padding and OOV
bucket rows carry over by position, and a change of row layout between runs is remapped, not
shifted.

Each trained model carries, beside its SavedModel, its trained embedding as an embedding
artifact (`<model>/Format-Embedding/`, written by `export_trained_embedding`). The new matrix's
variables are restored from this run's artifact, then the previous model's rows are read
READ_BLOCK_SLICES stored slices at a time and scattered into them in place: the matrix never
exists as a numpy array, and the memory beyond it is those slices and the row pairs.
"""

import ctypes
import ctypes.util
import logging
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from .. import embedding_artifact, object_storage
from ..embedding_artifact import CheckpointError

EMBEDDING_EXPORT_DIR = "Format-Embedding"
READ_BLOCK_SLICES = 2  # Stored slices per RestoreV2 call in the overlay: 2 x 4 MB read in parallel.


class WarmStartPlan:
    """Which previous-model row each new row comes from; the rest come from this run's artifact.

    Everything but the matrix is worked out here, before the matrix exists: the row-key join,
    the counts, and the (new row, old row) pairs in the order the previous checkpoint is read.

    Args:
      previous: the previous model's exported EmbeddingArtifact.
      current: this run's EmbeddingArtifact.

    Raises:
      CheckpointError: the two embeddings differ in dimension.
    """

    def __init__(self, previous, current):
        self.previous, self.current = previous, current
        old_shape, new_shape = previous.manifest.shape, current.manifest.shape
        if old_shape[1] != new_shape[1]:
            raise CheckpointError(f"{previous.uri}: the previous model's embedding has dimension "
                                  f"{old_shape[1]}, this run's has {new_shape[1]}")
        old_rows = _join(previous.row_keys_path, current.row_keys_path)
        fresh = old_rows < 0
        has_vector = current.has_vector()
        self._counts = embedding_artifact.WarmStart(
            previous_model=int((~fresh).sum()), pretrained=int((fresh & has_vector).sum()),
            initializer=int((fresh & ~has_vector).sum()))
        del fresh, has_vector
        new_rows = np.flatnonzero(old_rows >= 0).astype(np.int32)  # int32: half the memory.
        old_rows = old_rows[new_rows]
        order = np.argsort(old_rows, kind="stable")
        self._new_rows, self._old_rows = new_rows[order], old_rows[order]
        del new_rows, old_rows, order
        _release_freed_memory()

    def counts(self):
        """How many rows come from each source (embedding_artifact.WarmStart)."""
        return self._counts

    def overlay(self, variables):
        """Writes the previous model's rows into variables (the new matrix's row ranges, in
        order, holding this run's rows), in place.

        The previous checkpoint is read once, READ_BLOCK_SLICES stored slices per RestoreV2 (which
        reads them in parallel); the rows each variable needs from them are gathered and
        scattered into it, so the memory beyond the matrix is one block.
        """
        bounds = np.cumsum([0] + [int(v.shape[0]) for v in variables])
        shape = self.previous.manifest.shape
        step = embedding_artifact.slice_rows(shape[1])
        starts = np.arange(0, shape[0], step)
        edges = np.searchsorted(self._old_rows, np.append(starts, shape[0]))
        needed = [i for i in range(len(starts)) if edges[i] < edges[i + 1]]
        for group in range(0, len(needed), READ_BLOCK_SLICES):
            blocks = needed[group:group + READ_BLOCK_SLICES]
            ranges = [(int(starts[i]), min(int(starts[i]) + step, shape[0])) for i in blocks]
            for i, rows in zip(blocks, self.previous.read_row_ranges(ranges)):
                first, last = edges[i], edges[i + 1]
                targets = self._new_rows[first:last]
                sources = self._old_rows[first:last] - starts[i]
                owner = np.searchsorted(bounds, targets, side="right") - 1
                for index in np.unique(owner):
                    mine = owner == index
                    variables[index].scatter_update(tf.IndexedSlices(
                        tf.gather(rows, sources[mine]), targets[mine] - bounds[index]))


def _join(old_keys_path, new_keys_path):
    """Per new row key, the line of the same key among the old ones, or -1 (int32 numpy).

    In Arrow (a hash join in C++ over the files' bytes): no Python object per key, so a
    million keys take a few tens of MB for a moment, and a third of the time of a dict.
    """
    line = pc.index_in(_row_keys(new_keys_path), value_set=_row_keys(old_keys_path))
    return line.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)


def _row_keys(path):
    """row_keys.txt's keys (one per line, each line ending in a newline), as an Arrow array."""
    with tf.io.gfile.GFile(path, "rb") as f:
        lines = pa.array([f.read()], pa.large_binary())
    return pc.split_pattern(lines, pattern=b"\n").flatten()[:-1]


def _release_freed_memory():
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (AttributeError, OSError, TypeError):  # Not glibc: its allocator keeps it.
        pass


def plan_warm_start(current, base_model):
    """The WarmStartPlan from the model at base_model (a serving directory) to the artifact
    current, or None (logged) when there is no base model or it cannot be warm-started from."""
    if not base_model:
        return None
    export = os.path.join(os.path.dirname(base_model.rstrip("/")), EMBEDDING_EXPORT_DIR)
    object_storage.use(export)
    if not tf.io.gfile.exists(export):
        logging.warning("Warm start: %s has no trained embedding export; starting from the "
                        "pretrained vectors alone", base_model)
        return None
    try:
        previous = embedding_artifact.EmbeddingArtifact(export)
        previous.check_files()
        return WarmStartPlan(previous, current)
    except CheckpointError as e:
        logging.warning("Warm start skipped, starting from the pretrained vectors alone: %s", e)
        return None


def cold_start_counts(current):
    """embedding_artifact.WarmStart of a start from this run's artifact alone."""
    has_vector = int(current.has_vector().sum())
    return embedding_artifact.WarmStart(previous_model=0, pretrained=has_vector,
                                        initializer=current.manifest.shape[0] - has_vector)


def export_trained_embedding(partitions, artifact_dir, model_dir, warm_start=None):
    """Saves a trained embedding as an embedding artifact in <model_dir>/Format-Embedding.

    The next scheduled run's warm start reads it (pretrained_embedding's base_model).

    Args:
      partitions: the layer's variables, in row order (PartitionedEmbedding.partitions).
      artifact_dir: the EmbeddingGen artifact the model was trained from: its vocabulary and
        row layout describe the trained rows too.
      model_dir: the Trainer's model directory (the parent of fn_args.serving_model_dir).
      warm_start: the layer's `warm_start` counts, recorded in the export's manifest.

    Returns:
      The export's directory.

    Example:
      tfx_embeddings.export_trained_embedding(
          layer.partitions, embedding_uri, os.path.dirname(fn_args.serving_model_dir),
          layer.warm_start)
    """
    source = embedding_artifact.EmbeddingArtifact(artifact_dir)
    shape = source.manifest.shape
    out = os.path.join(model_dir, EMBEDDING_EXPORT_DIR)
    staging = embedding_artifact.staging_dir(out)
    bounds = np.cumsum([0] + [int(p.shape[0]) for p in partitions])
    if bounds[-1] != shape[0]:
        raise CheckpointError(f"{artifact_dir}: {shape[0]} rows, the partitions hold "
                              f"{bounds[-1]}")
    # One partition at a time, each into a checkpoint of its own, then merged.
    prefixes, shards = [], []
    for i, part in enumerate(partitions):
        prefixes.append(os.path.join(staging, f"part-{i:05d}", "part"))
        sha256 = embedding_artifact.write_rows(prefixes[-1], shape, int(bounds[i]),
                                               tf.convert_to_tensor(part), sliced=True)
        shards.append(embedding_artifact.Shard(int(bounds[i]), int(bounds[i + 1]), sha256))
    prefix = os.path.join(staging, embedding_artifact.CHECKPOINT_PREFIX)
    embedding_artifact.merge(prefixes, shards, shape, prefix)
    embedding_artifact.verify_shards(prefix, shape, shards)
    embedding_artifact.publish(
        staging, out, layout=source.manifest.layout, vocabulary_path=source.vocabulary_path,
        vocabulary_has_counts=source.manifest.vocabulary_has_counts, shards=shards,
        has_vector=source.has_vector(), trained_from=artifact_dir, warm_start=warm_start,
        token_ids=source.manifest.token_ids)
    return out


def restore_matching_weights(model, base_model_serving_dir, skip_layer):
    """Gives every other weight of model the previous model's value where its shape matches.

    Keras names a functional model's weights in a SavedModel by position among the layers
    that have weights; a weight whose layer moved or changed shape starts fresh.
    """
    prefix = os.path.join(base_model_serving_dir, "variables", "variables")
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    restored = []
    for index, layer in enumerate(each for each in model.layers if each.weights):
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

"""Restore API for trainers: an embedding whose initial value is a restore op in the graph.

    layer = restore.pretrained_embedding(fn_args.custom_config["embedding_uri"],
                                         transform_output=tf_transform_output)

Each variable is initialized by RestoreV2 reading its rows of the checkpoint straight into the
tensor that becomes the variable, so the matrix never exists as a numpy array in the trainer.
The layer keeps one variable per row partition (any number, whatever the writer's shard count),
so restoring needs memory for one partition beyond the matrix itself. It is a Keras Embedding
(mask_zero, padding row 0); the exported SavedModel carries the trained values and serving never
needs the checkpoint.
"""

import logging
import os

import tensorflow as tf
import tf_keras

from components.embedding_gen import checkpoint, warmstart


@tf_keras.saving.register_keras_serializable(package="pretrained_embeddings")
class CheckpointInitializer(tf_keras.initializers.Initializer):
    """Restores rows [start_row, start_row + num_rows) of a checkpointed [rows, dimension]
    float32 tensor with RestoreV2.

    Under a variable partitioner (ParameterServerStrategy) Keras passes each partition's shape
    and offset, and each partition restores only its own rows.
    """

    def __init__(self, prefix, shape, tensor_name=checkpoint.TENSOR_NAME, start_row=0,
                 num_rows=None):
        self.prefix, self.shape, self.tensor_name = prefix, tuple(shape), tensor_name
        self.start_row = start_row
        self.num_rows = self.shape[0] - start_row if num_rows is None else num_rows

    def for_rows(self, start_row, num_rows):
        return CheckpointInitializer(self.prefix, self.shape, self.tensor_name, start_row,
                                     num_rows)

    def __call__(self, shape, dtype=None, **kwargs):
        if dtype is not None and tf.as_dtype(dtype) != tf.float32:
            raise checkpoint.CheckpointError(
                f"{self.prefix}: the embedding is float32, the model asks for {dtype}")
        asked = tuple(int(d) for d in shape)
        if asked != (self.num_rows, self.shape[1]):
            raise checkpoint.CheckpointError(
                f"{self.prefix}: the checkpoint holds a {list(self.shape)} embedding, the model "
                f"asks for {list(asked)}" + (f" at row {self.start_row}" if self.start_row else ""))
        rows = int(kwargs.get("partition_shape", asked)[0])
        start = self.start_row + int(kwargs.get("partition_offset", (0, 0))[0])
        try:
            return checkpoint.read_slice(self.prefix, self.shape, start, start + rows)
        except tf.errors.OpError as e:
            raise checkpoint.CheckpointError(
                f"{self.prefix}: rows [{start}, {start + rows}) cannot be restored: "
                f"{e.message}") from None

    def get_config(self):
        return {"prefix": self.prefix, "shape": list(self.shape), "tensor_name": self.tensor_name,
                "start_row": self.start_row, "num_rows": self.num_rows}


@tf_keras.saving.register_keras_serializable(package="pretrained_embeddings")
class PartitionedEmbedding(tf_keras.layers.Embedding):
    """A Keras Embedding whose matrix is num_partitions variables of contiguous rows.

    Lookups use tf.nn.embedding_lookup's "div" strategy; with one partition it is exactly a
    Keras Embedding. With a warm_start plan (warmstart.WarmStartPlan), the rows of tokens the
    previous model knew are written over the initial rows in place once the variables exist.
    """

    def __init__(self, input_dim, output_dim, num_partitions=1, warm_start=None, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.num_partitions = max(1, min(num_partitions, input_dim))
        self._warm_start = warm_start

    def build(self, input_shape=None):
        self._build_partitions(input_shape)
        if self._warm_start is not None:
            with tf.init_scope():
                start = 0
                for part in self.partitions:  # A strategy's sharded variable: its pieces.
                    for piece in getattr(part, "variables", [part]):
                        self._warm_start.overlay(piece, start)
                        start += int(piece.shape[0])

    def _build_partitions(self, input_shape):
        if self.num_partitions == 1:
            super().build(input_shape)
            self.partitions = [self.embeddings]
            return
        bounds = checkpoint.shard_bounds(self.input_dim, self.num_partitions)
        initializer = self.embeddings_initializer
        self.partitions = []
        for i in range(self.num_partitions):
            start, stop = bounds[i], bounds[i + 1]
            part_initializer = (initializer.for_rows(start, stop - start)
                                if isinstance(initializer, CheckpointInitializer) else initializer)
            self.partitions.append(self.add_weight(
                name=f"embeddings/part_{i}", shape=(stop - start, self.output_dim),
                initializer=part_initializer, experimental_autocast=False))
        self.built = True

    def call(self, inputs):
        if self.num_partitions == 1:
            return super().call(inputs)
        if inputs.dtype not in (tf.int32, tf.int64):
            inputs = tf.cast(inputs, tf.int64)
        return tf.nn.embedding_lookup(self.partitions, inputs)

    def get_config(self):
        return {**super().get_config(), "num_partitions": self.num_partitions}


def pretrained_embedding(artifact_dir, *, transform_output=None, vocabulary_name="tokens",
                         trainable=True, num_partitions=None, base_model=None, name="embedding"):
    """A Keras Embedding layer (mask_zero) initialized from a published embedding artifact.

    num_partitions: variables the matrix is split into; by default as many as the checkpoint's
    shards. With transform_output (a tft.TFTransformOutput), refuses an artifact whose
    vocabulary is not the one the TransformGraph maps tokens with: rows would not line up.
    base_model: the previous model's SavedModel directory (Trainer's fn_args.base_model); the
    rows of tokens it knew then start from its trained values (see warmstart.py). The layer's
    `warm_start` attribute tells how many rows came from each source.
    """
    manifest = checkpoint.load_manifest(artifact_dir)
    if transform_output is not None:
        check_vocabulary(manifest, transform_output.vocabulary_file_by_name(vocabulary_name),
                         artifact_dir)
    prefix = os.path.join(artifact_dir, manifest["checkpoint_prefix"])
    check_files(artifact_dir, manifest)
    shape = tuple(manifest["shape"])
    plan = None
    warm_start = {"previous_model": 0, "pretrained": int(manifest["coverage"]["tokens_with_vector"]),
                  "initializer": shape[0] - int(manifest["coverage"]["tokens_with_vector"])}
    previous = base_model and warmstart.previous_embedding_dir(base_model)
    if base_model and not previous:
        logging.warning("Warm start: %s has no trained embedding export; starting from the "
                        "pretrained vectors alone", base_model)
    elif previous:
        try:
            check_files(previous, checkpoint.load_manifest(previous))
            plan = warmstart.WarmStartPlan(previous, artifact_dir)
        except checkpoint.CheckpointError as e:
            plan = None
            logging.warning("Warm start skipped, starting from the pretrained vectors alone: %s", e)
        else:
            warm_start = plan.counts()
    logging.info("Embedding %s rows: %s", list(shape), warm_start)
    layer = PartitionedEmbedding(
        shape[0], shape[1], num_partitions=num_partitions or len(manifest["shards"]),
        mask_zero=True, trainable=trainable, name=name, warm_start=plan,
        embeddings_initializer=CheckpointInitializer(prefix, shape, manifest["tensor_name"]))
    layer.warm_start = warm_start
    return layer


def check_vocabulary(manifest, vocabulary_path, artifact_dir):
    """Raises CheckpointError unless the vocabulary file is byte-identical to the artifact's."""
    expected = manifest["fingerprints"]["vocabulary_sha256"]
    actual = checkpoint.file_sha256(vocabulary_path)
    if actual != expected:
        raise checkpoint.CheckpointError(
            f"{artifact_dir}: the embedding was built for another vocabulary than "
            f"{vocabulary_path} (sha256 {expected[:12]}... != {actual[:12]}...); its rows would "
            f"not line up with the token ids")


def check_files(artifact_dir, manifest):
    """Raises CheckpointError if a checkpoint file is missing or not the size it was published at."""
    problems = []
    for name, size in sorted(manifest["files"].items()):
        path = os.path.join(artifact_dir, name)
        if not tf.io.gfile.exists(path):
            problems.append(f"{name} is missing")
        elif tf.io.gfile.stat(path).length != size:
            problems.append(f"{name} has {tf.io.gfile.stat(path).length} bytes, "
                            f"{size} were published (truncated or replaced)")
    if problems:
        raise checkpoint.CheckpointError(f"{artifact_dir}: the checkpoint is damaged: "
                                         + "; ".join(problems))

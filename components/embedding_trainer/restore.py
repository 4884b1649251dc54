"""The restore layer: a Keras Embedding whose initial value is a restore op in the graph.

Each variable is initialized by RestoreV2 reading its rows of the checkpoint straight into the
tensor that becomes the variable, so the matrix never exists as a numpy array in the trainer.
The layer keeps one variable per row partition (any number, whatever the writer's shard count),
so restoring needs memory for one partition beyond the matrix itself. The exported SavedModel
carries the trained values: serving never needs the checkpoint.
"""

import dataclasses

import keras
import tensorflow as tf
import tf_keras

from .. import embedding_artifact, model_changes
from ..embedding_artifact import CheckpointError
from ..embedding_gen import token_ids
from . import keras_versions, warmstart


class _CheckpointRows:
    """Restores rows [start_row, start_row + num_rows) of a checkpointed [rows, dimension]
    float32 tensor with RestoreV2 (a Keras initializer, for tf_keras or Keras 3).

    Under a variable partitioner (ParameterServerStrategy) Keras passes each partition's shape
    and offset, and each partition restores only its own rows.
    """

    def __init__(self, prefix, shape, start_row=0, num_rows=None):
        self.prefix, self.shape = prefix, tuple(shape)
        self.start_row = start_row
        self.num_rows = self.shape[0] - start_row if num_rows is None else num_rows

    def __call__(self, shape, dtype=None, **kwargs):
        self._check(shape, dtype)
        rows = int(kwargs.get("partition_shape", shape)[0])
        start = self.start_row + int(kwargs.get("partition_offset", (0, 0))[0])
        return self._read([(start, start + rows)])[0]

    def read_partitions(self, bounds, dtype=None):
        """The initial values of partitions [bounds[i], bounds[i + 1]) of these rows, in one
        RestoreV2 call, which reads them in parallel."""
        self._check((bounds[-1] - bounds[0], self.shape[1]), dtype)
        return self._read([(self.start_row + a, self.start_row + b)
                           for a, b in zip(bounds, bounds[1:])])

    def _check(self, shape, dtype):
        if dtype is not None and tf.as_dtype(dtype) != tf.float32:
            raise CheckpointError(f"{self.prefix}: the embedding is float32, the model asks for "
                                  f"{dtype}")
        asked = tuple(int(d) for d in shape)
        if asked != (self.num_rows, self.shape[1]):
            raise CheckpointError(
                f"{self.prefix}: the checkpoint holds a {list(self.shape)} embedding, the model "
                f"asks for {list(asked)}" + (f" at row {self.start_row}" if self.start_row else ""))

    def _read(self, ranges):
        try:
            return embedding_artifact.read_row_ranges(self.prefix, self.shape, ranges)
        except tf.errors.OpError as e:
            where = ", ".join(f"[{a}, {b})" for a, b in ranges)
            raise CheckpointError(f"{self.prefix}: rows {where} cannot be restored: "
                                  f"{e.message}") from None

    def get_config(self):
        return {"prefix": self.prefix, "shape": list(self.shape), "start_row": self.start_row,
                "num_rows": self.num_rows}


@tf_keras.saving.register_keras_serializable(package="tfx_embeddings")
class CheckpointInitializer(_CheckpointRows, tf_keras.initializers.Initializer):
    """_CheckpointRows for tf_keras."""


@keras.saving.register_keras_serializable(package="tfx_embeddings")
class Keras3CheckpointInitializer(_CheckpointRows, keras.initializers.Initializer):
    """_CheckpointRows for Keras 3."""


class _Partitions:
    """A Keras Embedding whose matrix is num_partitions variables of contiguous rows (mixed into
    tf_keras's Embedding or Keras 3's).

    Lookups use tf.nn.embedding_lookup's "div" strategy; with one partition it is exactly a
    Keras Embedding. With a warm_start plan (warmstart.WarmStartPlan), the previous model's rows
    are laid over the initial rows in place once the variables exist. An id outside the rows
    fails the step with a message that says so (not deep inside a DynamicPartition).
    """
    KERAS = None

    def __init__(self, input_dim, output_dim, num_partitions=1, warm_start=None, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.num_partitions = max(1, min(num_partitions, input_dim))
        self._warm_start = warm_start

    def __call__(self, inputs, *args, **kwargs):
        keras_versions.check_same_keras(self.KERAS, inputs, f"The embedding {self.name!r}")
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape=None):
        self._build_partitions(input_shape)
        if self._warm_start is not None:
            with tf.init_scope():  # A strategy's sharded variable: its pieces.
                self._warm_start.overlay([piece for part in self.partitions
                                          for piece in _tf_variables(part)])

    def _build_partitions(self, input_shape):
        if self.num_partitions == 1:
            super().build(input_shape)
            self.partitions = [self._single_variable()]
            return
        bounds = embedding_artifact.shard_bounds(self.input_dim, self.num_partitions)
        initializer = self.embeddings_initializer
        # A checkpoint's partitions are restored in one read, each tensor handed to its variable
        # (and not kept here: it becomes the variable's buffer).
        values = (initializer.read_partitions(bounds) if hasattr(initializer, "read_partitions")
                  else None)
        partitions = []
        for i in range(self.num_partitions):
            start, stop = bounds[i], bounds[i + 1]
            part_initializer = initializer
            if values is not None:
                value, values[i] = values[i], None
                part_initializer = lambda shape, dtype=None, value=value, **_: value  # noqa: E731
                del value
            partitions.append(self._add_partition(i, (stop - start, self.output_dim),
                                                  part_initializer))
            del part_initializer
        self.partitions = partitions
        self.built = True

    def call(self, inputs):
        if inputs.dtype not in (tf.int32, tf.int64):
            inputs = tf.cast(inputs, tf.int64)
        checks = [tf.debugging.assert_non_negative(
                      inputs, message=f"{self.name}: a token id is negative; the embedding's "
                                      f"rows are 0-{self.input_dim - 1}"),
                  tf.debugging.assert_less(
                      inputs, tf.cast(self.input_dim, inputs.dtype),
                      message=f"{self.name}: a token id is not a row of the embedding "
                              f"(0-{self.input_dim - 1}); are the ids the TransformGraph "
                              f"gives the ones EmbeddingGen checked?")]
        with tf.control_dependencies(checks):
            inputs = tf.identity(inputs)
        if self.num_partitions == 1:
            return super().call(inputs)
        return tf.nn.embedding_lookup([_tf_variable(p) for p in self.partitions], inputs)

    def get_config(self):
        return {**super().get_config(), "num_partitions": self.num_partitions}


def _tf_variable(variable):
    """The tf.Variable behind a Keras variable (Keras 3 wraps one; tf_keras's is one)."""
    return variable if isinstance(variable, tf.Variable) else variable.value


def _tf_variables(variable):
    """The tf.Variables holding a Keras variable's rows: a strategy's sharded variable is
    several."""
    variable = _tf_variable(variable)
    return list(getattr(variable, "variables", [variable]))


@tf_keras.saving.register_keras_serializable(package="tfx_embeddings")
class PartitionedEmbedding(_Partitions, tf_keras.layers.Embedding):
    """_Partitions for tf_keras."""
    KERAS = keras_versions.TF_KERAS

    def _single_variable(self):
        return self.embeddings

    def _add_partition(self, index, shape, initializer):
        return self.add_weight(name=f"embeddings/part_{index}", shape=shape,
                               initializer=initializer, experimental_autocast=False)


@keras.saving.register_keras_serializable(package="tfx_embeddings")
class Keras3PartitionedEmbedding(_Partitions, keras.layers.Embedding):
    """_Partitions for Keras 3."""
    KERAS = keras_versions.KERAS_3

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_jit = False  # The id checks and LazyAdam's row updates run outside XLA.

    def _single_variable(self):
        return self._embeddings

    def _add_partition(self, index, shape, initializer):
        return self.add_weight(name=f"embeddings_part_{index}", shape=shape,
                               initializer=initializer, autocast=False)

    def call(self, inputs):
        return tf.cast(super().call(inputs), self.compute_dtype)


_CLASSES = {keras_versions.TF_KERAS: (PartitionedEmbedding, CheckpointInitializer),
            keras_versions.KERAS_3: (Keras3PartitionedEmbedding, Keras3CheckpointInitializer)}


def pretrained_embedding(artifact_dir, *, transform_output=None, vocabulary_name=None,
                         trainable=True, num_partitions=None, base_model=None, mask_zero=None,
                         keras=None, input_dim=None, output_dim=None, name="embedding"):
    """A Keras Embedding layer initialized from a published embedding artifact, in the graph.

    What the layer changes in the model (its rows, the ids of unknown tokens and padding,
    mask_zero and why, its width against input_dim and output_dim) is stated once, as WARNING
    lines of the logger `tfx_embeddings.model_changes`, which a LocalDagRunner shows.

    Args:
      artifact_dir: the EmbeddingGen artifact's directory; EmbeddingTrainer hands it to run_fn
        as `fn_args.custom_config[tfx_embeddings.EMBEDDING_URI_KEY]`.
      transform_output: a tft.TFTransformOutput: the artifact is refused unless it was built
        from the very vocabulary file of vocabulary_name (the vocab_filename of the
        preprocessing_fn's vocabulary), or, without a name, of one of the TransformGraph's
        vocabularies: otherwise its rows would not line up with the token ids.
      vocabulary_name: see transform_output.
      trainable: whether training updates the embedding.
      num_partitions: variables the matrix is split into; by default one per checkpoint shard
        (each then restores exactly one shard). Under ParameterServerStrategy with a
        variable_partitioner, pass 1: each of the strategy's partitions restores its own rows.
      base_model: the previous model's serving directory (Trainer's fn_args.base_model): tokens
        it knew start from their trained rows, new tokens from this artifact (see warmstart).
      mask_zero: whether id 0 is masked (Keras's mask_zero); by default, where id 0 is the
        padded layout's padding row, as EmbeddingGen found the TransformGraph's ids. Stated.
      keras: "tf_keras" or "keras3", the Keras of the model the layer goes in; by default the
        one `tf.keras` is (Keras 3 unless TF_USE_LEGACY_KERAS is set), as in the user's module.
      input_dim, output_dim: the sizes of the model's own Embedding, where it had one (Keras's
        arguments of the same names): the layer's are the artifact's, and the statement says
        how they differ. They change nothing else.
      name: the layer's name.

    Returns:
      An Embedding layer of that Keras (PartitionedEmbedding, Keras3PartitionedEmbedding) of
      the artifact's shape. Its `warm_start` attribute (embedding_artifact.WarmStart) tells how
      many rows come from each source, `partitions` holds its variables once built, and
      `model_changes` the statements, as logged.

    Raises:
      CheckpointError: the artifact is unpublished or damaged, built for another vocabulary,
        or (when the layer is built) the model asks for another shape.
      ValueError: an unknown keras.
      TypeError: (when called) the model's tensors are of the other Keras, naming both.

    Example:
      def run_fn(fn_args):
          tft_output = tft.TFTransformOutput(fn_args.transform_output)
          embedding = tfx_embeddings.pretrained_embedding(   # was keras.layers.Embedding(...)
              fn_args.custom_config[tfx_embeddings.EMBEDDING_URI_KEY],
              transform_output=tft_output, base_model=fn_args.base_model, output_dim=64)
          token_ids = keras.Input(shape=(None,), dtype="int64")
          x = keras.layers.GlobalAveragePooling1D()(embedding(token_ids))
    """
    artifact = embedding_artifact.EmbeddingArtifact(artifact_dir)
    if transform_output is not None:
        _check_vocabulary(artifact, transform_output, vocabulary_name)
    artifact.check_files()
    manifest = artifact.manifest
    layer_class, initializer_class = _CLASSES[keras_versions.resolve(keras)]
    asked = mask_zero
    if mask_zero is None:
        mask_zero = manifest.layout.padding_row == 0
    plan = warmstart.plan_warm_start(artifact, base_model)
    counts = plan.counts() if plan else warmstart.cold_start_counts(artifact)
    layer = layer_class(
        manifest.shape[0], manifest.shape[1],
        num_partitions=num_partitions or len(manifest.shards), mask_zero=mask_zero,
        trainable=trainable, name=name, warm_start=plan,
        embeddings_initializer=initializer_class(artifact.checkpoint_prefix, manifest.shape))
    layer.warm_start = counts
    layer.model_changes = tuple(model_changes_text(manifest, name, mask_zero, asked, counts,
                                                   input_dim=input_dim, output_dim=output_dim))
    for line in layer.model_changes:
        model_changes.state("pretrained_embedding", "%s", line)
    return layer


def _check_vocabulary(artifact, transform_output, vocabulary_name):
    if vocabulary_name is not None:
        artifact.check_vocabulary(transform_output.vocabulary_file_by_name(vocabulary_name))
        return
    assets = token_ids.vocabulary_assets(transform_output)
    if any(embedding_artifact.file_sha256(path) == artifact.manifest.vocabulary_sha256
           for path in assets.values()):
        return
    raise CheckpointError(
        f"{artifact.uri}: the embedding was built for another vocabulary than the "
        f"TransformGraph's ({', '.join(map(repr, assets)) or 'it holds none'}): its rows would "
        f"not line up with the token ids")


def model_changes_text(manifest, name, mask_zero, asked, counts, *, input_dim=None,
                       output_dim=None):
    """The statements of what a restore layer changes in the model: its rows, mask_zero (on or
    off, and why: asked is the mask_zero given, None for the default), its width."""
    layout, ids = manifest.layout, manifest.token_ids
    rows, width = manifest.shape
    sources = ", ".join(f"{source.replace('_', ' ')} {count}" for source, count in
                        dataclasses.asdict(counts).items() if count is not None)
    lines = [f"layer {name!r}: {rows} rows ({layout.rows_text()}; {layout.name} layout, "
             + (f"as EmbeddingGen found the TransformGraph's ids: unknown tokens "
                f"{', '.join(map(str, ids.oov_ids[:3]))}{', ...' if len(ids.oov_ids) > 3 else ''}"
                + (f", padding {ids.padding_id}" if ids.padding_id is not None else "")
                if ids else "not checked against a TransformGraph's ids")
             + f"); rows from: {sources}"]
    lines.append(f"layer {name!r}: {_mask_text(mask_zero, asked, layout, ids)}")
    sizes = f"layer {name!r}: width {width}, the vector file's dimension"
    if output_dim is not None and output_dim != width:
        sizes += (f", where the model's own Embedding had {output_dim}: the layers after it "
                  f"take {width} values per token")
    elif output_dim is not None:
        sizes += ", as the model's own Embedding"
    if input_dim is not None and input_dim != rows:
        sizes += (f"; {rows} rows (ids 0-{rows - 1}) where the model's own Embedding had "
                  f"{input_dim}" + (": an id from "
                                    f"{rows} on fails the step" if input_dim > rows else ""))
    elif input_dim is not None:
        sizes += f"; {rows} rows, as the model's own Embedding"
    lines.append(sizes)
    return lines


def _mask_text(mask_zero, asked, layout, ids):
    """mask_zero on or off, and why."""
    padding = layout.padding_row == 0
    if padding:
        zero = "id 0 is the padding row (zeros)"
        if ids is not None and ids.padding_id == 0:
            zero += ", the TransformGraph's padding"
        if ids is not None and 0 in ids.oov_ids:
            zero += ", and unknown tokens' id too"
    else:
        zero = "id 0 is the row of token 0, not padding"
    if asked is None:
        return (f"mask_zero {'on' if mask_zero else 'off'}: {zero}"
                + ("; the layers after it skip those positions (mask_zero=False turns it off)"
                   if mask_zero else ""))
    if mask_zero == padding:
        return f"mask_zero {'on' if mask_zero else 'off'}, as given: {zero}"
    return (f"mask_zero {'on' if mask_zero else 'off'}, as given, though {zero}: "
            + ("that token is masked wherever it occurs" if mask_zero else
               "the layers after it see padding positions as rows of zeros"))

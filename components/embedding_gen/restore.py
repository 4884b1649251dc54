"""Restore API for trainers: an embedding whose initial value is a restore op in the graph.

    layer = restore.pretrained_embedding(fn_args.custom_config["embedding_uri"],
                                         transform_output=tf_transform_output)

The variable is initialized by RestoreV2 reading the checkpoint directly into the tensor that
becomes the variable, so the matrix never exists as a numpy array in the trainer process. The
layer is a standard Keras Embedding (mask_zero, padding row 0), so the exported SavedModel
carries the trained values and serving never needs the checkpoint.
"""

import os

import tensorflow as tf
import tf_keras

from components.embedding_gen import checkpoint


@tf_keras.saving.register_keras_serializable(package="pretrained_embeddings")
class CheckpointInitializer(tf_keras.initializers.Initializer):
    """Initializes a [rows, dimension] float32 variable, or one partition of it, from a checkpoint.

    Under a variable partitioner (ParameterServerStrategy) Keras passes each partition's shape
    and offset, and each partition restores only its own rows.
    """

    def __init__(self, prefix, shape, tensor_name=checkpoint.TENSOR_NAME):
        self.prefix, self.shape, self.tensor_name = prefix, tuple(shape), tensor_name

    def __call__(self, shape, dtype=None, **kwargs):
        if dtype is not None and tf.as_dtype(dtype) != tf.float32:
            raise checkpoint.CheckpointError(
                f"{self.prefix}: the embedding is float32, the model asks for {dtype}")
        full = tuple(int(d) for d in shape)
        if full != self.shape:
            raise checkpoint.CheckpointError(
                f"{self.prefix}: the checkpoint holds a {list(self.shape)} embedding, the model "
                f"asks for {list(full)}")
        rows = int(kwargs.get("partition_shape", full)[0])
        start = int(kwargs.get("partition_offset", (0, 0))[0])
        return checkpoint.read_slice(self.prefix, self.shape, start, start + rows)

    def get_config(self):
        return {"prefix": self.prefix, "shape": list(self.shape), "tensor_name": self.tensor_name}


def pretrained_embedding(artifact_dir, *, transform_output=None, vocabulary_name="tokens",
                         trainable=True, name="embedding"):
    """A Keras Embedding layer (mask_zero) initialized from a published embedding artifact.

    With transform_output (a tft.TFTransformOutput), refuses an artifact whose vocabulary is not
    the one the TransformGraph maps tokens with: row order would silently be wrong.
    """
    manifest = checkpoint.load_manifest(artifact_dir)
    if transform_output is not None:
        check_vocabulary(manifest, transform_output.vocabulary_file_by_name(vocabulary_name),
                         artifact_dir)
    prefix = os.path.join(artifact_dir, manifest["checkpoint_prefix"])
    check_files(prefix, len(manifest["shards"]))
    rows, dimension = manifest["shape"]
    return tf_keras.layers.Embedding(
        rows, dimension, mask_zero=True, trainable=trainable, name=name,
        embeddings_initializer=CheckpointInitializer(prefix, (rows, dimension),
                                                     manifest["tensor_name"]))


def check_vocabulary(manifest, vocabulary_path, artifact_dir):
    """Raises CheckpointError unless the vocabulary file is byte-identical to the artifact's."""
    expected = manifest["fingerprints"]["vocabulary_sha256"]
    actual = checkpoint.file_sha256(vocabulary_path)
    if actual != expected:
        raise checkpoint.CheckpointError(
            f"{artifact_dir}: the embedding was built for another vocabulary than "
            f"{vocabulary_path} (sha256 {expected[:12]}... != {actual[:12]}...); its rows would "
            f"not line up with the token ids")


def check_files(prefix, num_shards):
    """Raises CheckpointError if the index or a data file of the checkpoint is missing."""
    expected = [f"{prefix}.index"] + [f"{prefix}.data-{i:05d}-of-{num_shards:05d}"
                                      for i in range(num_shards)]
    missing = [path for path in expected if not tf.io.gfile.exists(path)]
    if missing:
        raise checkpoint.CheckpointError(f"{prefix}: checkpoint files are missing: "
                                         + ", ".join(os.path.basename(p) for p in missing))

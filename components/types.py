"""Artifact types the project adds to TFX.

Type names are namespaced (`embeddings.`), as Kubeflow Pipelines requires of custom types.
"""

from tfx.types import artifact


class PretrainedEmbedding(artifact.Artifact):
    """A sharded embedding checkpoint, its vocabulary, projector files and manifest.json.

    Row i + 1 of the checkpoint is line i of vocabulary.txt (row 0 is padding, OOV buckets
    follow the vocabulary); manifest.json records that layout, the shards and fingerprints.
    """
    TYPE_NAME = "embeddings.PretrainedEmbedding"


class Vocabulary(artifact.Artifact):
    """vocabulary.txt: `count token` lines, byte for byte what tft.vocabulary(store_frequency=True)
    writes for the same tokens and options; line i is token id i (before the padding offset)."""
    TYPE_NAME = "embeddings.Vocabulary"

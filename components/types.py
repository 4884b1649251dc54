"""Artifact types the project adds to TFX."""

from tfx.types import artifact


class PretrainedEmbedding(artifact.Artifact):
    """A sharded embedding checkpoint, its vocabulary, projector files and manifest.json.

    Row i + 1 of the checkpoint is line i of vocabulary.txt (row 0 is padding, OOV buckets
    follow the vocabulary); manifest.json records that layout, the shards and fingerprints.
    """
    TYPE_NAME = "PretrainedEmbedding"

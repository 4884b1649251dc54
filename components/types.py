"""Artifact types the project adds to TFX.

Type names are namespaced (`embeddings.`), as Kubeflow Pipelines requires of custom types.
"""

from tfx.types import artifact


class PretrainedEmbedding(artifact.Artifact):
    """A sharded embedding checkpoint, its vocabulary, projector files and manifest.json; read it
    with `tfx_embeddings.EmbeddingArtifact(uri)` (components/embedding_artifact.py says it all)."""
    TYPE_NAME = "embeddings.PretrainedEmbedding"


class Vocabulary(artifact.Artifact):
    """vocabulary.txt: `count token` lines, byte for byte what tft.vocabulary(store_frequency=True)
    writes for the same tokens and options; line i is token id i."""
    TYPE_NAME = "embeddings.Vocabulary"

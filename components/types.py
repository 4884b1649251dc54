"""Artifact types the project adds to TFX.

A type's name is `tfx_embeddings.<Class>`: a Kubeflow schema title (`<namespace>.<Title>`), and
the path TFX's Kubeflow entrypoint imports the class from (`tfx_embeddings` exports it).
"""

from tfx.types import artifact


class PretrainedEmbedding(artifact.Artifact):
    """A sharded embedding checkpoint, its vocabulary, projector files and manifest.json; read it
    with `tfx_embeddings.EmbeddingArtifact(uri)` (components/embedding_artifact.py says it all)."""
    TYPE_NAME = "tfx_embeddings.PretrainedEmbedding"


class Vocabulary(artifact.Artifact):
    """vocabulary.txt: `count token` lines, byte for byte what tft.vocabulary(store_frequency=True)
    writes for the same tokens and options; line i is token id i."""
    TYPE_NAME = "tfx_embeddings.Vocabulary"

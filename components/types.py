"""Artifact types the project adds to TFX.

A type's name is `tfx_embeddings.<Class>`: a Kubeflow schema title (`<namespace>.<Title>`), and
the path TFX's Kubeflow entrypoint imports the class from (`tfx_embeddings` exports it).
"""

from tfx.types import artifact, value_artifact


class PretrainedEmbedding(artifact.Artifact):
    """A sharded embedding checkpoint, its vocabulary, projector files and manifest.json; read it
    with `tfx_embeddings.EmbeddingArtifact(uri)` (components/embedding_artifact.py says it all)."""
    TYPE_NAME = "tfx_embeddings.PretrainedEmbedding"


class Vocabulary(artifact.Artifact):
    """vocabulary.txt: `count token` lines, byte for byte what tft.vocabulary(store_frequency=True)
    writes for the same tokens and options; line i is token id i."""
    TYPE_NAME = "tfx_embeddings.Vocabulary"


class HtmlReport(value_artifact.ValueArtifact):
    """A self-contained HTML page (EmbeddingGen's coverage report).

    Its type name is Kubeflow's for HTML (`system.HTML`), so Kubeflow's UI shows it as the
    step's visualization; the container entrypoint of compiled specs
    (tfx_embeddings.pipeline.kubeflow.entrypoint) maps that name back to this class.
    """
    TYPE_NAME = "system.HTML"

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        return serialized_value.decode("utf-8")

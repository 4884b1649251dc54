"""Pretrained word embeddings for TFX pipelines: vocabulary -> sharded checkpoint -> trainer.

The public API, all of it here; every other module is private. A pipeline adds the components,
its trainer module restores the embedding into the model:

    import tfx_embeddings

    embedding_gen = tfx_embeddings.EmbeddingGen(
        transform_graph=transform.outputs["transform_graph"],
        vectors_path="gs://bucket/glove.840B.300d.txt.gz",
        vocabulary_name="body_vocabulary",            # the preprocessing_fn's vocab_filename
        row_layout="tft")                             # ids as tft.compute_and_apply_vocabulary
    trainer = tfx_embeddings.EmbeddingTrainer(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        embedding=embedding_gen.outputs["embedding"],
        module_file="trainer.py")

    # trainer.py
    def run_fn(fn_args):
        layer = tfx_embeddings.pretrained_embedding(
            fn_args.custom_config[tfx_embeddings.EMBEDDING_URI_KEY],
            transform_output=tft.TFTransformOutput(fn_args.transform_output),
            vocabulary_name="body_vocabulary")
        ...

Components: `EmbeddingGen`, `VocabularyGen`, `VocabularyTransform`, `EmbeddingTrainer`,
`LatestBlessedModel`, and their artifact types `PretrainedEmbedding`, `Vocabulary`,
`HtmlReport`. Trainer side: `pretrained_embedding`, `LazyAdam`, `export_trained_embedding`
(tf_keras or Keras 3: the Keras `tf.keras` is, unless `pretrained_embedding(keras=...)` says).
The artifact: `EmbeddingArtifact`, `RowLayout`. Beam without TFX: `build_embedding`. In a
preprocessing_fn: `apply_vocabulary`, `Tokenizer`. Errors: `VectorFileError`,
`VocabularyFileError`, `CheckpointError`, `ObjectStorageError`. Orchestrators and runners:
`run_local` (a scheduled run here: one at a time, nothing left behind, old artifacts retired by
a `RetentionPolicy`), `compile_for_kubeflow` (open-source Kubeflow Pipelines or Vertex),
`FlinkCluster` (a Flink cluster on this machine for a pipeline's Beam steps).

Names are imported when first used, so a Beam worker that imports one module of the package does
not load TensorFlow or TFX for the others.
"""

import importlib
import typing

__version__ = "0.2.0"

_EXPORTS = {
    "EmbeddingGen": "components.embedding_gen.component",
    "VocabularyGen": "components.vocabulary_gen.component",
    "VocabularyTransform": "components.vocabulary_transform.component",
    "EmbeddingTrainer": "components.embedding_trainer.component",
    "LatestBlessedModel": "components.latest_blessed_model.component",
    "EMBEDDING_URI_KEY": "components.specs",
    "PretrainedEmbedding": "components.types",
    "Vocabulary": "components.types",
    "HtmlReport": "components.types",
    "pretrained_embedding": "components.embedding_trainer.restore",
    "export_trained_embedding": "components.embedding_trainer.warmstart",
    "LazyAdam": "components.embedding_trainer.optimizers",
    "EmbeddingArtifact": "components.embedding_artifact",
    "RowLayout": "components.embedding_artifact",
    "CheckpointError": "components.embedding_artifact",
    "build_embedding": "components.embedding_gen.build",
    "VectorFileError": "components.embedding_gen.vectors",
    "VocabularyFileError": "components.vocabulary_file",
    "ObjectStorageError": "components.object_storage",
    "apply_vocabulary": "components.vocabulary_gen.lookup",
    "Tokenizer": "components.vocabulary_gen.tokenizer",
    "compile_for_kubeflow": "pipeline.kubeflow.compiler",
    "FlinkCluster": "pipeline.flink.cluster",
    "run_local": "pipeline.local",
    "RetentionPolicy": "pipeline.retention",
}

__all__ = sorted(_EXPORTS)

# What IDEs and type checkers see (tested to match _EXPORTS); `X as X` marks a re-export.
if typing.TYPE_CHECKING:
    from .components.embedding_artifact import CheckpointError as CheckpointError
    from .components.embedding_artifact import EmbeddingArtifact as EmbeddingArtifact
    from .components.embedding_artifact import RowLayout as RowLayout
    from .components.embedding_gen.build import build_embedding as build_embedding
    from .components.embedding_gen.component import EmbeddingGen as EmbeddingGen
    from .components.embedding_gen.vectors import VectorFileError as VectorFileError
    from .components.embedding_trainer.component import EmbeddingTrainer as EmbeddingTrainer
    from .components.embedding_trainer.optimizers import LazyAdam as LazyAdam
    from .components.embedding_trainer.restore import pretrained_embedding as pretrained_embedding
    from .components.embedding_trainer.warmstart import (
        export_trained_embedding as export_trained_embedding,
    )
    from .components.latest_blessed_model.component import LatestBlessedModel as LatestBlessedModel
    from .components.object_storage import ObjectStorageError as ObjectStorageError
    from .components.specs import EMBEDDING_URI_KEY as EMBEDDING_URI_KEY
    from .components.types import HtmlReport as HtmlReport
    from .components.types import PretrainedEmbedding as PretrainedEmbedding
    from .components.types import Vocabulary as Vocabulary
    from .components.vocabulary_file import VocabularyFileError as VocabularyFileError
    from .components.vocabulary_gen.component import VocabularyGen as VocabularyGen
    from .components.vocabulary_gen.lookup import apply_vocabulary as apply_vocabulary
    from .components.vocabulary_gen.tokenizer import Tokenizer as Tokenizer
    from .components.vocabulary_transform.component import (
        VocabularyTransform as VocabularyTransform,
    )
    from .pipeline.flink.cluster import FlinkCluster as FlinkCluster
    from .pipeline.kubeflow.compiler import compile_for_kubeflow as compile_for_kubeflow
    from .pipeline.local import run_local as run_local
    from .pipeline.retention import RetentionPolicy as RetentionPolicy


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfx_embeddings' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

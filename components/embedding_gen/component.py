"""EmbeddingGen: joins the TransformGraph's vocabulary with a pretrained vector file into a
sharded TF checkpoint, with Beam (any runner, through the pipeline's beam_pipeline_args)."""

from typing import Optional, Sequence

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel

from ..specs import EmbeddingGenSpec
from ..types import HtmlReport, PretrainedEmbedding
from . import executor
from .parameters import (
    EmbeddingGenParameters,
    InvalidUtf8,
    Normalization,
    RowLayoutName,
    UnicodeNormalization,
    VectorFormat,
)


class EmbeddingGen(base_beam_component.BaseBeamComponent):
    """A PretrainedEmbedding whose rows follow the TransformGraph's vocabulary, built with Beam.

    Row by row in the vocabulary's order (see `row_layout`), each token's row is its vector from
    the file, or a deterministic initializer row when the file has none; padding and OOV bucket
    rows are reserved. The checkpoint is written in shards by parallel Beam workers, verified,
    then published with its manifest (`tfx_embeddings.EmbeddingArtifact` reads it).

    Args:
      transform_graph: channel of the TransformGraph whose vocabulary asset is the row order.
      vectors_path: the pretrained vector file: GloVe, word2vec text or binary, fastText .vec,
        plain or .gz/.bz2; any path tf.io.gfile opens (gs://, s3://, hdfs:// with their plugins).
      vocabulary_name: the preprocessing_fn's vocab_filename (the TransformGraph asset's name);
        None (the default): the TransformGraph's only vocabulary, or, with several, the one
        whose ids `ids_feature` carries (otherwise the run fails listing each vocabulary and
        the transformed features that carry its ids).
      vector_format, vocabulary_has_counts, row_layout, num_oov_buckets, num_shards,
        max_shard_mb, init_scale, case_fold_fallback, invalid_utf8, min_coverage,
        coverage_warning, normalization, unicode_normalization, max_line_bytes,
        max_dimension, text_feature, ids_feature: how the file is read and
        the checkpoint laid out and written; each is documented, with its range, in
        `EmbeddingGenParameters` (components/embedding_gen/parameters.py).

    Outputs: `embedding`: PretrainedEmbedding (with its coverage report, report.html);
      `report`: the same report as an HtmlReport, which Kubeflow shows as the step's
      visualization.

    Raises:
      ParameterError: a parameter out of its range (checked here, when the pipeline is built).

    Example:
      embedding_gen = tfx_embeddings.EmbeddingGen(
          transform_graph=transform.outputs["transform_graph"],
          vectors_path="gs://bucket/crawl-300d-2M.vec", vocabulary_name="body_vocabulary",
          vocabulary_has_counts=False, row_layout="tft", num_oov_buckets=1)
    """
    SPEC_CLASS = EmbeddingGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, transform_graph, vectors_path: str, vocabulary_name: Optional[str] = None,
                 *,
                 vector_format: VectorFormat = "auto",
                 vocabulary_has_counts: bool = True,
                 row_layout: RowLayoutName = "auto",
                 num_oov_buckets: int = 1,
                 num_shards: int = 4,
                 max_shard_mb: Optional[float] = None,
                 init_scale: float = 0.05,
                 case_fold_fallback: bool = False,
                 invalid_utf8: InvalidUtf8 = "error",
                 min_coverage: float = 0.25,
                 coverage_warning: float = 0.8,
                 normalization: Sequence[Normalization] = (),
                 unicode_normalization: Optional[UnicodeNormalization] = None,
                 max_line_bytes: int = 1 << 20,
                 max_dimension: int = 1 << 16,
                 text_feature: Optional[str] = None,
                 ids_feature: Optional[str] = None):
        # Every keyword is an EmbeddingGenParameters field with its default (tested).
        parameters = EmbeddingGenParameters(
            vector_format=vector_format, vocabulary_has_counts=vocabulary_has_counts,
            row_layout=row_layout, num_oov_buckets=num_oov_buckets, num_shards=num_shards,
            max_shard_mb=max_shard_mb, init_scale=init_scale,
            case_fold_fallback=case_fold_fallback, invalid_utf8=invalid_utf8,
            min_coverage=min_coverage, coverage_warning=coverage_warning,
            normalization=tuple(normalization), unicode_normalization=unicode_normalization,
            max_line_bytes=max_line_bytes, max_dimension=max_dimension, text_feature=text_feature,
            ids_feature=ids_feature)
        super().__init__(spec=EmbeddingGenSpec(
            transform_graph=transform_graph,
            vectors_path=vectors_path,
            vocabulary_name=vocabulary_name,
            **parameters.to_exec_properties(),
            embedding=channel.Channel(type=PretrainedEmbedding),
            report=channel.Channel(type=HtmlReport)))

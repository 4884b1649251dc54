"""EmbeddingGen: joins the TransformGraph's vocabulary with a pretrained vector file into a
sharded TF checkpoint, with Beam (any runner, through the pipeline's beam_pipeline_args)."""

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_embeddings.components.embedding_gen import executor
from tfx_embeddings.components.embedding_gen.parameters import (EmbeddingGenParameters,
                                                                spec_parameters)
from tfx_embeddings.components.types import HtmlReport, PretrainedEmbedding


class EmbeddingGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        "vectors_path": component_spec.ExecutionParameter(type=str),
        "vocabulary_name": component_spec.ExecutionParameter(type=str),
        **spec_parameters(),
    }
    INPUTS = {
        executor.TRANSFORM_GRAPH_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {
        executor.EMBEDDING_KEY: component_spec.ChannelParameter(type=PretrainedEmbedding),
        executor.REPORT_KEY: component_spec.ChannelParameter(type=HtmlReport),
    }


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
      vocabulary_name: the preprocessing_fn's vocab_filename (the TransformGraph asset's name).
      **parameters: how the file is read and the checkpoint laid out and written:
        `EmbeddingGenParameters` (vector_format, vocabulary_has_counts, row_layout,
        num_oov_buckets, num_shards, max_shard_mb, init_scale, case_fold_fallback,
        invalid_utf8, min_coverage, coverage_warning, normalization, text_feature,
        ids_feature), each with its default there.

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

    def __init__(self, transform_graph, vectors_path, vocabulary_name, **parameters):
        super().__init__(spec=EmbeddingGenSpec(
            transform_graph=transform_graph,
            vectors_path=vectors_path,
            vocabulary_name=vocabulary_name,
            **EmbeddingGenParameters(**parameters).to_exec_properties(),
            embedding=channel.Channel(type=PretrainedEmbedding),
            report=channel.Channel(type=HtmlReport)))

"""EmbeddingGen: joins the TransformGraph's vocabulary with a pretrained vector file into a
sharded TF checkpoint, with Beam (any runner, through the pipeline's beam_pipeline_args)."""

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from tfx_embeddings.components.embedding_gen import executor
from tfx_embeddings.components.types import HtmlReport, PretrainedEmbedding


class EmbeddingGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        "vectors_path": component_spec.ExecutionParameter(type=str),
        "vector_format": component_spec.ExecutionParameter(type=str),
        "vocabulary_name": component_spec.ExecutionParameter(type=str),
        "vocabulary_has_counts": component_spec.ExecutionParameter(type=int),
        "row_layout": component_spec.ExecutionParameter(type=str),
        "num_oov_buckets": component_spec.ExecutionParameter(type=int),
        "num_shards": component_spec.ExecutionParameter(type=int),
        "max_shard_bytes": component_spec.ExecutionParameter(type=int, optional=True),
        "init_scale": component_spec.ExecutionParameter(type=float),
        "case_fold_fallback": component_spec.ExecutionParameter(type=int),
        "invalid_utf8": component_spec.ExecutionParameter(type=str),
        "min_coverage": component_spec.ExecutionParameter(type=float),
        "normalization": component_spec.ExecutionParameter(type=str),
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
      vector_format: "auto" (detected), "glove", "word2vec_text", "word2vec_binary" or
        "fasttext_bin" (a fastText .bin model: tokens missing from its words get the vector
        fastText computes from their character n-grams).
      vocabulary_has_counts: True for `count token` lines (tft.vocabulary(store_frequency=True),
        VocabularyGen), False for a file of tokens only (tft's default).
      row_layout: "padded": row 0 is padding (Keras mask_zero), token i is row i + 1; "tft":
        token i is row i, as tft.compute_and_apply_vocabulary's ids. OOV bucket rows follow the
        vocabulary in both.
      num_oov_buckets: as given to the vocabulary lookup; one row each after the vocabulary.
      num_shards: row shards of the checkpoint, each written by a different Beam worker.
      max_shard_bytes: if set, instead of num_shards: the fewest shards of at most this size.
      init_scale: rows of tokens without a vector are U(-init_scale, init_scale), seeded by the
        token, so they are the same on every run.
      case_fold_fallback: a token without an exact match takes the vector of the first row whose
        token case-folds like it (an exact match always wins); counted in the manifest.
      invalid_utf8: "error", or "replace": match a non-UTF-8 token of the file after decoding it
        with replacement characters; counted in the manifest.
      min_coverage: the job fails, publishing nothing, when less than this share of the
        vocabulary's tokens, or of the corpus's tokens where the vocabulary has counts, has a
        vector: the sign of a wrong file or a misread one. 0 accepts any file. Subword vectors
        do not count: a model in another language gives every token one.
      normalization: steps applied to the file's vectors, in order: "center" (subtract the
        mean of all the file's vectors; not for .bin models) and "l2" (scale to unit length).
        Recorded in the manifest; warm start never renormalizes trained rows.

    Outputs: `embedding`: PretrainedEmbedding (with its coverage report, report.html);
      `report`: the same report as an HtmlReport, which Kubeflow shows as the step's
      visualization.

    Raises:
      ValueError: an argument out of its range (checked here, when the pipeline is built).

    Example:
      embedding_gen = tfx_embeddings.EmbeddingGen(
          transform_graph=transform.outputs["transform_graph"],
          vectors_path="gs://bucket/crawl-300d-2M.vec", vocabulary_name="body_vocabulary",
          vocabulary_has_counts=False, row_layout="tft", num_oov_buckets=1)
    """
    SPEC_CLASS = EmbeddingGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, transform_graph, vectors_path, vocabulary_name, *, vector_format="auto",
                 vocabulary_has_counts=True, row_layout="padded", num_oov_buckets=1,
                 num_shards=4, max_shard_bytes=None, init_scale=0.05, case_fold_fallback=False,
                 invalid_utf8="error", min_coverage=0.25, normalization=()):
        executor.Options(vector_format=vector_format, row_layout=row_layout,
                         num_oov_buckets=num_oov_buckets, num_shards=num_shards,
                         max_shard_bytes=max_shard_bytes, init_scale=init_scale,
                         case_fold_fallback=case_fold_fallback, invalid_utf8=invalid_utf8,
                         min_coverage=min_coverage, normalization=normalization)
        super().__init__(spec=EmbeddingGenSpec(
            transform_graph=transform_graph,
            vectors_path=vectors_path,
            vector_format=vector_format,
            vocabulary_name=vocabulary_name,
            vocabulary_has_counts=int(vocabulary_has_counts),
            row_layout=row_layout,
            num_oov_buckets=num_oov_buckets,
            num_shards=num_shards,
            max_shard_bytes=max_shard_bytes,
            init_scale=init_scale,
            case_fold_fallback=int(case_fold_fallback),
            invalid_utf8=invalid_utf8,
            min_coverage=float(min_coverage),
            normalization=",".join(normalization),
            embedding=channel.Channel(type=PretrainedEmbedding),
            report=channel.Channel(type=HtmlReport)))

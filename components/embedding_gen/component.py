"""EmbeddingGen: joins the TransformGraph's vocabulary with a pretrained vector file into a
sharded TF checkpoint, with Beam (any runner, through the pipeline's beam_pipeline_args)."""

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts

from components.embedding_gen import executor
from components.types import PretrainedEmbedding


class EmbeddingGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        "vectors_path": component_spec.ExecutionParameter(type=str),
        "vector_format": component_spec.ExecutionParameter(type=str),
        "vocabulary_name": component_spec.ExecutionParameter(type=str),
        "vocabulary_has_counts": component_spec.ExecutionParameter(type=int),
        "num_oov_buckets": component_spec.ExecutionParameter(type=int),
        "num_shards": component_spec.ExecutionParameter(type=int),
        "max_shard_bytes": component_spec.ExecutionParameter(type=int, optional=True),
        "init_scale": component_spec.ExecutionParameter(type=float),
        "case_fold_fallback": component_spec.ExecutionParameter(type=int),
        "invalid_utf8": component_spec.ExecutionParameter(type=str),
    }
    INPUTS = {
        executor.TRANSFORM_GRAPH_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {
        executor.EMBEDDING_KEY: component_spec.ChannelParameter(type=PretrainedEmbedding),
    }


class EmbeddingGen(base_beam_component.BaseBeamComponent):
    """Produces a PretrainedEmbedding artifact whose rows follow the vocabulary's order.

    Args:
      transform_graph: channel of the TransformGraph whose vocabulary asset is the row order.
      vectors_path: the pretrained vector file (GloVe, word2vec text or binary, fastText .vec;
        optionally .gz/.bz2); any path tf.io.gfile opens.
      vector_format: "auto" (detected), "glove", "word2vec_text" or "word2vec_binary".
      vocabulary_name: the `vocab_filename` given to tft.vocabulary in the preprocessing_fn.
      num_oov_buckets: as given to the vocabulary lookup; one row each after the vocabulary.
      num_shards: row shards of the checkpoint, each written by a different Beam worker.
      max_shard_bytes: if set, instead of num_shards: the fewest shards of at most this size.
      init_scale: rows of tokens without a vector are U(-init_scale, init_scale), seeded by
        the token, so they are the same on every run.
      case_fold_fallback: a token without an exact match takes the vector of the first row
        whose token case-folds like it (an exact match always wins); counted in the manifest.
      invalid_utf8: "error" (default) or "replace": match a non-UTF-8 token after decoding it
        with replacement characters; counted in the manifest.
    """
    SPEC_CLASS = EmbeddingGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, transform_graph, vectors_path, vocabulary_name, *, vector_format="auto",
                 vocabulary_has_counts=True, num_oov_buckets=1, num_shards=4, max_shard_bytes=None,
                 init_scale=0.05, case_fold_fallback=False, invalid_utf8="error"):
        super().__init__(spec=EmbeddingGenSpec(
            transform_graph=transform_graph,
            vectors_path=vectors_path,
            vector_format=vector_format,
            vocabulary_name=vocabulary_name,
            vocabulary_has_counts=int(vocabulary_has_counts),
            num_oov_buckets=num_oov_buckets,
            num_shards=num_shards,
            max_shard_bytes=max_shard_bytes,
            init_scale=init_scale,
            case_fold_fallback=int(case_fold_fallback),
            invalid_utf8=invalid_utf8,
            embedding=channel.Channel(type=PretrainedEmbedding)))

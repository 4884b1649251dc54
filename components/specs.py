"""Every component's spec and every key of its inputs, outputs and parameters, in one place, as
TFX keeps its own (`tfx/types/standard_component_specs.py`). TFX's keys are reused where the
project's components take the same input; the executors read their dicts with these names.
"""

from tfx.types import component_spec, standard_artifacts, standard_component_specs
from tfx.types.standard_component_specs import (  # noqa: F401 (the keys, from here too)
    BASE_MODEL_KEY,
    BASELINE_MODEL_KEY,
    CUSTOM_CONFIG_KEY,
    EXAMPLES_KEY,
    MODEL_KEY,
    TRANSFORM_GRAPH_KEY,
)

from .embedding_gen import parameters
from .types import HtmlReport, PretrainedEmbedding, Vocabulary

# Channels the project adds.
EMBEDDING_KEY = "embedding"  # A PretrainedEmbedding: EmbeddingGen's output, the trainer's input.
REPORT_KEY = "report"  # EmbeddingGen's coverage report, an HtmlReport (Kubeflow's UI shows it).
VOCABULARY_KEY = "vocabulary"  # A Vocabulary: VocabularyGen's output, VocabularyTransform's input.

# EmbeddingGen's parameters besides EmbeddingGenParameters'.
VECTORS_PATH_KEY = "vectors_path"
VOCABULARY_NAME_KEY = "vocabulary_name"

# VocabularyGen's parameters.
SPLITS_KEY = "splits"
TEXT_FEATURE_KEY = "text_feature"
TOKENIZE_FN_KEY = "tokenize_fn"
TOP_K_KEY = "top_k"
FREQUENCY_THRESHOLD_KEY = "frequency_threshold"
MAX_TOKENS_PER_DOCUMENT_KEY = "max_tokens_per_document"

# LatestBlessedModel's parameters.
PIPELINE_NAME_KEY = "pipeline_name"
TRAINER_TASK_KEY = "trainer_task"
EVALUATOR_TASK_KEY = "evaluator_task"

# Keys of the user code's custom_config that the project's executors fill in.
EMBEDDING_URI_KEY = "embedding_uri"  # run_fn: the embedding artifact's directory.
VOCABULARY_FILE_KEY = "vocabulary_file"  # preprocessing_fn: VocabularyGen's file.


class EmbeddingGenSpec(component_spec.ComponentSpec):
    """EmbeddingGen: a TransformGraph and a vector file in, a PretrainedEmbedding out."""
    PARAMETERS = {
        VECTORS_PATH_KEY: component_spec.ExecutionParameter(type=str),
        VOCABULARY_NAME_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        **parameters.spec_parameters(),
    }
    INPUTS = {
        TRANSFORM_GRAPH_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {
        EMBEDDING_KEY: component_spec.ChannelParameter(type=PretrainedEmbedding),
        REPORT_KEY: component_spec.ChannelParameter(type=HtmlReport),
    }


class VocabularyGenSpec(component_spec.ComponentSpec):
    """VocabularyGen: Examples in, a Vocabulary out."""
    PARAMETERS = {
        SPLITS_KEY: component_spec.ExecutionParameter(type=str),
        TEXT_FEATURE_KEY: component_spec.ExecutionParameter(type=str),
        TOKENIZE_FN_KEY: component_spec.ExecutionParameter(type=str),
        TOP_K_KEY: component_spec.ExecutionParameter(type=int, optional=True),
        FREQUENCY_THRESHOLD_KEY: component_spec.ExecutionParameter(type=int, optional=True),
        MAX_TOKENS_PER_DOCUMENT_KEY: component_spec.ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        VOCABULARY_KEY: component_spec.ChannelParameter(type=Vocabulary),
    }


class VocabularyTransformSpec(standard_component_specs.TransformSpec):
    """TFX's Transform, plus an optional Vocabulary input."""
    INPUTS = {
        **standard_component_specs.TransformSpec.INPUTS,
        VOCABULARY_KEY: component_spec.ChannelParameter(type=Vocabulary, optional=True),
    }


class EmbeddingTrainerSpec(standard_component_specs.TrainerSpec):
    """TFX's Trainer, plus a PretrainedEmbedding input."""
    INPUTS = {
        **standard_component_specs.TrainerSpec.INPUTS,
        EMBEDDING_KEY: component_spec.ChannelParameter(type=PretrainedEmbedding),
    }


class LatestBlessedModelSpec(component_spec.ComponentSpec):
    """LatestBlessedModel: nothing in, the latest blessed Model (or one marked not found) out."""
    PARAMETERS = {
        # Ignored (the step finds its own run's pipeline); kept for specs compiled by 0.2.
        PIPELINE_NAME_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        TRAINER_TASK_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        EVALUATOR_TASK_KEY: component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model)}

"""The pipeline's configuration: a YAML file, loaded safely and validated before anything runs.

Every section refuses unknown keys, so a typo is an error that names the file and the key rather
than a setting silently ignored. Relative paths are resolved against the working directory.
"""

import os
import typing
from typing import Dict, List, Literal, Optional, Union

import pydantic
import yaml

from ...components.embedding_gen import parameters


class ConfigError(ValueError):
    """A config file that cannot be used, with the file and key in the message."""


class _Section(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


class DataConfig(_Section):
    examples: str
    """Directory with train/ and eval/ subdirectories of CSV files (columns text, label)."""
    vectors: str
    """Pretrained vector file (GloVe, word2vec text or binary, fastText .vec; plain, .gz or .bz2);
    any path tf.io.gfile opens."""
    schema_file: str = "schema.pbtxt"
    """The raw examples' schema: a file name alone names one shipped in the package (schemas/),
    any other path is read where the step runs."""


class TextConfig(_Section):
    max_tokens: int = pydantic.Field(64, gt=0)
    """Tokens kept per document; shorter documents are padded with id 0."""
    top_k: Optional[int] = pydantic.Field(None, gt=0)
    frequency_threshold: int = pydantic.Field(1, ge=1)
    num_oov_buckets: int = pydantic.Field(1, ge=1)
    vocabulary_splits: List[Literal["train", "eval"]] = pydantic.Field(["train"], min_length=1)
    """Splits whose text the vocabulary is computed over (labels are never read for it)."""
    vocabulary: Literal["fast", "tft"] = "fast"
    """fast: the VocabularyGen component before Transform; tft: tft.vocabulary inside Transform.
    Both write the same file (top_k, frequency_threshold, counts); fast takes less time."""
    max_tokens_per_document: Optional[int] = pydantic.Field(None, gt=0)
    """Only the first tokens of each document count toward the vocabulary (all are still mapped)."""


def _embedding_config():
    """The `embedding` section: EmbeddingGen's parameters that the config sets (see
    EmbeddingGenParameters for each), with their types and defaults; their ranges are checked
    by EmbeddingGenParameters itself when the config is loaded."""
    fields = {}
    for name, annotation, default in parameters.config_fields():
        if typing.get_origin(annotation) is tuple:  # YAML gives a list.
            annotation = List[typing.get_args(annotation)[0]]
            default = list(default)
        fields[name] = (annotation, default)
    return pydantic.create_model("EmbeddingConfig", __base__=_Section, **fields)


EmbeddingConfig = _embedding_config()


class TrainerConfig(_Section):
    trainable_embedding: bool = True
    epochs: int = pydantic.Field(10, gt=0)
    batch_size: int = pydantic.Field(32, gt=0)
    learning_rate: float = pydantic.Field(0.01, gt=0)
    train_random_baseline: bool = False
    """Also train the same model from a random embedding, to compare with the pretrained one."""
    train_cold_start_baseline: bool = False
    """Also train the pretrained model without warm start, to compare with the warm start."""


class EvaluationConfig(_Section):
    """When a trained model is blessed, so pushed and the base of the next run's warm start."""
    min_accuracy: float = pydantic.Field(0.6, ge=0, le=1)
    """Eval accuracy a model needs, at the least."""
    max_accuracy_drop: float = pydantic.Field(0.01, ge=0, le=1)
    """How far below the latest blessed model's eval accuracy a model may fall."""


class RetentionConfig(_Section):
    """Which artifacts the pipeline keeps after each run (pipeline.retention.RetentionPolicy)."""
    keep_runs: Optional[int] = pydantic.Field(None, ge=1)
    """The artifacts the last keep_runs successful runs used or produced are kept, with the
    latest blessed and the latest pushed model; the others are retired (files deleted, ML
    Metadata record DELETED). None: nothing is retired."""


Quantity = Optional[Union[str, int, float]]


class StepResources(_Section):
    """A Kubeflow step's pod resources, as Kubernetes quantities ("500m", 2, "8Gi")."""
    cpu_request: Quantity = None
    cpu_limit: Quantity = None
    memory_request: Quantity = None
    memory_limit: Quantity = None


class KubeflowConfig(_Section):
    """What `compile` (open-source Kubeflow Pipelines) writes besides the pipeline itself."""
    resources: Dict[str, StepResources] = {}
    """{step id, or "*" for every step: its CPU and memory requests and limits}."""


class PipelineConfig(_Section):
    pipeline_name: str
    pipeline_root: str
    serving_dir: str
    data: DataConfig
    text: TextConfig = TextConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    trainer: TrainerConfig = TrainerConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    retention: RetentionConfig = RetentionConfig()
    metadata_path: Optional[str] = None
    """SQLite metadata store of local runs; by default metadata.sqlite under a local
    pipeline_root (required when pipeline_root is remote)."""
    beam_pipeline_args: List[str] = ["--runner=FnApiRunner", "--direct_running_mode=in_memory"]
    """Beam options of every Beam step. Name the runner: Beam 2.74's default (DirectRunner) first
    tries to download the Prism runner, at every run; FnApiRunner is the one it then runs."""
    enable_cache: bool = True
    kubeflow: KubeflowConfig = KubeflowConfig()


def _absolute(path):
    return path if "://" in path else os.path.abspath(path)


def load_config(path):
    """Reads and validates a YAML config; raises ConfigError naming the file and the key."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        config = PipelineConfig.model_validate(raw)
    except pydantic.ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {_describe(err)}" for err in e.errors())
        raise ConfigError(f"{path}: {problems}") from None
    try:
        embedding_parameters(config)
    except parameters.ParameterError as e:
        raise ConfigError(f"{path}: embedding.{e.name}: {e.problem}") from None
    metadata_path = config.metadata_path
    if metadata_path is None and "://" not in config.pipeline_root:
        metadata_path = os.path.join(config.pipeline_root, "metadata.sqlite")
    return config.model_copy(update={
        "metadata_path": metadata_path and _absolute(metadata_path),
        "pipeline_root": _absolute(config.pipeline_root),
        "serving_dir": _absolute(config.serving_dir),
        "data": config.data.model_copy(update={
            "examples": _absolute(config.data.examples),
            "vectors": _absolute(config.data.vectors)}),
    })


def embedding_parameters(config):
    """EmbeddingGen's parameters from a PipelineConfig: its `embedding` section, and the
    vocabulary's OOV buckets (`text.num_oov_buckets`, which the preprocessing_fn uses too).

    Raises:
      ParameterError: one out of its range."""
    return parameters.EmbeddingGenParameters(num_oov_buckets=config.text.num_oov_buckets,
                                             **config.embedding.model_dump())


def _describe(err):
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return f"{err['msg']} (got {err['input']!r})"

"""The pipeline's configuration: a YAML file, loaded safely and validated before anything runs.

Every section refuses unknown keys, so a typo is an error that names the file and the key rather
than a setting silently ignored. Relative paths are resolved against the working directory.
"""

import os
from typing import List, Literal, Optional

import pydantic
import yaml


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


class EmbeddingConfig(_Section):
    format: Literal["auto", "glove", "word2vec_text", "word2vec_binary", "fasttext_bin"] = "auto"
    """auto detects it; fastText .vec files are word2vec_text, .bin models fasttext_bin."""
    normalization: List[Literal["center", "l2"]] = []
    """Steps applied to the file's vectors, in order: center (subtract the mean of all of the
    file's vectors), l2 (unit length). Off by default."""
    case_fold_fallback: bool = False
    """A token without an exact match takes the first case-folded match; exact always wins."""
    invalid_utf8: Literal["error", "replace"] = "error"
    num_shards: int = pydantic.Field(4, gt=0)
    max_shard_mb: Optional[float] = pydantic.Field(None, gt=0)
    """If set, instead of num_shards: the fewest shards of at most this many MiB each."""
    min_coverage: float = pydantic.Field(0.25, ge=0, le=1)
    """EmbeddingGen fails, publishing nothing, when fewer of the vocabulary's tokens (or of the
    corpus's tokens) have a vector: a wrong or misread file. 0 accepts any file."""
    init_scale: float = pydantic.Field(0.05, gt=0)
    """Rows of tokens without a vector are drawn from U(-init_scale, init_scale), seeded by the token."""


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


class PipelineConfig(_Section):
    pipeline_name: str
    pipeline_root: str
    serving_dir: str
    data: DataConfig
    text: TextConfig = TextConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    trainer: TrainerConfig = TrainerConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    metadata_path: Optional[str] = None
    """SQLite metadata store of local runs; by default metadata.sqlite under a local
    pipeline_root (required when pipeline_root is remote)."""
    beam_pipeline_args: List[str] = ["--runner=FnApiRunner", "--direct_running_mode=in_memory"]
    """Beam options of every Beam step. Name the runner: Beam 2.74's default (DirectRunner) first
    tries to download the Prism runner, at every run; FnApiRunner is the one it then runs."""
    enable_cache: bool = True


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


def _describe(err):
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return f"{err['msg']} (got {err['input']!r})"

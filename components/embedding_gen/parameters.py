"""EmbeddingGen's parameters, defined once.

`EmbeddingGenParameters` is the one definition of each parameter: its type, its default and
its range. The component spec's PARAMETERS, the component's constructor, the executor (which
reads them back from exec properties), the pipeline config's `embedding` section and
`build_embedding` are all derived from it, so a default or a range lives in one place and every
entry point refuses the same values with the same message.
"""

import dataclasses
import json
import math
import numbers
import typing
from typing import Literal, Optional, Tuple

VectorFormat = Literal["auto", "glove", "word2vec_text", "word2vec_binary", "fasttext_bin"]
RowLayoutName = Literal["auto", "padded", "tft"]
InvalidUtf8 = Literal["error", "replace"]
Normalization = Literal["center", "l2"]
UnicodeNormalization = Literal["NFC", "NFKC"]
VECTOR_FORMATS = typing.get_args(VectorFormat)[1:]
ROW_LAYOUTS = typing.get_args(RowLayoutName)[1:]
INVALID_UTF8_POLICIES = typing.get_args(InvalidUtf8)
NORMALIZATIONS = typing.get_args(Normalization)
UNICODE_NORMALIZATIONS = typing.get_args(UnicodeNormalization)


class ParameterError(ValueError):
    """A parameter out of its range; `name` is the parameter's name."""

    def __init__(self, name, problem):
        super().__init__(f"{name} {problem}")
        self.name, self.problem = name, problem


def _field(default, check=None, *, in_config=True):
    """A parameter: check(value) returns what is wrong with a value (None when it is fine); by
    default, the annotation's (a Literal's choices, a bool). in_config: whether the pipeline
    config's `embedding` section sets it (the others come from elsewhere in the config, or from
    the TransformGraph)."""
    return dataclasses.field(default=default, metadata={"check": check, "in_config": in_config})


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _one_of(*choices):
    return lambda value: None if value in choices else f"must be one of {choices}, got {value!r}"


def _int_at_least(low, optional=False):
    def check(value):
        if optional and value is None:
            return None
        if not _is_int(value) or value < low:
            return f"must be {'None or ' if optional else ''}an int >= {low}, got {value!r}"
        return None
    return check


def _number(low, high=None, *, above=False, optional=False):
    def check(value):
        if optional and value is None:
            return None
        ok = _is_number(value) and (value > low if above else value >= low) and (
            high is None or value <= high)
        if ok:
            return None
        bound = (f"> {low}" if above else f"in [{low}, {high}]" if high is not None
                 else f">= {low}")
        return f"must be {'None or ' if optional else ''}a finite number {bound}, got {value!r}"
    return check


def _flag(value):
    return None if isinstance(value, bool) else f"must be True or False, got {value!r}"


def _steps(value):
    if (isinstance(value, (tuple, list)) and set(value) <= set(NORMALIZATIONS)
            and len(set(value)) == len(value)):
        return None
    return f"must be steps of {NORMALIZATIONS}, each once, got {value!r}"


def _unicode_form(value):
    if value is None or value in UNICODE_NORMALIZATIONS:
        return None
    return f"must be None or one of {UNICODE_NORMALIZATIONS}, got {value!r}"


def _name(value):
    if value is None or (isinstance(value, str) and value):
        return None
    return f"must be None or a feature name, got {value!r}"


@dataclasses.dataclass(frozen=True)
class EmbeddingGenParameters:
    """How EmbeddingGen reads the vector file and lays out and writes the checkpoint.

    Attributes:
      vector_format: "auto" (detected), "glove", "word2vec_text", "word2vec_binary" or
        "fasttext_bin" (a fastText .bin model: tokens missing from its words get the vector
        fastText computes from their character n-grams).
      vocabulary_has_counts: True for `count token` lines (tft.vocabulary(store_frequency=True),
        VocabularyGen), False for a file of tokens only (tft's default).
      row_layout: "auto": found from the ids the TransformGraph gives (EmbeddingGen only);
        "padded": row 0 is padding (Keras mask_zero), token i is row i + 1; "tft": token i is
        row i, as tft.compute_and_apply_vocabulary's ids. OOV bucket rows follow the vocabulary
        in both. EmbeddingGen checks the layout against the TransformGraph's ids either way.
      num_oov_buckets: as given to the vocabulary lookup; one row each after the vocabulary.
      num_shards: row shards of the checkpoint, each written by a different Beam worker.
      max_shard_mb: if set, instead of num_shards: the fewest shards of at most this many MiB.
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
      coverage_warning: below this share (of the vocabulary's tokens, or of the corpus's), the
        coverage line EmbeddingGen logs is a WARNING, with what would raise it when a cheap
        change would (case folding, punctuation); INFO otherwise.
      normalization: steps applied to the file's vectors, in order: "center" (subtract the
        mean of all the file's vectors; not for .bin models) and "l2" (scale to unit length).
        Recorded in the manifest; warm start never renormalizes trained rows.
      unicode_normalization: None, "NFC" or "NFKC": the vocabulary's tokens and the file's are
        both normalized to this Unicode form before they are matched ("café" as one code point
        or as "e" and a combining accent); recorded in the manifest. The coverage line says
        when it would raise the coverage.
      max_line_bytes: a text line longer than this is refused (naming its byte offset), as
        soon as it is met: a file of one huge line (CR-only line ends, a zero-filled partial
        download) is no vector file, and is not read whole into memory.
      max_dimension: a dimension above this (a word2vec header's, or a text row's number of
        values) is refused.
      text_feature: the raw feature the preprocessing_fn tokenizes (EmbeddingGen only; found
        when not given).
      ids_feature: the transformed feature of its token ids (EmbeddingGen only; found when not
        given).

    Raises:
      ParameterError: naming the first parameter out of its range.
    """
    vector_format: VectorFormat = _field("auto")
    vocabulary_has_counts: bool = _field(True, in_config=False)
    row_layout: RowLayoutName = _field("auto")
    num_oov_buckets: int = _field(1, _int_at_least(0), in_config=False)
    num_shards: int = _field(4, _int_at_least(1))
    max_shard_mb: Optional[float] = _field(None, _number(0, above=True, optional=True))
    init_scale: float = _field(0.05, _number(0, above=True))
    case_fold_fallback: bool = _field(False)
    invalid_utf8: InvalidUtf8 = _field("error")
    min_coverage: float = _field(0.25, _number(0, 1))
    coverage_warning: float = _field(0.8, _number(0, 1))
    normalization: Tuple[Normalization, ...] = _field((), _steps)
    unicode_normalization: Optional[UnicodeNormalization] = _field(None, _unicode_form)
    max_line_bytes: int = _field(1 << 20, _int_at_least(1))
    max_dimension: int = _field(1 << 16, _int_at_least(1))
    text_feature: Optional[str] = _field(None, _name, in_config=False)
    ids_feature: Optional[str] = _field(None, _name, in_config=False)

    def __post_init__(self):
        if isinstance(self.normalization, list):
            object.__setattr__(self, "normalization", tuple(self.normalization))
        for field in dataclasses.fields(self):
            check = field.metadata["check"] or _check_of(_hints()[field.name])
            problem = check(getattr(self, field.name))
            if problem:
                raise ParameterError(field.name, problem)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_exec_properties(self):
        """The parameters as TFX exec properties (ints, floats and strings; None left out)."""
        properties = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            properties[field.name] = (int(value) if isinstance(value, bool)
                                      else json.dumps(list(value)) if isinstance(value, tuple)
                                      else value)
        return properties

    @classmethod
    def from_exec_properties(cls, properties):
        """The inverse of to_exec_properties, from an executor's exec_properties."""
        values = {}
        for field in dataclasses.fields(cls):
            value = properties.get(field.name)
            if value is None:
                continue
            kind = _base_type(_hints()[field.name])
            values[field.name] = (bool(value) if kind is bool
                                  else tuple(json.loads(value)) if kind is tuple
                                  else value)
        return cls(**values)


def _hints():
    return typing.get_type_hints(EmbeddingGenParameters)


def _check_of(annotation):
    if typing.get_origin(annotation) is Literal:
        return _one_of(*typing.get_args(annotation))
    if annotation is bool:
        return _flag
    raise TypeError(f"a parameter of type {annotation} needs a check")


def _base_type(annotation):
    """bool, int, float, str or tuple: the primitive a parameter's annotation stands for."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        return _base_type(args[0])
    if origin is Literal:
        return type(args[0])
    if origin is tuple:
        return tuple
    return annotation


def spec_parameters():
    """EmbeddingGenSpec's PARAMETERS entries, one per parameter."""
    from tfx.types import component_spec

    parameters = {}
    for field in dataclasses.fields(EmbeddingGenParameters):
        kind = _base_type(_hints()[field.name])
        parameters[field.name] = component_spec.ExecutionParameter(
            type={bool: int, tuple: str}.get(kind, kind), optional=True)
    return parameters


def config_fields():
    """(name, annotation, default) of the parameters the pipeline config sets."""
    return [(field.name, _hints()[field.name], field.default)
            for field in dataclasses.fields(EmbeddingGenParameters)
            if field.metadata["in_config"]]

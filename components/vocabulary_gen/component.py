"""VocabularyGen: the vocabulary of the examples' text, computed with Beam before Transform.

Its file is byte-identical to what tft.vocabulary writes inside Transform, in a fraction of the
time; VocabularyTransform then maps tokens with it, so it becomes the TransformGraph's asset.
"""

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel
from tfx.utils import json_utils

from ..specs import VocabularyGenSpec
from ..types import Vocabulary
from . import executor


class VocabularyGen(base_beam_component.BaseBeamComponent):
    """Produces a Vocabulary artifact from the text feature of some splits of the examples.

    Args:
      examples: channel of tf.Example Examples (ExampleGen's output).
      tokenize_fn: module path of the function that maps a [batch] string tensor to a ragged
        [batch, None] tensor of tokens: the one the preprocessing_fn uses, run here on batches
        (a `tokenizer.Tokenizer` runs in Arrow, without TensorFlow, where that is exact).
      splits: the splits whose text is counted.
      text_feature: the bytes feature holding the text.
      top_k, frequency_threshold: as for tft.vocabulary.
      max_tokens_per_document: only the first tokens of each document count, if set.
    """
    SPEC_CLASS = VocabularyGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples, tokenize_fn, *, splits=("train",), text_feature="text",
                 top_k=None, frequency_threshold=None, max_tokens_per_document=None):
        super().__init__(spec=VocabularyGenSpec(
            examples=examples,
            tokenize_fn=tokenize_fn,
            splits=json_utils.dumps(list(splits)),
            text_feature=text_feature,
            top_k=top_k,
            frequency_threshold=frequency_threshold,
            max_tokens_per_document=max_tokens_per_document,
            vocabulary=channel.Channel(type=Vocabulary)))

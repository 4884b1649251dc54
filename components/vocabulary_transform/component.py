"""TFX's Transform with an optional Vocabulary input, whose file the preprocessing_fn applies.

Transform takes no extra input artifacts and its custom_config is fixed when the pipeline is
built, before VocabularyGen's output exists; this component adds the input channel, and its
executor hands the file's path to the preprocessing_fn (custom_config["vocabulary_file"]).
"""

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import component_spec, standard_component_specs
from tfx.utils import json_utils

from components.types import Vocabulary
from components.vocabulary_transform import executor


class VocabularyTransformSpec(standard_component_specs.TransformSpec):
    INPUTS = {
        **standard_component_specs.TransformSpec.INPUTS,
        executor.VOCABULARY_KEY: component_spec.ChannelParameter(type=Vocabulary, optional=True),
    }


class VocabularyTransform(base_beam_component.BaseBeamComponent):
    """Transform(examples, schema, preprocessing_fn, vocabulary=...) with Transform's outputs."""
    SPEC_CLASS = VocabularyTransformSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples, schema, preprocessing_fn, *, vocabulary=None, splits_config=None,
                 custom_config=None):
        outputs = {key: types.Channel(type=parameter.type)
                   for key, parameter in VocabularyTransformSpec.OUTPUTS.items()}
        outputs[standard_component_specs.TRANSFORMED_EXAMPLES_KEY].matching_channel_name = (
            standard_component_specs.EXAMPLES_KEY)
        super().__init__(spec=VocabularyTransformSpec(
            examples=examples,
            schema=schema,
            vocabulary=vocabulary,
            preprocessing_fn=preprocessing_fn,
            splits_config=splits_config,
            custom_config=json_utils.dumps(custom_config),
            force_tf_compat_v1=0,
            disable_statistics=0,
            **outputs))

"""TFX's Transform with an optional Vocabulary input, whose file the preprocessing_fn applies.

Transform takes no extra input artifacts and its custom_config is fixed when the pipeline is
built, before VocabularyGen's output exists; this component adds the input channel, and its
executor hands the file's path to the preprocessing_fn (custom_config["vocabulary_file"]).
"""

from tfx import types
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_component_specs
from tfx.utils import json_utils

from ..specs import VocabularyTransformSpec
from . import executor


class VocabularyTransform(base_beam_component.BaseBeamComponent):
    """TFX's Transform, plus an optional `vocabulary` input channel (VocabularyGen's output).

    The preprocessing_fn (with a `custom_config` argument) finds the vocabulary file at
    `custom_config["vocabulary_file"]` and maps tokens with `tfx_embeddings.apply_vocabulary`,
    so the file becomes an asset of the TransformGraph that EmbeddingGen reads.

    Args:
      examples, schema, module_file, preprocessing_fn, splits_config, custom_config: as for
        tfx.components.Transform (exactly one of module_file and preprocessing_fn).
      vocabulary: a channel of `Vocabulary` (VocabularyGen's output), optional.

    Outputs: Transform's (`transform_graph`, `transformed_examples`, ...).

    Raises:
      ValueError: neither or both of module_file and preprocessing_fn.

    Example:
      transform = tfx_embeddings.VocabularyTransform(
          examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
          vocabulary=vocabulary_gen.outputs["vocabulary"], module_file="preprocessing.py")
    """
    SPEC_CLASS = VocabularyTransformSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples, schema, module_file=None, preprocessing_fn=None, *,
                 vocabulary=None, splits_config=None, custom_config=None):
        if bool(module_file) == bool(preprocessing_fn):
            raise ValueError("VocabularyTransform: give exactly one of module_file and "
                             "preprocessing_fn")
        outputs = {key: types.Channel(type=parameter.type)
                   for key, parameter in VocabularyTransformSpec.OUTPUTS.items()}
        outputs[standard_component_specs.TRANSFORMED_EXAMPLES_KEY].matching_channel_name = (
            standard_component_specs.EXAMPLES_KEY)
        super().__init__(spec=VocabularyTransformSpec(
            examples=examples,
            schema=schema,
            vocabulary=vocabulary,
            module_file=module_file,
            preprocessing_fn=preprocessing_fn,
            splits_config=splits_config,
            custom_config=json_utils.dumps(custom_config),
            force_tf_compat_v1=0,
            disable_statistics=0,
            **outputs))
        if udf_utils.should_package_user_modules():  # As TFX's Transform does.
            udf_utils.add_user_module_dependency(self, standard_component_specs.MODULE_FILE_KEY,
                                                 standard_component_specs.MODULE_PATH_KEY)

"""TFX's Transform executor, plus the Vocabulary artifact's file handed to the preprocessing_fn."""

import os

from tfx.components.transform import executor as transform_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils

from tfx_embeddings.components import vocabulary_file

VOCABULARY_KEY = "vocabulary"
# The custom_config key under which the preprocessing_fn finds the Vocabulary artifact's file.
VOCABULARY_FILE_KEY = "vocabulary_file"


class Executor(transform_executor.Executor):
    """With a vocabulary input, preprocessing_fn gets its path: custom_config["vocabulary_file"]."""

    def Do(self, input_dict, output_dict, exec_properties):
        if input_dict.get(VOCABULARY_KEY):
            key = standard_component_specs.CUSTOM_CONFIG_KEY
            config = json_utils.loads(exec_properties.get(key) or "null") or {}
            config[VOCABULARY_FILE_KEY] = os.path.join(
                artifact_utils.get_single_uri(input_dict[VOCABULARY_KEY]),
                vocabulary_file.VOCABULARY_FILE)
            exec_properties = {**exec_properties, key: json_utils.dumps(config)}
        super().Do(input_dict, output_dict, exec_properties)

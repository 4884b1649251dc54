"""TFX's Transform executor, plus the Vocabulary artifact's file handed to the preprocessing_fn."""

import os

from tfx.components.transform import executor as transform_executor
from tfx.types import artifact_utils
from tfx.utils import json_utils

from .. import vocabulary_file
from ..specs import CUSTOM_CONFIG_KEY, VOCABULARY_FILE_KEY, VOCABULARY_KEY


class Executor(transform_executor.Executor):
    """With a vocabulary input, preprocessing_fn gets its path: custom_config["vocabulary_file"]."""

    def Do(self, input_dict, output_dict, exec_properties):
        if input_dict.get(VOCABULARY_KEY):
            config = json_utils.loads(exec_properties.get(CUSTOM_CONFIG_KEY) or "null") or {}
            config[VOCABULARY_FILE_KEY] = os.path.join(
                artifact_utils.get_single_uri(input_dict[VOCABULARY_KEY]),
                vocabulary_file.VOCABULARY_FILE)
            exec_properties = {**exec_properties, CUSTOM_CONFIG_KEY: json_utils.dumps(config)}
        super().Do(input_dict, output_dict, exec_properties)

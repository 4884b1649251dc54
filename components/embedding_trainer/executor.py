"""TFX's generic Trainer executor, plus the embedding artifact handed to the user's run_fn."""

import logging

from tfx.components.trainer import executor as trainer_executor
from tfx.types import artifact_utils

from .. import latest_blessed_model
from ..specs import BASE_MODEL_KEY, EMBEDDING_KEY, EMBEDDING_URI_KEY


class Executor(trainer_executor.GenericExecutor):
    """run_fn finds the embedding artifact's directory at custom_config["embedding_uri"].

    A `base_model` that LatestBlessedModel did not find (a first run on Kubeflow) is no base
    model: fn_args.base_model is then None, as after a Resolver that found nothing.
    """

    def _GetFnArgs(self, input_dict, output_dict, exec_properties):
        given = input_dict
        input_dict = latest_blessed_model.present(given, BASE_MODEL_KEY)
        if input_dict is not given:
            logging.info("EmbeddingTrainer: %s", latest_blessed_model.NO_PREVIOUS_MODEL)
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        fn_args.custom_config = dict(fn_args.custom_config or {})
        fn_args.custom_config[EMBEDDING_URI_KEY] = artifact_utils.get_single_uri(
            input_dict[EMBEDDING_KEY])
        return fn_args

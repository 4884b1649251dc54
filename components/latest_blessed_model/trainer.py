"""TFX's Trainer executor (GenericExecutor), taking LatestBlessedModel's output as its base model.

A base model that LatestBlessedModel did not find (a first run) is no base model: the user's
run_fn then gets `fn_args.base_model` None, as after a Resolver that found nothing.
"""

import logging

from tfx.components.trainer import executor as trainer_executor
from tfx.types import standard_component_specs

from . import NO_PREVIOUS_MODEL, present


class Executor(trainer_executor.GenericExecutor):
    """TFX's GenericExecutor; a `base_model` marked not found is left out."""

    def _GetFnArgs(self, input_dict, output_dict, exec_properties):
        given = input_dict
        input_dict = present(given, standard_component_specs.BASE_MODEL_KEY)
        if input_dict is not given:
            logging.info("Trainer: %s", NO_PREVIOUS_MODEL)
        return super()._GetFnArgs(input_dict, output_dict, exec_properties)

"""TFX's Evaluator executor, taking LatestBlessedModel's output as its baseline.

A baseline that LatestBlessedModel did not find (a first run) is no baseline: TFX's Evaluator
then drops the change thresholds and judges the model on the value thresholds alone, as it does
when a Resolver found nothing.
"""

from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_component_specs

from . import present


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor; a `baseline_model` marked not found is left out."""

    def Do(self, input_dict, output_dict, exec_properties):
        super().Do(present(input_dict, standard_component_specs.BASELINE_MODEL_KEY),
                   output_dict, exec_properties)

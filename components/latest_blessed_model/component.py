"""LatestBlessedModel: TFX's `Resolver` with `LatestBlessedModelStrategy`, as a container step.

Compiled for Kubeflow, a TFX Resolver is a `resolver` executor, which only Vertex AI Pipelines
runs; the open-source Kubeflow Pipelines backend refuses it ("non-container and non-importer
executor not implemented"). This component is an ordinary container step that answers the same
question from the ML Metadata store every Kubeflow Pipelines install runs.
"""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from ..specs import LatestBlessedModelSpec
from . import executor


class LatestBlessedModel(base_component.BaseComponent):
    """The latest model that the pipeline's Evaluator blessed, for warm start and as the
    Evaluator's baseline, from Kubeflow's ML Metadata store: of this step's own run's pipeline
    (found from the pod, whatever name the spec was compiled with, nested or not), in its
    namespace, under its pipeline root.

    Its `model` output is that model (`found` = 1, its URI in `model_uri`), or a model marked not
    found (`found` = 0) on a first run; consumers see the previous model, or no input
    (`latest_blessed_model.present`): use it with EmbeddingTrainer, and with TFX's Trainer and
    Evaluator whose executors are `latest_blessed_model.trainer.Executor` and
    `latest_blessed_model.evaluator.Executor`. Disable Kubeflow's cache for its task: its answer
    changes between runs whose inputs do not. `tfx_embeddings.compile_for_kubeflow` puts it in
    place of a TFX Resolver with LatestBlessedModelStrategy, and does all of that.

    Args:
      trainer_task: the id of the component whose models count (None: any Model, as
        LatestBlessedModelStrategy takes any where its channel names no producer).
      evaluator_task: the id of the Evaluator whose blessings count (None: any).
      pipeline_name: ignored (specs compiled by 0.2 pass it).

    Example:
      latest = LatestBlessedModel(trainer_task="EmbeddingTrainer", evaluator_task="Evaluator")
      trainer = EmbeddingTrainer(..., base_model=latest.outputs["model"])
    """
    SPEC_CLASS = LatestBlessedModelSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, trainer_task=None, evaluator_task=None, pipeline_name=None):
        super().__init__(spec=LatestBlessedModelSpec(
            pipeline_name=pipeline_name, trainer_task=trainer_task,
            evaluator_task=evaluator_task,
            model=types.Channel(type=standard_artifacts.Model)))

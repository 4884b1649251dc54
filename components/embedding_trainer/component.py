"""A TFX Trainer that takes a PretrainedEmbedding as an input channel.

The artifact reaches the trainer through the pipeline's lineage (recorded in the metadata
store), not as a path in its config; everything else is TFX's Trainer as it is.
"""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import component_spec, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from components.embedding_trainer import executor
from components.types import PretrainedEmbedding


class EmbeddingTrainerSpec(standard_component_specs.TrainerSpec):
    INPUTS = {
        **standard_component_specs.TrainerSpec.INPUTS,
        executor.EMBEDDING_KEY: component_spec.ChannelParameter(type=PretrainedEmbedding),
    }


class EmbeddingTrainer(base_component.BaseComponent):
    """Trainer(examples, transform_graph, embedding, run_fn=...) -> model, model_run."""
    SPEC_CLASS = EmbeddingTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples, transform_graph, embedding, run_fn, *, base_model=None,
                 train_args=None, eval_args=None, custom_config=None):
        spec = EmbeddingTrainerSpec(
            examples=examples,
            transform_graph=transform_graph,
            embedding=embedding,
            base_model=base_model,
            train_args=train_args or trainer_pb2.TrainArgs(),
            eval_args=eval_args or trainer_pb2.EvalArgs(),
            run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun))
        super().__init__(spec=spec)

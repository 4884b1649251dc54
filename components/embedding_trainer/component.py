"""EmbeddingTrainer: TFX's Trainer with a PretrainedEmbedding input channel.

The artifact reaches the trainer through the pipeline's lineage (recorded in the metadata store),
not as a path in its config; everything else is TFX's Trainer as it is.
"""

from tfx import types
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from ..specs import EmbeddingTrainerSpec
from . import executor


class EmbeddingTrainer(base_component.BaseComponent):
    """TFX's Trainer (GenericExecutor, run_fn), plus an `embedding` input channel.

    run_fn finds the embedding artifact's directory at
    `fn_args.custom_config[tfx_embeddings.EMBEDDING_URI_KEY]` and builds its embedding layer with
    `tfx_embeddings.pretrained_embedding`.

    Args:
      examples, transform_graph, schema, base_model, hyperparameters, module_file, run_fn,
        train_args, eval_args, custom_config: as for tfx.components.Trainer (exactly one of
        module_file and run_fn).
      embedding: a channel of `PretrainedEmbedding` (EmbeddingGen's output).

    Outputs: `model` (Model) and `model_run` (ModelRun), as Trainer's.

    Raises:
      ValueError: neither or both of module_file and run_fn.

    Example:
      trainer = tfx_embeddings.EmbeddingTrainer(
          examples=transform.outputs["transformed_examples"],
          transform_graph=transform.outputs["transform_graph"],
          embedding=embedding_gen.outputs["embedding"], module_file="trainer.py",
          train_args=tfx.proto.TrainArgs(num_steps=1000))
    """
    SPEC_CLASS = EmbeddingTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples, transform_graph, embedding, module_file=None, run_fn=None, *,
                 schema=None, base_model=None, hyperparameters=None, train_args=None,
                 eval_args=None, custom_config=None):
        if bool(module_file) == bool(run_fn):
            raise ValueError("EmbeddingTrainer: give exactly one of module_file and run_fn")
        super().__init__(spec=EmbeddingTrainerSpec(
            examples=examples,
            transform_graph=transform_graph,
            embedding=embedding,
            schema=schema,
            base_model=base_model,
            hyperparameters=hyperparameters,
            train_args=train_args or trainer_pb2.TrainArgs(),
            eval_args=eval_args or trainer_pb2.EvalArgs(),
            module_file=module_file,
            run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun)))
        if udf_utils.should_package_user_modules():  # As TFX's Trainer does.
            udf_utils.add_user_module_dependency(self, standard_component_specs.MODULE_FILE_KEY,
                                                 standard_component_specs.MODULE_PATH_KEY)

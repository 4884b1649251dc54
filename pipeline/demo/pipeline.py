"""The TFX pipeline: ExampleGen -> StatisticsGen -> ImportSchemaGen -> VocabularyGen (unless
text.vocabulary is tft) -> Transform -> EmbeddingGen -> Trainer (embedding restored in the graph,
warm-started from the latest blessed model) -> Evaluator (blesses, or not) -> Pusher (blessed
models only).

The latest blessed model is found by TFX's Resolver (LatestBlessedModelStrategy); compiled for
open-source Kubeflow Pipelines, which runs no resolver, `compile_for_kubeflow` puts the
LatestBlessedModel step in its place, as for any user's pipeline.
"""

import dataclasses

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from ...components.embedding_gen.component import EmbeddingGen
from ...components.embedding_trainer.component import EmbeddingTrainer
from ...components.vocabulary_gen.component import VocabularyGen
from ...components.vocabulary_transform.component import VocabularyTransform
from . import preprocessing, schema
from .config import embedding_parameters

TRAINER_ID = "EmbeddingTrainer"
BASELINE_TRAINER_ID = "RandomInitTrainer"
COLD_START_TRAINER_ID = "ColdStartTrainer"
LATEST_MODEL_RESOLVER_ID = "LatestBlessedModelResolver"
EVALUATOR_ID = "Evaluator"
ACCURACY_METRIC = "BinaryAccuracy"

_LOCAL_METADATA = object()


def eval_config(evaluation):
    """TFMA's config: accuracy on the eval split, blessed at or over the floor and no more than
    max_accuracy_drop below the latest blessed model's (the baseline; none on a first run)."""
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default",
                                    label_key=preprocessing.LABEL_KEY)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(
            class_name=ACCURACY_METRIC,
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(
                    lower_bound={"value": evaluation.min_accuracy}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -evaluation.max_accuracy_drop - 1e-9})))])])


def pipeline_inputs(config):
    """What a run of the compiled (Kubeflow) pipeline may set, with the config's values: the
    examples, the vector file and the push destination (a directory; compiled for Kubeflow, a
    PushDestination as JSON is taken too)."""
    return {"examples": config.data.examples, "vectors": config.data.vectors,
            "push_destination": config.serving_dir}


def create_pipeline(config, metadata_connection_config=_LOCAL_METADATA,
                    runtime_parameters=False):
    """Builds the tfx Pipeline described by a validated PipelineConfig.

    Args:
      config: a validated PipelineConfig.
      metadata_connection_config: the metadata store: SQLite under the pipeline root by default,
        None for orchestrators that bring their own (Kubeflow).
      runtime_parameters: make the examples, the vector file and the push destination (a
        directory) pipeline inputs that a run sets, the config's values their defaults
        (Kubeflow).

    Returns:
      The tfx.dsl.Pipeline.

    Raises:
      ValueError: a local run whose pipeline root is remote (no local metadata path).
    """
    inputs = _inputs(config, runtime_parameters)
    example_gen = _example_gen(inputs["examples"])
    schema_gen = _schema_gen(config)
    vocabulary_gen = _vocabulary_gen(config, example_gen)
    transform = _transform(config, example_gen, schema_gen, vocabulary_gen)
    embedding_gen = _embedding_gen(config, transform, inputs["vectors"])
    latest = _latest_blessed_model()
    trainer = _trainer(config, transform, embedding_gen, "pretrained",
                       latest.outputs["model"]).with_id(TRAINER_ID)
    evaluator = _evaluator(config, example_gen, trainer, latest)
    pusher = tfx.components.Pusher(model=trainer.outputs["model"],
                                   model_blessing=evaluator.outputs["blessing"],
                                   push_destination=inputs["push_destination"])
    components = [example_gen,
                  tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]),
                  schema_gen, vocabulary_gen, transform, embedding_gen, latest, trainer,
                  evaluator, pusher]
    if config.trainer.train_random_baseline:
        components.append(_trainer(config, transform, embedding_gen, "random")
                          .with_id(BASELINE_TRAINER_ID))
    if config.trainer.train_cold_start_baseline:
        components.append(_trainer(config, transform, embedding_gen, "pretrained")
                          .with_id(COLD_START_TRAINER_ID))
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        metadata_connection_config=_metadata_connection(config, metadata_connection_config),
        components=[component for component in components if component is not None],
        enable_cache=config.enable_cache,
        beam_pipeline_args=config.beam_pipeline_args)


def _metadata_connection(config, metadata_connection_config):
    if metadata_connection_config is not _LOCAL_METADATA:
        return metadata_connection_config
    if not config.metadata_path:
        raise ValueError(f"a local run needs a local metadata_path (pipeline_root "
                         f"{config.pipeline_root} is remote)")
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)


def _inputs(config, runtime_parameters):
    """{examples, vectors, push_destination}: the config's values, or runtime parameters whose
    defaults they are."""
    inputs = pipeline_inputs(config)
    if not runtime_parameters:
        return {**inputs, "push_destination": tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=inputs["push_destination"]))}
    return {name: tfx.dsl.experimental.RuntimeParameter(name=name, ptype=str, default=default)
            for name, default in inputs.items()}


def _example_gen(examples):
    return tfx.components.CsvExampleGen(
        input_base=examples,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="train", pattern="train/*"),
            tfx.proto.Input.Split(name="eval", pattern="eval/*")]))


def _schema_gen(config):
    """ImportSchemaGen, its schema_file resolved where the step runs (a file shipped in the
    package, or a path)."""
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.data.schema_file)
    schema_gen.executor_spec = executor_spec.ExecutorClassSpec(schema.Executor)
    return schema_gen


def _vocabulary_gen(config, example_gen):
    """VocabularyGen, or None when the vocabulary is tft's (computed inside Transform)."""
    if config.text.vocabulary != "fast":
        return None
    return VocabularyGen(
        examples=example_gen.outputs["examples"],
        tokenize_fn="tfx_embeddings.pipeline.demo.text.tokenize",
        splits=config.text.vocabulary_splits,
        text_feature=preprocessing.TEXT_KEY,
        top_k=config.text.top_k,
        frequency_threshold=config.text.frequency_threshold,
        max_tokens_per_document=config.text.max_tokens_per_document)


def _transform(config, example_gen, schema_gen, vocabulary_gen):
    return VocabularyTransform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        vocabulary=vocabulary_gen and vocabulary_gen.outputs["vocabulary"],
        preprocessing_fn="tfx_embeddings.pipeline.demo.preprocessing.preprocessing_fn",
        splits_config=tfx.proto.SplitsConfig(analyze=config.text.vocabulary_splits,
                                             transform=["train", "eval"]),
        custom_config=config.text.model_dump(exclude={"vocabulary_splits", "vocabulary"}),
    ).with_id("Transform")


def _embedding_gen(config, transform, vectors):
    return EmbeddingGen(
        transform_graph=transform.outputs["transform_graph"],
        vectors_path=vectors,
        vocabulary_name=preprocessing.VOCABULARY_NAME,
        **dataclasses.asdict(embedding_parameters(config).replace(
            ids_feature=preprocessing.TOKEN_IDS_KEY)))


def _latest_blessed_model():
    """The latest model the Evaluator blessed: the trainer's warm start and the Evaluator's
    baseline (a model that failed evaluation is never either); nothing on a first run."""
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                              producer_component_id=TRAINER_ID, output_key="model"),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                       producer_component_id=EVALUATOR_ID,
                                       output_key="blessing"),
    ).with_id(LATEST_MODEL_RESOLVER_ID)


def _trainer(config, transform, embedding_gen, embedding_init, base_model=None):
    return EmbeddingTrainer(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        embedding=embedding_gen.outputs["embedding"],
        run_fn="tfx_embeddings.pipeline.demo.model.run_fn",
        base_model=base_model,
        custom_config={**config.trainer.model_dump(exclude={"train_random_baseline",
                                                            "train_cold_start_baseline"}),
                       "max_tokens": config.text.max_tokens,
                       "embedding_init": embedding_init})


def _evaluator(config, example_gen, trainer, latest):
    return tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=latest.outputs["model"],
        example_splits=["eval"],
        eval_config=eval_config(config.evaluation)).with_id(EVALUATOR_ID)

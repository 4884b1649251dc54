"""A TFX pipeline as the open-source Kubeflow Pipelines backend runs it: what TFX's compiler would
hand it but it cannot run is replaced, or refused at compile time, naming the node and what to do.

The backend (2.x) runs container and importer executors only (`argocompiler`: "non-container and
non-importer executor not implemented"), and never a node's driver or lifecycle hooks. So, in a
copy of the pipeline (the user's is not changed):

- every `Resolver` with `LatestBlessedModelStrategy` becomes the `LatestBlessedModel` step, of
  the same id, wired to the same consumers; its trainer and Evaluator are the producers its
  channels name (any, where they name none, as the strategy takes any). A consumer's executor
  must treat the step's not-found model (a first run) as no model: EmbeddingTrainer's does;
  TFX's Trainer (`GenericExecutor`) and Evaluator executors are swapped for
  `latest_blessed_model.trainer.Executor` and `latest_blessed_model.evaluator.Executor`; any
  other consumer is refused;
- a Pusher (TFX's executor) whose `push_destination` is a RuntimeParameter gets
  `kubeflow.pusher.Executor`, which also takes a plain path (what a person types in Kubeflow's
  UI);
- refused: any other resolver (strategy, or input resolution function), a driver other than
  TFX's own base driver and file-based ExampleGen's (whose part the fingerprint step of
  `open_source` plays), an ExampleGen input pattern with a span or version, or a range config
  (resolved by that driver), a sub-pipeline, and TFX's InfraValidator (TFX's compiler has no
  Kubeflow form of it).
"""

import copy

from tfx.components.evaluator import executor as tfx_evaluator
from tfx.components.example_gen import component as example_gen
from tfx.components.example_gen import driver as example_gen_driver
from tfx.components.infra_validator import component as infra_validator
from tfx.components.pusher import executor as tfx_pusher
from tfx.components.trainer import executor as tfx_trainer
from tfx.dsl.components.base import base_component, base_driver
from tfx.dsl.components.common import importer, resolver
from tfx.dsl.context_managers import dsl_context_registry
from tfx.dsl.input_resolution.strategies import latest_blessed_model_strategy
from tfx.orchestration import data_types
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2
from tfx.types import channel, resolved_channel, standard_artifacts, standard_component_specs
from tfx.utils import name_utils, proto_utils

from ...components.embedding_trainer import executor as embedding_trainer
from ...components.latest_blessed_model import evaluator as blessed_evaluator
from ...components.latest_blessed_model import trainer as blessed_trainer
from ...components.latest_blessed_model.component import LatestBlessedModel
from . import pusher

_SPAN_PLACEHOLDER = ("{SPAN", "{VERSION", "{YYYY", "{MM", "{DD")


class PipelineError(ValueError):
    """A node of the TFX pipeline that the open-source Kubeflow Pipelines backend cannot run; the
    message names the node and what to do."""


class _Consumer:
    """An executor that takes LatestBlessedModel's output at `key`: as it is (`accepts`, itself
    or a subclass), or once swapped for `replacement` (exactly `original`)."""

    def __init__(self, key, accepts, original=None, replacement=None):
        self.key, self.accepts = key, accepts
        self.original, self.replacement = original, replacement


_CONSUMERS = (
    _Consumer(standard_component_specs.BASE_MODEL_KEY, embedding_trainer.Executor),
    _Consumer(standard_component_specs.BASE_MODEL_KEY, blessed_trainer.Executor,
              tfx_trainer.GenericExecutor, blessed_trainer.Executor),
    _Consumer(standard_component_specs.BASELINE_MODEL_KEY, blessed_evaluator.Executor,
              tfx_evaluator.Executor, blessed_evaluator.Executor),
)


def for_open_source(pipeline):
    """A copy of pipeline that the open-source backend runs as the original means.

    Args:
      pipeline: the user's tfx.dsl.Pipeline (not changed).

    Returns:
      (the copy, [ids of its LatestBlessedModel steps]: their Kubeflow cache must be off).

    Raises:
      PipelineError: a node the backend cannot run, named with what to do.
    """
    pipeline = copy.deepcopy(pipeline)
    for node in pipeline.components:
        _check(node)
    replaced = []
    for node in list(pipeline.components):
        if isinstance(node, resolver.Resolver):
            replaced.append(_replace_resolver(pipeline, node))
        elif _is_pusher_with_runtime_destination(node):
            node.executor_spec = _with_executor(node.executor_spec, pusher.Executor)
    return pipeline, replaced


def _name(cls):
    return name_utils.get_full_name(cls, strict_check=False)


def _check(node):
    """Refuses what the backend never runs (every node but resolvers, which are replaced)."""
    if isinstance(node, tfx_pipeline.Pipeline):
        raise PipelineError(f"node {node.id}: a sub-pipeline; compile_for_kubeflow takes a flat "
                            f"pipeline: add its components to the pipeline itself")
    if isinstance(node, infra_validator.InfraValidator):
        raise PipelineError(f"node {node.id}: TFX's InfraValidator has no Kubeflow form (TFX's "
                            f"compiler refuses it); leave it out of the Kubeflow pipeline")
    if isinstance(node, resolver.Resolver):
        strategy = node.exec_properties.get(resolver.RESOLVER_STRATEGY_CLASS)
        if strategy is not latest_blessed_model_strategy.LatestBlessedModelStrategy:
            raise PipelineError(
                f"node {node.id}: a Resolver with {_name(strategy) if strategy else 'no strategy'}"
                f"; the open-source Kubeflow Pipelines backend runs no resolver (a run fails at "
                f"creation: \"non-container and non-importer executor not implemented\"), and "
                f"only LatestBlessedModelStrategy has a container step in its place "
                f"(LatestBlessedModel). Remove the node, or compile for target='vertex'")
        return
    for key, input_channel in getattr(node, "inputs", {}).items():
        if isinstance(input_channel, resolved_channel.ResolvedChannel):
            raise PipelineError(
                f"node {node.id}: its input {key!r} is resolved by an input resolution function "
                f"({input_channel.output_node}), which TFX's orchestrator runs and the "
                f"open-source Kubeflow Pipelines backend does not; use the channel itself, or a "
                f"Resolver with LatestBlessedModelStrategy")
    if isinstance(node, importer.Importer):
        return
    driver = getattr(node, "driver_class", base_driver.BaseDriver)
    if isinstance(node, example_gen.FileBasedExampleGen):
        if driver is not example_gen_driver.FileBasedDriver:
            raise _driver_error(node, driver)
        _check_example_gen(node)
    elif driver is not base_driver.BaseDriver:
        raise _driver_error(node, driver)


def _driver_error(node, driver):
    return PipelineError(
        f"node {node.id}: its driver {_name(driver)} is never run by the open-source Kubeflow "
        f"Pipelines backend (it runs the executor's container only), so the node would run "
        f"without what the driver decides; do that work in the executor, or leave the node out")


def _check_example_gen(node):
    """Span, version or date placeholders and range configs are the driver's to resolve."""
    properties = node.exec_properties
    if properties.get(standard_component_specs.RANGE_CONFIG_KEY) is not None:
        raise PipelineError(f"node {node.id}: a range_config is resolved by TFX's ExampleGen "
                            f"driver, which the open-source Kubeflow Pipelines backend never runs; "
                            f"leave it out (every run reads the files the patterns match)")
    config = properties.get(standard_component_specs.INPUT_CONFIG_KEY)
    if isinstance(config, data_types.RuntimeParameter) or config is None:
        return
    if isinstance(config, str):  # As ExampleGen keeps it: the proto as JSON.
        config = proto_utils.json_to_proto(config, example_gen_pb2.Input())
    for split in config.splits:
        if any(placeholder in split.pattern for placeholder in _SPAN_PLACEHOLDER):
            raise PipelineError(
                f"node {node.id}: split {split.name}'s pattern {split.pattern!r} has a span, "
                f"version or date placeholder, which TFX's ExampleGen driver resolves and the "
                f"open-source Kubeflow Pipelines backend never runs; use a plain pattern (the "
                f"input fingerprint step then reruns ExampleGen when the files change)")


def _executor_class(node):
    return getattr(node.executor_spec, "executor_class", None)


def _with_executor(spec, executor_class):
    """A copy of an ExecutorClassSpec (or BeamExecutorSpec: its Beam arguments kept) that runs
    executor_class."""
    spec = spec.copy()
    spec.executor_class = executor_class
    spec._class_path = None  # pylint: disable=protected-access (recomputed from the class)
    return spec


def _model_channels(node):
    """(the Resolver's output key of its Model channel, the producer ids its Model and
    ModelBlessing channels name, or None where they name none)."""
    model_key = trainer = evaluator = None
    for key, raw in node.raw_inputs.items():
        producer = getattr(raw, "producer_component_id", None)
        if issubclass(raw.type, standard_artifacts.Model):
            model_key, trainer = key, producer
        elif issubclass(raw.type, standard_artifacts.ModelBlessing):
            evaluator = producer
    return model_key, trainer, evaluator


def _replace_resolver(pipeline, node):
    model_key, trainer, evaluator = _model_channels(node)
    with dsl_context_registry.new_registry():  # Not in the user's registry.
        latest = LatestBlessedModel(trainer_task=trainer, evaluator_task=evaluator).with_id(node.id)
    for consumer in pipeline.components:
        for key, input_channel in list(getattr(consumer, "inputs", {}).items()):
            if not (isinstance(input_channel, channel.OutputChannel)
                    and input_channel.producer_component_id == node.id):
                continue
            if input_channel.output_key != model_key:
                raise PipelineError(
                    f"node {consumer.id}: its input {key!r} is the Resolver {node.id}'s "
                    f"{input_channel.output_key!r}; on open-source Kubeflow the Resolver is the "
                    f"LatestBlessedModel step, which gives the model only ({model_key!r})")
            _teach_consumer(consumer, key, node.id)
            consumer.spec.inputs[key] = latest.outputs["model"]
            consumer.remove_upstream_node(node)
            consumer.add_upstream_node(latest)
    for upstream in list(node.upstream_nodes):
        node.remove_upstream_node(upstream)
        latest.add_upstream_node(upstream)
    components = pipeline._components  # pylint: disable=protected-access (same order)
    components[components.index(node)] = latest
    registry = pipeline.dsl_context_registry if pipeline._dsl_context_registry else None
    if registry is not None and node in registry.all_nodes:
        with registry.temporary_mutable():
            registry.replace_node(node, latest)
    return latest.id


def _teach_consumer(node, key, resolver_id):
    """Makes node's executor one that treats LatestBlessedModel's not-found model as no model,
    or refuses node."""
    executor_class = _executor_class(node)
    for consumer in _CONSUMERS:
        if key != consumer.key or executor_class is None:
            continue
        if issubclass(executor_class, consumer.accepts):
            return
        if executor_class is consumer.original:
            node.executor_spec = _with_executor(node.executor_spec, consumer.replacement)
            return
    known = ", ".join(sorted({f"{_name(c.original or c.accepts)} ({c.key})" for c in _CONSUMERS}))
    raise PipelineError(
        f"node {node.id}: its input {key!r} is the latest blessed model (the Resolver "
        f"{resolver_id}), which on open-source Kubeflow is the LatestBlessedModel step's output: "
        f"a Model that may be marked not found (a first run, custom property `found` = 0), and "
        f"its executor {_name(executor_class) if executor_class else node.executor_spec} is not "
        f"known to treat that as no model. Known: {known}; or apply "
        f"tfx_embeddings.components.latest_blessed_model.present to its input_dict")



def _is_pusher_with_runtime_destination(node):
    return (isinstance(node, base_component.BaseComponent)
            and _executor_class(node) is tfx_pusher.Executor
            and isinstance(node.exec_properties.get(
                standard_component_specs.PUSH_DESTINATION_KEY), data_types.RuntimeParameter))

"""LatestBlessedModel's executor: asks the ML Metadata store of the Kubeflow Pipelines install for
the latest model that this run's pipeline blessed, as TFX's LatestBlessedModelStrategy picks it
(the newest Model that a ModelBlessing with `blessed` = 1 names as its `current_model_id`).

Where it looks (the records of the open-source backend's driver and launcher,
kubeflow/pipelines backend/src/v2/metadata/client.go, 2.0 to 2.17; `kubeflow_run`):

- the pipeline is this step's own run's `system.Pipeline` context, found from the pod's UID, not
  a name compiled into the spec: nested in another pipeline, or uploaded under another name, the
  step still finds the pipeline's earlier runs;
- a blessing counts when a task of that pipeline wrote it (an execution that completed, or reused
  it from the cache), in a run of this run's namespace (the pipeline context is shared by every
  namespace that runs a pipeline of that name; the run context says which namespace), by the
  Evaluator task asked for (any, where none is);
- the model it names must be live, a `tfx.Model`, written by the trainer task asked for (any,
  where none is), and under this run's pipeline root: a model elsewhere (a root moved to another
  bucket, another deployment) may be out of this run's reach (another bucket, other
  credentials), and a run under a new root starts afresh.

Every candidate skipped is logged with the reason.

The output Model keeps the URI the driver gave it, under this run's directory, where nothing is
written: the launcher refuses any output URI outside the run's `<root>/<pipeline>/<run ID>`
(`bucketConfig.KeyFromURI`: "does not have expected bucket prefix"), which a previous run's model
always is. The previous model's URI is its custom property `model_uri` (`found` = 1), which the
consumers read (`latest_blessed_model.present`).
"""

import logging

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from ..specs import EVALUATOR_TASK_KEY, MODEL_KEY, TRAINER_TASK_KEY
from . import FOUND_PROPERTY, MODEL_URI_PROPERTY, NO_PREVIOUS_MODEL
from .kubeflow_run import (  # noqa: F401 (connect_from_environment: part of this module's API)
    MetadataStoreError,
    connect_from_environment,
    own_run,
    run_of_execution,
)

# The custom property recording which artifact the output stands for.
PREVIOUS_MODEL_ID_PROPERTY = "previous_model_id"

_BLESSING_TYPE = "tfx.ModelBlessing"
_MODEL_TYPE = "tfx.Model"
_FINISHED = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


def _log_skip(what, reason):
    logging.info("LatestBlessedModel: skipped %s: %s", what, reason)


def _producers(store, artifact_id):
    """The finished executions whose OUTPUT the artifact is."""
    ids = [event.execution_id for event in store.get_events_by_artifact_ids([artifact_id])
           if event.type == metadata_store_pb2.Event.OUTPUT]
    return [execution for execution in store.get_executions_by_id(ids)
            if execution.last_known_state in _FINISHED]


def _task(execution):
    return execution.custom_properties["task_name"].string_value


def _number(value):
    """A custom property that holds a number, whichever way it was written: the launcher writes
    numbers as doubles, TFX's Evaluator writes `current_model_id` as an int or a string."""
    kind = value.WhichOneof("value")
    if kind in ("int_value", "double_value"):
        return getattr(value, kind)
    if kind == "string_value" and value.string_value.strip().isdigit():
        return int(value.string_value)
    return None


def _counted_blessing(store, blessing, run, evaluator_task):
    """None when the blessing counts, else why not."""
    producers = _producers(store, blessing.id)
    if evaluator_task:
        producers = [e for e in producers if _task(e) == evaluator_task]
        if not producers:
            return f"not written by the task {evaluator_task}"
    namespaces = {run_of_execution(store, e.id).namespace for e in producers}
    if run.namespace not in namespaces:
        return (f"written in namespace {', '.join(sorted(namespaces)) or '(none)'}, not this "
                f"run's {run.namespace}")
    return None


def _counted_model(store, model_id, run, trainer_task):
    """(the model, None) when it counts, else (None or the model, why not)."""
    [model] = store.get_artifacts_by_id([model_id]) or [None]
    if model is None:
        return None, "no such artifact"
    if model.state != metadata_store_pb2.Artifact.LIVE:
        return model, f"not live ({metadata_store_pb2.Artifact.State.Name(model.state)})"
    type_name = store.get_artifact_types_by_id([model.type_id])[0].name
    if type_name != _MODEL_TYPE:
        return model, f"a {type_name}, not a {_MODEL_TYPE}"
    if trainer_task and trainer_task not in {_task(e) for e in _producers(store, model.id)}:
        return model, f"not written by the task {trainer_task}"
    root = run.pipeline_root.rstrip("/") + "/"
    if not model.uri.startswith(root):
        return model, (f"{model.uri} is not under this run's pipeline root {root} (a model under "
                       f"another root may be out of this run's reach; a run under a new root "
                       f"starts from scratch)")
    return model, None


def find_latest_blessed_model(store, run, trainer_task=None, evaluator_task=None):
    """The latest model that run's pipeline blessed, in its namespace, under its root, or None.

    As LatestBlessedModelStrategy: of the models a blessing with `blessed` = 1 names, the newest
    (highest artifact id). Skipped candidates are logged with the reason.

    Args:
      store: an ml_metadata MetadataStore (Kubeflow's, over gRPC).
      run: the KubeflowRun asking (`kubeflow_run.own_run`).
      trainer_task, evaluator_task: the task names (TFX component ids) of the trainer and of the
        Evaluator whose artifacts count; None: any.

    Returns:
      The model's ml_metadata Artifact, or None.
    """
    blessings = store.get_artifacts(list_options=metadata_store.ListOptions(
        filter_query=(f"type = '{_BLESSING_TYPE}' AND state = LIVE "
                      f"AND contexts_a.id = {run.pipeline_context.id}")))
    candidates = {}
    for blessing in blessings:
        what = f"blessing {blessing.id}"
        blessed = blessing.custom_properties.get("blessed")
        if blessed is None or _number(blessed) != 1:
            continue  # Not blessed: not a candidate at all.
        reason = _counted_blessing(store, blessing, run, evaluator_task)
        if reason:
            _log_skip(what, reason)
            continue
        model_id = _number(blessing.custom_properties.get("current_model_id",
                                                          metadata_store_pb2.Value()))
        if model_id is None:
            _log_skip(what, "its current_model_id is not an artifact id")
            continue
        candidates.setdefault(int(model_id), what)
    for model_id in sorted(candidates, reverse=True):
        model, reason = _counted_model(store, model_id, run, trainer_task)
        if reason is None:
            return model
        _log_skip(f"model {model_id} (blessed by {candidates[model_id]})", reason)
    return None


class Executor(base_executor.BaseExecutor):
    """Marks the output Model found (`found` = 1, the previous model's URI in `model_uri`) or not
    (`found` = 0); writes nothing at its URI."""

    def Do(self, input_dict, output_dict, exec_properties):
        model = artifact_utils.get_single_instance(output_dict[MODEL_KEY])
        store = connect_from_environment()
        run = own_run(store)
        logging.info("LatestBlessedModel: run %s of pipeline %s (namespace %s, pipeline root %s)",
                     run.run_context.name, run.pipeline_context.name, run.namespace,
                     run.pipeline_root)
        previous = find_latest_blessed_model(store, run, exec_properties.get(TRAINER_TASK_KEY),
                                             exec_properties.get(EVALUATOR_TASK_KEY))
        if previous is None:
            logging.info("LatestBlessedModel: %s", NO_PREVIOUS_MODEL)
            model.set_int_custom_property(FOUND_PROPERTY, 0)
            return
        logging.info("LatestBlessedModel: the previous model to start from: %s (artifact %d)",
                     previous.uri, previous.id)
        model.set_int_custom_property(FOUND_PROPERTY, 1)
        model.set_string_custom_property(MODEL_URI_PROPERTY, previous.uri)
        model.set_int_custom_property(PREVIOUS_MODEL_ID_PROPERTY, previous.id)

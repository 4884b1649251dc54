"""LatestBlessedModel's executor: asks the ML Metadata store of the Kubeflow Pipelines install for
the latest model this pipeline's Evaluator blessed.

The records are the ones the open-source backend's driver and launcher write
(kubeflow/pipelines backend/src/v2/metadata/client.go, 2.0 to 2.17):

- a context of type `system.Pipeline` named the pipeline's name (`pipelineInfo.name`), to which
  every execution and artifact of every run of the pipeline is attributed;
- executions of type `system.ContainerExecution` with the custom property `task_name` (the task's
  key in the DAG: a TFX component's id), linked to their output artifacts by OUTPUT events;
- artifacts whose type name is the title of their instance schema (`tfx.ModelBlessing`,
  `tfx.Model`) and whose custom properties are what the executor wrote: TFX's Evaluator writes
  `blessed` (1 or 0, stored as a double) and `current_model_id` (the evaluated model's artifact
  id, as a string) on its blessing.

The store's address is the pod's environment: every Kubeflow Pipelines pod gets
METADATA_GRPC_SERVICE_HOST and METADATA_GRPC_SERVICE_PORT from the install's
`metadata-grpc-configmap`.
"""

import logging
import os
import re

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from ..specs import EVALUATOR_TASK_KEY, MODEL_KEY, PIPELINE_NAME_KEY, TRAINER_TASK_KEY
from . import FOUND_PROPERTY, NO_PREVIOUS_MODEL

# The custom property recording which artifact the output stands for.
PREVIOUS_MODEL_ID_PROPERTY = "previous_model_id"

HOST_VARIABLE = "METADATA_GRPC_SERVICE_HOST"
PORT_VARIABLE = "METADATA_GRPC_SERVICE_PORT"

_PIPELINE_CONTEXT_TYPE = "system.Pipeline"
_BLESSING_TYPE = "tfx.ModelBlessing"
_MODEL_TYPE = "tfx.Model"
_FINISHED = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


class MetadataStoreError(RuntimeError):
    """The ML Metadata store cannot be reached, or holds records that say nothing sensible."""


def connect_from_environment(environ=None):
    """The MetadataStore at METADATA_GRPC_SERVICE_HOST:METADATA_GRPC_SERVICE_PORT.

    Args:
      environ: the environment to read (os.environ by default).

    Returns:
      A gRPC ml_metadata MetadataStore.

    Raises:
      MetadataStoreError: a variable is missing or the port is not a number.
    """
    environ = os.environ if environ is None else environ
    missing = [name for name in (HOST_VARIABLE, PORT_VARIABLE) if not environ.get(name)]
    if missing:
        raise MetadataStoreError(
            f"LatestBlessedModel reads the Kubeflow Pipelines ML Metadata store, whose address is "
            f"the pod's {HOST_VARIABLE} and {PORT_VARIABLE} (from the install's "
            f"metadata-grpc-configmap); {' and '.join(missing)} not set here. Run it on Kubeflow "
            f"Pipelines (or `tfx-embeddings run-spec`), not elsewhere")
    port = environ[PORT_VARIABLE]
    if not port.isdigit():
        raise MetadataStoreError(f"{PORT_VARIABLE}={port!r} is not a port number")
    return metadata_store.MetadataStore(metadata_store_pb2.MetadataStoreClientConfig(
        host=environ[HOST_VARIABLE], port=int(port)))


def _producer_task(store, artifact_id):
    """(task_name, state) of the execution whose OUTPUT the artifact is, or (None, None)."""
    outputs = [event.execution_id for event in store.get_events_by_artifact_ids([artifact_id])
               if event.type == metadata_store_pb2.Event.OUTPUT]
    for execution in store.get_executions_by_id(outputs):
        if execution.last_known_state in _FINISHED:
            return (execution.custom_properties["task_name"].string_value,
                    execution.last_known_state)
    return None, None


def find_latest_blessed_model(store, pipeline_name, trainer_task, evaluator_task):
    """The latest model that pipeline_name's Evaluator blessed, or None.

    Blessings are taken newest first; the first one written by the task evaluator_task (an
    execution that completed, or reused it from the cache) whose `current_model_id` names a live
    `tfx.Model` written by the task trainer_task is the answer. A blessing of another task
    (another Evaluator of the pipeline) or of a model that is not the trainer's is skipped.

    Args:
      store: an ml_metadata MetadataStore (Kubeflow's, over gRPC).
      pipeline_name: the pipeline's name (its `system.Pipeline` context).
      trainer_task, evaluator_task: the task names (TFX component ids) of the trainer and of the
        Evaluator.

    Returns:
      The model's ml_metadata Artifact, or None when this pipeline has no blessed model.

    Raises:
      MetadataStoreError: pipeline_name is not a Kubeflow pipeline name.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", pipeline_name):
        raise MetadataStoreError(f"{pipeline_name!r} is not a Kubeflow Pipelines pipeline name")
    blessings = store.get_artifacts(list_options=metadata_store.ListOptions(
        filter_query=(f"type = '{_BLESSING_TYPE}' AND state = LIVE "
                      f"AND custom_properties.blessed.double_value = 1.0 "
                      f"AND contexts_a.type = '{_PIPELINE_CONTEXT_TYPE}' "
                      f"AND contexts_a.name = '{pipeline_name}'"),
        order_by=metadata_store.OrderByField.CREATE_TIME, is_asc=False))
    for blessing in blessings:
        if evaluator_task and _producer_task(store, blessing.id)[0] != evaluator_task:
            continue
        model_id = blessing.custom_properties["current_model_id"].string_value
        if not model_id.isdigit():
            logging.warning("LatestBlessedModel: blessing %d names the model %r, not an artifact "
                            "id; skipped", blessing.id, model_id)
            continue
        [model] = store.get_artifacts_by_id([int(model_id)]) or [None]
        if (model is None or model.state != metadata_store_pb2.Artifact.LIVE
                or store.get_artifact_types_by_id([model.type_id])[0].name != _MODEL_TYPE
                or (trainer_task and _producer_task(store, model.id)[0] != trainer_task)):
            continue
        return model
    return None


class Executor(base_executor.BaseExecutor):
    """Sets the output Model to the latest blessed model (its URI, `found` = 1), or marks it not
    found (`found` = 0; nothing is written at its URI)."""

    def Do(self, input_dict, output_dict, exec_properties):
        model = artifact_utils.get_single_instance(output_dict[MODEL_KEY])
        previous = find_latest_blessed_model(
            connect_from_environment(), exec_properties[PIPELINE_NAME_KEY],
            exec_properties.get(TRAINER_TASK_KEY), exec_properties.get(EVALUATOR_TASK_KEY))
        if previous is None:
            logging.info("LatestBlessedModel: %s", NO_PREVIOUS_MODEL)
            model.set_int_custom_property(FOUND_PROPERTY, 0)
            return
        logging.info("LatestBlessedModel: the previous model to start from: %s (artifact %d)",
                     previous.uri, previous.id)
        model.uri = previous.uri
        model.set_int_custom_property(FOUND_PROPERTY, 1)
        model.set_int_custom_property(PREVIOUS_MODEL_ID_PROPERTY, previous.id)

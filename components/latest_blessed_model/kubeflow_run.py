"""The Kubeflow Pipelines run a pod belongs to, from the records the open-source backend keeps in
ML Metadata (kubeflow/pipelines backend/src/v2, 2.0 to 2.17):

- the store's address is the pod's METADATA_GRPC_SERVICE_HOST and METADATA_GRPC_SERVICE_PORT
  (the install's `metadata-grpc-configmap`, given to every executor container);
- the launcher runs in the step's own container and, before the step's command, records the
  pod's name, UID and namespace on the task's `system.ContainerExecution` (`PrePublishExecution`:
  custom properties `pod_name`, `pod_uid`, `namespace`); the pod has them too, as KFP_POD_NAME and
  KFP_POD_UID (`argocompiler`'s downward-API variables);
- that execution is attributed to the run's `system.PipelineRun` context (named by the run's ID,
  with custom properties `namespace`, `pipeline_root`: the run's pipeline root joined with the
  pipeline's name and the run's ID, and `store_session_info`: the launcher's object store
  session), whose parent is the `system.Pipeline` context, named by the name the driver was
  given: the OUTERMOST pipeline's name where the spec runs nested in another pipeline.

So a step finds its own run whatever the pipeline was named when it was compiled.
"""

import collections
import json
import os
import re

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

HOST_VARIABLE = "METADATA_GRPC_SERVICE_HOST"
PORT_VARIABLE = "METADATA_GRPC_SERVICE_PORT"
POD_UID_VARIABLE = "KFP_POD_UID"

PIPELINE_CONTEXT = "system.Pipeline"
RUN_CONTEXT = "system.PipelineRun"
CONTAINER_EXECUTION = "system.ContainerExecution"

# A run: its contexts (ml_metadata Context), the pipeline root it was created with (URI), its
# namespace, and the launcher's object store session ({"Provider": ..., "Params": {...}}).
KubeflowRun = collections.namedtuple(
    "KubeflowRun", "pipeline_context run_context pipeline_root namespace store_session")


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
            f"this step reads the Kubeflow Pipelines ML Metadata store, whose address is the "
            f"pod's {HOST_VARIABLE} and {PORT_VARIABLE} (from the install's "
            f"metadata-grpc-configmap); {' and '.join(missing)} not set here. Run it on Kubeflow "
            f"Pipelines (or `tfx-embeddings run-spec`), not elsewhere")
    port = environ[PORT_VARIABLE]
    if not port.isdigit():
        raise MetadataStoreError(f"{PORT_VARIABLE}={port!r} is not a port number")
    return metadata_store.MetadataStore(metadata_store_pb2.MetadataStoreClientConfig(
        host=environ[HOST_VARIABLE], port=int(port)))


def _string(item, key):
    return item.custom_properties[key].string_value if key in item.custom_properties else ""


def _type_name(store, context):
    return store.get_context_types_by_id([context.type_id])[0].name


def run_of_execution(store, execution_id):
    """The KubeflowRun an execution belongs to (its run context, and that context's parent)."""
    runs = [context for context in store.get_contexts_by_execution(execution_id)
            if _type_name(store, context) == RUN_CONTEXT]
    if len(runs) != 1:
        raise MetadataStoreError(f"execution {execution_id} belongs to {len(runs)} "
                                 f"{RUN_CONTEXT} contexts, not one")
    [run] = runs
    parents = [context for context in store.get_parent_contexts_by_context(run.id)
               if _type_name(store, context) == PIPELINE_CONTEXT]
    if len(parents) != 1:
        raise MetadataStoreError(f"run context {run.name} has {len(parents)} parent "
                                 f"{PIPELINE_CONTEXT} contexts, not one")
    [pipeline] = parents
    session = _string(run, "store_session_info")
    return KubeflowRun(pipeline, run, _pipeline_root(pipeline, run), _string(run, "namespace"),
                       json.loads(session) if session else {})


def _pipeline_root(pipeline, run):
    """The root the run was created with: its context's `pipeline_root` is that root, then
    `/<pipeline name>/<run ID>`, then the root's query string (GenerateOutputURI)."""
    root, _, _ = _string(run, "pipeline_root").partition("?")
    suffix = f"/{pipeline.name}/{run.name}"
    if not root.endswith(suffix):
        raise MetadataStoreError(f"run context {run.name}: pipeline_root {root!r} does not end "
                                 f"with {suffix!r}, as the driver writes it")
    return root[:-len(suffix)]


def own_run(store, environ=None):
    """The KubeflowRun of this pod's step: its execution is the one whose `pod_uid` is the pod's
    KFP_POD_UID.

    Raises:
      MetadataStoreError: KFP_POD_UID not set (not a Kubeflow Pipelines pod), or not exactly one
        execution recorded for this pod.
    """
    environ = os.environ if environ is None else environ
    uid = environ.get(POD_UID_VARIABLE)
    if not uid:
        raise MetadataStoreError(
            f"{POD_UID_VARIABLE} is not set: the Kubeflow Pipelines backend gives it to every "
            f"step's container (the pod's UID), and its launcher records it on the step's "
            f"execution, which is how a step finds its run; run this on Kubeflow Pipelines (or "
            f"run-spec)")
    if not re.fullmatch(r"[0-9A-Za-z-]+", uid):
        raise MetadataStoreError(f"{POD_UID_VARIABLE}={uid!r} is not a pod UID")
    executions = store.get_executions(list_options=metadata_store.ListOptions(
        filter_query=f"type = '{CONTAINER_EXECUTION}' AND "
                     f"custom_properties.pod_uid.string_value = '{uid}'"))
    if len(executions) != 1:
        raise MetadataStoreError(f"{len(executions)} executions are recorded for this pod "
                                 f"({POD_UID_VARIABLE}={uid}), where the launcher records one")
    return run_of_execution(store, executions[0].id)

"""ML Metadata as the open-source Kubeflow Pipelines backend keeps it, for `run-spec`.

- `MetadataServer`: a real ml_metadata store (SQLite) served over gRPC, the MetadataStoreService
  that every Kubeflow install runs (metadata-grpc-service); tasks find it at
  METADATA_GRPC_SERVICE_HOST and METADATA_GRPC_SERVICE_PORT, as in a Kubeflow pod.
- `KfpMetadata`: what the backend's driver and launcher write and read there, through that gRPC
  service, request for request (kubeflow/pipelines backend/src/v2/metadata/client.go and
  converter.go, 2.0 to 2.17): the `system.Pipeline` and `system.PipelineRun` contexts, the root
  `system.DAGExecution`, a `system.ContainerExecution` per task (task_name, parent_dag_id,
  pod_name, cache_fingerprint, inputs, outputs...), its artifacts (type: the schema's title;
  custom properties: the executor's metadata, display_name, store_session_info) and its INPUT
  and OUTPUT events; a cache hit is a CACHED execution whose OUTPUT events name the cached
  execution's artifacts.
- `cache_fingerprint`: the cache key of the backend's driver (backend/src/v2/cacheutils), byte
  for byte.
"""

import concurrent.futures
import decimal
import hashlib
import json
import math
import threading

import grpc
from google.protobuf import json_format, struct_pb2
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2 as service
from ml_metadata.proto import metadata_store_service_pb2_grpc as service_grpc

PIPELINE_CONTEXT = "system.Pipeline"
RUN_CONTEXT = "system.PipelineRun"
DAG_EXECUTION = "system.DAGExecution"
CONTAINER_EXECUTION = "system.ContainerExecution"
IMPORTER_EXECUTION = "system.ImporterExecution"
_SERVICE = service.DESCRIPTOR.services_by_name["MetadataStoreService"]


class MetadataError(RuntimeError):
    """A record the backend would refuse to write (a null metadata value...)."""


# -- values: the launcher's conversions (converter.go) --------------------------------------

def mlmd_value(value):
    """An artifact's metadata value as the launcher records it (StructValueToMLMDValue): string,
    number as a double, bool as an int, a list or struct wrapped in a struct."""
    result = mlmd.Value()
    if isinstance(value, bool):
        result.int_value = int(value)
    elif isinstance(value, str):
        result.string_value = value
    elif isinstance(value, (int, float)):
        result.double_value = float(value)
    elif isinstance(value, (list, dict)):
        result.struct_value.update({"list" if isinstance(value, list) else "struct": value})
    else:
        raise MetadataError(f"unknown/unsupported value type {type(value).__name__} ({value!r}) "
                            f"in an artifact's metadata")
    return result


def json_value(value):
    """An MLMD property as the driver hands it back in a RuntimeArtifact's metadata
    (toRuntimeArtifact): strings, numbers (ints too), structs as they are."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind in ("int_value", "double_value"):
        return float(getattr(value, kind))
    if kind == "struct_value":
        return json_format.MessageToDict(value.struct_value)
    raise MetadataError(f"unknown property type in MLMD artifact: {kind}")


def _struct(values):
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


# -- the cache key (cacheutils.GenerateCacheKey / GenerateFingerPrint) ------------------------

def go_float(number, exponent=True):
    """A float64 as Go writes it: encoding/json's format (exponent=True; an exponent below 1e-6
    and from 1e21), or strconv.FormatFloat(x, 'f', -1, 64) (exponent=False)."""
    number = float(number)
    if not math.isfinite(number):
        raise MetadataError(f"{number} cannot be written as JSON")
    if not exponent or number == 0 or 1e-6 <= abs(number) < 1e21:
        text = format(decimal.Decimal(repr(number)), "f")
        return text[:-2] if text.endswith(".0") else text
    mantissa, power = repr(number).split("e")
    return f"{mantissa}e{power[0]}{power[1:].lstrip('0').zfill(1 if power[0] == '-' else 2)}"


def go_json(value):
    """JSON as Go's json.Marshal writes an interface{} value: keys sorted, no spaces, <, > and &
    escaped, numbers as float64."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{go_json(str(k))}:{go_json(v)}"
                              for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                              ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
            text = text.replace(char, escaped)
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return go_float(value)


def cache_fingerprint(input_artifact_ids, input_parameters, output_artifacts,
                      output_parameter_types, command_and_args, image):
    """The fingerprint the open-source driver computes for a task whose cache is enabled.

    Args:
      input_artifact_ids: {input name: [MLMD artifact id]}.
      input_parameters: {input name: JSON value} (after the driver's type conversion).
      output_artifacts: {output name: RuntimeArtifact as JSON} (the provisioned outputs; their
        URIs are left out, as the driver does).
      output_parameter_types: {output parameter: its parameterType}.
      command_and_args: the container's command then args, placeholders unresolved.
      image: the container's image.

    Returns:
      sha256 of the cache key's JSON, in hex.
    """
    key = {"inputArtifactNames": {name: {"artifactNames": [str(i) for i in ids]}
                                  for name, ids in input_artifact_ids.items()},
           "inputParameterValues": dict(input_parameters),
           "outputArtifactsSpec": {name: {k: v for k, v in artifact.items() if k != "uri" and v
                                          not in ("", None, {})}
                                   for name, artifact in output_artifacts.items()},
           "outputParametersSpec": dict(output_parameter_types),
           "containerSpec": {"image": image, "cmdArgs": list(command_and_args)}}
    key["containerSpec"] = {k: v for k, v in key["containerSpec"].items() if v}
    key = {name: part for name, part in key.items() if part}  # protojson leaves empty maps out
    return hashlib.sha256(go_json(key).encode()).hexdigest()


# -- the store, served --------------------------------------------------------------------------

def sqlite_store(path, writable=False):
    """The ML Metadata store in the SQLite file at path: read-only, or created if absent."""
    config = mlmd.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = (mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
                                     if writable else mlmd.SqliteMetadataSourceConfig.READONLY)
    return metadata_store.MetadataStore(config)


class MetadataServer:
    """An ml_metadata store (SQLite file) served as the MetadataStoreService over gRPC on
    127.0.0.1, while the `with` block lasts.

    Every RPC the store's library implements is delegated to it (ml_metadata's
    `MetadataStore._call`, which its own client uses), one at a time; the others answer
    UNIMPLEMENTED.

    Args:
      path: the SQLite file (created if absent).
    """

    def __init__(self, path):
        self.path = path
        self.port = None
        self._lock = threading.Lock()
        self._server = None

    def __enter__(self):
        self._store = sqlite_store(self.path, writable=True)
        handlers = {}
        for method in _SERVICE.methods:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                self._handler(method),
                request_deserializer=getattr(service, method.input_type.name).FromString,
                response_serializer=lambda response: response.SerializeToString())
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(_SERVICE.full_name, handlers)])
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def _handler(self, method):
        response_class = getattr(service, method.output_type.name)

        def call(request, context):
            response = response_class()
            try:
                with self._lock:  # pylint: disable-next=protected-access
                    self._store._call(method.name, request, response)
            except errors.MetadataStoreError as e:
                context.abort(_status(e.error_code), str(e))
            except AttributeError:  # Not in the library: GetLineageGraph and a few others.
                context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method.name} is not served here")
            return response
        return call

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc_info):
        self._server.stop(grace=None).wait()
        self._server = None
        return False


def _status(code):
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN


# -- the driver's and launcher's records --------------------------------------------------------

class KfpMetadata:
    """The records of the open-source backend's driver and launcher, written through the gRPC
    MetadataStoreService at address (host:port).

    Args:
      address: the service's host:port.
    """

    def __init__(self, address):
        self._channel = grpc.insecure_channel(address)
        self._rpc = service_grpc.MetadataStoreServiceStub(self._channel)
        self._type_ids = {}

    def close(self):
        self._channel.close()

    def _type_id(self, kind, name):
        if (kind, name) not in self._type_ids:
            request = getattr(service, f"Put{kind}TypeRequest")(can_add_fields=True)
            getattr(request, f"{kind.lower()}_type").name = name
            response = getattr(self._rpc, f"Put{kind}Type")(request)
            self._type_ids[kind, name] = response.type_id
        return self._type_ids[kind, name]

    def _context(self, type_name, name, properties=None):
        """getOrInsertContext: the context of that type and name, created if absent."""
        found = self._rpc.GetContextByTypeAndName(service.GetContextByTypeAndNameRequest(
            type_name=type_name, context_name=name)).context
        if found.id:
            return found
        context = mlmd.Context(type_id=self._type_id("Context", type_name), name=name)
        for key, value in (properties or {}).items():
            context.custom_properties[key].string_value = value
        [context.id] = self._rpc.PutContexts(
            service.PutContextsRequest(contexts=[context])).context_ids
        return context

    def pipeline(self, pipeline_name, run_id, namespace, run_root, store_session_info):
        """GetPipeline: the pipeline's context and the run's (its child), created if absent."""
        pipeline = self._context(PIPELINE_CONTEXT, pipeline_name)
        run = self._context(RUN_CONTEXT, run_id, {
            "namespace": namespace, "resource_name": "run-resource",
            "pipeline_root": run_root, "store_session_info": store_session_info})
        parents = self._rpc.GetParentContextsByContext(
            service.GetParentContextsByContextRequest(context_id=run.id)).contexts
        if not parents:
            self._rpc.PutParentContexts(service.PutParentContextsRequest(parent_contexts=[
                mlmd.ParentContext(child_id=run.id, parent_id=pipeline.id)]))
        return pipeline, run

    def create_execution(self, contexts, type_name, custom_properties, inputs=None,
                         input_artifact_ids=None, name=None):
        """CreateExecution: RUNNING, attributed to the contexts, with INPUT events.

        Args:
          contexts: (pipeline context, run context).
          type_name: DAG_EXECUTION, CONTAINER_EXECUTION or IMPORTER_EXECUTION.
          custom_properties: {name: str or int}.
          inputs: {parameter: JSON value}, recorded as the `inputs` struct.
          input_artifact_ids: {input name: [artifact id]}.
          name: the execution's name (the root DAG's `run/<run id>`).

        Returns:
          The execution (with its id).
        """
        execution = mlmd.Execution(type_id=self._type_id("Execution", type_name),
                                   last_known_state=mlmd.Execution.RUNNING)
        if name:
            execution.name = name
        for key, value in custom_properties.items():
            if isinstance(value, int):
                execution.custom_properties[key].int_value = value
            else:
                execution.custom_properties[key].string_value = value
        if inputs is not None:
            execution.custom_properties["inputs"].struct_value.CopyFrom(_struct(inputs))
        request = service.PutExecutionRequest(execution=execution, contexts=list(contexts))
        for input_name, ids in (input_artifact_ids or {}).items():
            for artifact_id in ids:
                request.artifact_event_pairs.add().event.CopyFrom(_event(
                    mlmd.Event.INPUT, input_name, artifact_id))
        execution.id = self._rpc.PutExecution(request).execution_id
        return execution

    def update_execution(self, execution):
        """PrePublishExecution and the like: writes the execution's fields as they are now."""
        self._rpc.PutExecution(service.PutExecutionRequest(execution=execution))

    def record_artifact(self, output_name, type_name, runtime_artifact, store_session_info):
        """RecordArtifact: a LIVE artifact of the runtime artifact (URI and metadata), its
        display_name and store_session_info defaulted. Returns it, with its id."""
        artifact = mlmd.Artifact(type_id=self._type_id("Artifact", type_name),
                                 uri=runtime_artifact.get("uri", ""), state=mlmd.Artifact.LIVE)
        for key, value in (runtime_artifact.get("metadata") or {}).items():
            artifact.custom_properties[key].CopyFrom(mlmd_value(value))
        for key, value in (("display_name", output_name),
                           ("store_session_info", store_session_info)):
            if key not in artifact.custom_properties:
                artifact.custom_properties[key].string_value = value
        [artifact.id] = self._rpc.PutArtifacts(
            service.PutArtifactsRequest(artifacts=[artifact])).artifact_ids
        return artifact

    def publish(self, execution, contexts, state, output_parameters=None, output_artifacts=()):
        """PublishExecution: the final state, the `outputs` struct, an OUTPUT event per
        (output name, artifact id)."""
        execution.last_known_state = state
        if output_parameters is not None:
            execution.custom_properties["outputs"].struct_value.CopyFrom(
                _struct(output_parameters))
        request = service.PutExecutionRequest(execution=execution, contexts=list(contexts))
        for output_name, artifact_id in output_artifacts:
            request.artifact_event_pairs.add().event.CopyFrom(_event(
                mlmd.Event.OUTPUT, output_name, artifact_id))
        self._rpc.PutExecution(request)

    def execution(self, execution_id):
        [execution] = self._rpc.GetExecutionsByID(service.GetExecutionsByIDRequest(
            execution_ids=[execution_id])).executions
        return execution

    def output_artifacts(self, execution_id):
        """{output name: (artifact, its type's name)} of an execution (its OUTPUT events)."""
        events = self._rpc.GetEventsByExecutionIDs(service.GetEventsByExecutionIDsRequest(
            execution_ids=[execution_id])).events
        names = {event.artifact_id: event.path.steps[0].key for event in events
                 if event.type == mlmd.Event.OUTPUT}
        if not names:
            return {}
        artifacts = self._rpc.GetArtifactsByID(service.GetArtifactsByIDRequest(
            artifact_ids=list(names))).artifacts
        types = {t.id: t.name for t in self._rpc.GetArtifactTypesByID(
            service.GetArtifactTypesByIDRequest(type_ids=list({a.type_id for a in artifacts})))
            .artifact_types}
        return {names[a.id]: (a, types[a.type_id]) for a in artifacts}

    def cached_execution(self, pipeline_context, fingerprint, namespace):
        """The latest COMPLETE container execution of the pipeline, in namespace, with that
        cache fingerprint, or None (the backend's cache lookup: the cache server's entries are
        keyed by the fingerprint, `pipeline/<pipeline name>` and the namespace)."""
        request = service.GetExecutionsByContextRequest(context_id=pipeline_context.id)
        request.options.filter_query = (
            f"custom_properties.cache_fingerprint.string_value = '{fingerprint}' "
            f"AND custom_properties.namespace.string_value = '{namespace}' "
            f"AND last_known_state = COMPLETE")
        request.options.order_by_field.field = mlmd.ListOperationOptions.OrderByField.ID
        request.options.order_by_field.is_asc = False
        request.options.max_result_size = 1
        executions = self._rpc.GetExecutionsByContext(request).executions
        return executions[0] if executions else None


def _event(kind, name, artifact_id):
    event = mlmd.Event(type=kind, artifact_id=artifact_id)
    event.path.steps.add().key = name
    return event


def runtime_artifact(artifact):
    """The RuntimeArtifact (as JSON) the driver hands a downstream task: name = the MLMD id, the
    URI, the custom properties as metadata, and an empty instance schema, as
    GetOutputArtifactsByExecutionId leaves it."""
    return {"name": str(artifact.id), "type": {"instanceSchema": ""}, "uri": artifact.uri,
            "metadata": {key: json_value(value)
                         for key, value in sorted(artifact.custom_properties.items())}}

"""Runs an open-source Kubeflow Pipelines spec here, as the open-source backend would, without a
cluster.

    tfx-embeddings run-spec pipeline.yaml --python IMAGE_PYTHON --pipeline-root DIR \\
        --param examples=... --param vectors=...

What the backend does (kubeflow/pipelines backend/src, 2.5 to 2.17), done the same way here:

- the upload and the run are checked with the API server's and the compiler's rules
  (backend): the spec is a bare PipelineSpec of schema 2.1.0 (a Vertex PipelineJob is
  "unknown template format"), executors are containers or importers (a resolver is "non-container
  and non-importer executor not implemented"), lifecycle hooks are refused (the backend would
  silently skip them), root inputs are typed, required and known, defaults fill the rest;
- ML Metadata is a real ml_metadata store (`<pipeline root>/metadata.sqlite`, or
  --metadata) served over gRPC while the run lasts; every task's environment has its address in
  METADATA_GRPC_SERVICE_HOST and METADATA_GRPC_SERVICE_PORT, as a Kubeflow pod does, and the
  driver's and launcher's records are written there (metadata);
- each task, in dependency order: its inputs resolved as the driver does (constants, the run's
  inputs, upstream output parameters; upstream artifacts by their MLMD ids, handed over with an
  empty instance schema), then, with `cachingOptions.enableCache`, the driver's cache key: a
  previous COMPLETE execution of the pipeline with the same fingerprint is reused (a CACHED
  execution whose outputs are its artifacts) and the task does not run; otherwise its outputs
  are provisioned (`<root>/<pipeline>/<run id>/<task>/<uuid>/<output>`, with the launcher's
  `executor-logs` artifact), the placeholders of its command and arguments are replaced as the
  launcher replaces them (`{{$}}`, `{{$.inputs.parameters['x']}}`,
  `{{$.outputs.parameters['x'].output_file}}`...) and it runs as a process of `--python` (the
  image), in a directory of its own that stands for the pod's /tmp; then its executor output
  file and output parameter files are read, the artifacts' URIs and metadata merged and recorded.

What stands in for what: the pipeline root is a local directory, read and written in place (the
bucket; the launcher's copies of input artifacts to /gcs/..., which TFX's executors do not read,
are not made); tasks run one at a time; the pod is a process. Not emulated: retries, resources,
parallelism, conditions, loops, sub-DAGs, importer reimport matching, the image's filesystem.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import yaml
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2 as mlmd

from . import backend, metadata
from .metadata import (
    CONTAINER_EXECUTION,
    DAG_EXECUTION,
    IMPORTER_EXECUTION,
    KfpMetadata,
    MetadataServer,
)

METADATA_FILE = "metadata.sqlite"
NAMESPACE = "kubeflow"
LOGS_OUTPUT = "executor-logs"
# What the backend records as the run's store_session_info for a bucket; here, the local root.
_SESSION_INFO = json.dumps({"Provider": "file", "Params": {}})


class SpecRunError(RuntimeError):
    """A task failed, or the spec asks for something the backend (or this runner) does not do."""


@dataclasses.dataclass
class TaskRun:
    """A task's outcome: state COMPLETE or CACHED, its execution's id, output URIs and
    parameters, seconds."""
    name: str
    state: str
    execution_id: int
    outputs: dict
    parameters: dict
    seconds: float


class SpecRun:
    """One run of an open-source Kubeflow Pipelines spec.

    Args:
      spec_path: the spec (`compile --target kubeflow`'s YAML).
      pipeline_root: the run's pipeline root, a local directory (the bucket).
      python: the interpreter that plays the image: every container command runs with it.
      parameters: {name: value as text}, the run's inputs (the others take their defaults).
      env: environment variables of the image (the Dockerfile's ENV).
      metadata_path: the ML Metadata SQLite file (default: in the pipeline root).
      publish_logs: give each task the launcher's `executor-logs` output (the backend's
        default from 2.5 on).

    Raises:
      backend.SpecError: the backend would refuse the spec or the run's inputs.
      SpecRunError: the spec needs what this runner does not do (loops, conditions, sub-DAGs).
    """

    def __init__(self, spec_path, pipeline_root, python, parameters=None, env=None,
                 metadata_path=None, publish_logs=True):
        self.spec = backend.load_spec(spec_path)
        backend.check_executors(self.spec)
        self._check_supported()
        given = {name: backend.parse_parameter(self.spec, name, text)
                 for name, text in (parameters or {}).items()}
        self.parameters = backend.run_parameters(self.spec, given)
        self.pipeline_root = os.path.abspath(pipeline_root)
        self.metadata_path = os.path.abspath(
            metadata_path or os.path.join(self.pipeline_root, METADATA_FILE))
        self.python, self.env, self.publish_logs = python, dict(env or {}), publish_logs
        self.pipeline_name = self.spec["pipelineInfo"]["name"]
        self.run_id = str(uuid.uuid4())
        self.run_root = f"{self.pipeline_root}/{self.pipeline_name}/{self.run_id}"
        self._executions = {}  # task -> its execution's id in this run

    def _check_supported(self):
        for name, task in self.spec["root"]["dag"]["tasks"].items():
            component = self.spec["components"][task["componentRef"]["name"]]
            unsupported = [what for what, present in (
                ("a sub-DAG", "dag" in component), ("a trigger condition", "triggerPolicy" in task),
                ("a loop", "parameterIterator" in task or "artifactIterator" in task),
                ("retries", "retryPolicy" in task)) if present]
            if unsupported:
                raise SpecRunError(f"task {name}: {', '.join(unsupported)}: not done by run-spec")

    def run(self, report=print):
        """Runs every task, each line of progress given to report.

        Returns:
          {task: TaskRun}, in the order they ran.

        Raises:
          SpecRunError: a task failed (its log's path and last lines in the message).
        """
        os.makedirs(self.pipeline_root, exist_ok=True)
        results = {}
        with MetadataServer(self.metadata_path) as server:
            self._server = server
            self._metadata = KfpMetadata(server.address)
            try:
                report(f"run {self.run_id} of {self.pipeline_name}; ML Metadata: "
                       f"{self.metadata_path} (served at {server.address})")
                self._contexts = self._metadata.pipeline(
                    self.pipeline_name, self.run_id, NAMESPACE, self.run_root, _SESSION_INFO)
                dag = self._metadata.create_execution(
                    self._contexts, DAG_EXECUTION, {"display_name": "", "task_name": ""},
                    inputs=self.parameters, name=f"run/{self.run_id}")
                state = mlmd.Execution.FAILED
                try:
                    for name in _order(self.spec["root"]["dag"]["tasks"]):
                        results[name] = self._run_task(name, dag.id)
                        report(_describe(results[name]))
                    state = mlmd.Execution.COMPLETE
                finally:
                    self._metadata.publish(dag, self._contexts, state)
            finally:
                self._metadata.close()
        return results

    # -- a task: the driver ---------------------------------------------------------------------

    def _run_task(self, name, dag_id):
        task = self.spec["root"]["dag"]["tasks"][name]
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        started = time.monotonic()
        if "importer" in executor:
            run = self._run_importer(name, task, component, executor["importer"], dag_id)
        else:
            run = self._run_container(name, task, component, executor["container"], dag_id)
        run.seconds = time.monotonic() - started
        return run

    def _upstream_outputs(self, name, producer):
        if producer not in self._executions:
            raise SpecRunError(f"task {name}: its producer {producer} has not run")
        execution = self._metadata.execution(self._executions[producer])
        parameters = recorded_outputs(execution)
        return self._metadata.output_artifacts(execution.id), parameters

    def _resolve_inputs(self, name, task, component):
        """The executor input's `inputs`, as the driver resolves them (resolveInputs)."""
        parameters = {}
        for key, spec in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in spec:
                parameters[key] = spec["runtimeValue"]["constant"]
            elif "componentInputParameter" in spec:
                parameters[key] = self.parameters[spec["componentInputParameter"]]
            elif "taskOutputParameter" in spec:
                source = spec["taskOutputParameter"]
                produced = self._upstream_outputs(name, source["producerTask"])[1]
                if source["outputParameterKey"] not in produced:
                    raise SpecRunError(f"task {name}: {source['producerTask']} has no output "
                                       f"parameter {source['outputParameterKey']}")
                parameters[key] = produced[source["outputParameterKey"]]
            else:
                raise SpecRunError(f"task {name}: input parameter {key} ({sorted(spec)}): not "
                                   f"done by run-spec")
        _convert_parameters(name, parameters, component)
        artifacts = {}
        for key, spec in task.get("inputs", {}).get("artifacts", {}).items():
            if "taskOutputArtifact" not in spec:
                raise SpecRunError(f"task {name}: input artifact {key} ({sorted(spec)}): not "
                                   f"done by run-spec")
            source = spec["taskOutputArtifact"]
            produced = self._upstream_outputs(name, source["producerTask"])[0]
            if source["outputArtifactKey"] not in produced:
                raise SpecRunError(f"task {name}: {source['producerTask']} has no output "
                                   f"artifact {source['outputArtifactKey']}")
            artifact = produced[source["outputArtifactKey"]][0]
            artifacts[key] = {"artifacts": [metadata.runtime_artifact(artifact)]}
        return {"parameterValues": parameters, "artifacts": artifacts}

    def _provision_outputs(self, name, component, pod_tmp):
        """The executor input's `outputs` (provisionOutputs): output URIs under the run's root,
        files of the pod for output parameters and the executor output."""
        definitions = component.get("outputDefinitions", {})
        artifact_definitions = dict(definitions.get("artifacts", {}))
        if self.publish_logs:
            artifact_definitions[LOGS_OUTPUT] = {"artifactType": {"schemaTitle": "system.Artifact"}}
        salt = str(uuid.uuid4())
        artifacts = {}
        for key, definition in artifact_definitions.items():
            artifact = {"uri": f"{self.run_root}/{name}/{salt}/{key}",
                        "type": definition["artifactType"]}
            if definition.get("metadata"):
                artifact["metadata"] = definition["metadata"]
            artifacts[key] = {"artifacts": [artifact]}
        return {"artifacts": artifacts,
                "parameters": {key: {"outputFile": os.path.join(pod_tmp, "kfp", "outputs", key)}
                               for key in definitions.get("parameters", {})},
                "outputFile": os.path.join(pod_tmp, "kfp_outputs", "output_metadata.json")}

    def _run_container(self, name, task, component, container, dag_id):
        inputs = self._resolve_inputs(name, task, component)
        pod_tmp = tempfile.mkdtemp(prefix=f"kfp-{name}-")
        try:
            executor_input = {"inputs": inputs,
                              "outputs": self._provision_outputs(name, component, pod_tmp)}
            input_ids = {key: [int(a["name"]) for a in artifact_list["artifacts"]]
                         for key, artifact_list in inputs["artifacts"].items()}
            properties = {"display_name": name, "task_name": name, "parent_dag_id": dag_id,
                          "pod_name": "", "pod_uid": "", "namespace": "",
                          "image": container["image"]}
            cached = None
            if task.get("cachingOptions", {}).get("enableCache"):
                properties["cache_fingerprint"] = self._fingerprint(
                    container, component, executor_input, input_ids)
                cached = self._metadata.cached_execution(self._contexts[0],
                                                         properties["cache_fingerprint"])
                if cached is not None:
                    properties["cached_execution_id"] = str(cached.id)
            execution = self._metadata.create_execution(
                self._contexts, CONTAINER_EXECUTION, properties,
                inputs=inputs["parameterValues"], input_artifact_ids=input_ids)
            self._executions[name] = execution.id
            if cached is not None:
                return self._reuse(name, execution, cached, executor_input)
            return self._launch(name, execution, container, component, executor_input, pod_tmp)
        finally:
            shutil.rmtree(pod_tmp, ignore_errors=True)

    def _fingerprint(self, container, component, executor_input, input_ids):
        outputs = executor_input["outputs"]
        return metadata.cache_fingerprint(
            input_ids, executor_input["inputs"]["parameterValues"],
            {key: artifact_list["artifacts"][0]
             for key, artifact_list in outputs["artifacts"].items()},
            {key: definition["parameterType"] for key, definition in
             component.get("outputDefinitions", {}).get("parameters", {}).items()},
            list(container.get("command", [])) + list(container.get("args", [])),
            container["image"])

    def _reuse(self, name, execution, cached, executor_input):
        """reuseCachedOutputs: a CACHED execution whose outputs are the cached one's."""
        produced = self._metadata.output_artifacts(cached.id)
        missing = set(executor_input["outputs"]["artifacts"]) - set(produced)
        if missing:
            raise SpecRunError(f"task {name}: the cached execution {cached.id} has no output "
                               f"artifact {sorted(missing)}")
        parameters = recorded_outputs(cached)
        keys = list(executor_input["outputs"]["artifacts"])
        self._metadata.publish(execution, self._contexts, mlmd.Execution.CACHED, parameters,
                               [(key, produced[key][0].id) for key in keys])
        return TaskRun(name, "CACHED", execution.id, {key: produced[key][0].uri for key in keys},
                       parameters, 0.0)

    # -- a task: the launcher -------------------------------------------------------------------

    def _launch(self, name, execution, container, component, executor_input, pod_tmp):
        execution.custom_properties["pod_name"].string_value = f"{self.pipeline_name}-{name}"
        execution.custom_properties["pod_uid"].string_value = str(uuid.uuid4())
        execution.custom_properties["namespace"].string_value = NAMESPACE
        self._metadata.update_execution(execution)  # PrePublishExecution.
        outputs = executor_input["outputs"]
        log_path = self._log_path(name, outputs, pod_tmp)
        state, parameters, recorded = mlmd.Execution.FAILED, None, []
        try:
            command = self._command(container, executor_input, component)
            with open(log_path, "wb") as log:
                result = subprocess.run(command, cwd=pod_tmp, env=self._environment(pod_tmp),
                                        stdout=log, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                with open(log_path, errors="replace") as log:
                    tail = log.read()[-3000:]
                raise SpecRunError(f"task {name} failed (exit {result.returncode}); its log: "
                                   f"{log_path}\n{tail}")
            executor_output = _read_json(outputs["outputFile"])
            parameters = _output_parameters(name, executor_output, outputs, component)
            for key, artifact_list in outputs["artifacts"].items():
                artifact = dict(artifact_list["artifacts"][0])
                written = executor_output.get("artifacts", {}).get(key, {}).get("artifacts", [])
                if written:  # mergeRuntimeArtifacts
                    artifact["uri"] = written[0].get("uri") or artifact["uri"]
                    artifact["metadata"] = {**artifact.get("metadata", {}),
                                            **written[0].get("metadata", {})}
                recorded.append((key, self._metadata.record_artifact(
                    key, _type_name(artifact["type"]), artifact, _SESSION_INFO)))
            state = mlmd.Execution.COMPLETE
        finally:
            self._metadata.publish(execution, self._contexts, state,
                                   parameters if parameters is not None else {},
                                   [(key, artifact.id) for key, artifact in recorded])
        return TaskRun(name, "COMPLETE", execution.id,
                       {key: artifact.uri for key, artifact in recorded}, parameters, 0.0)

    def _log_path(self, name, outputs, pod_tmp):
        """The launcher writes the task's log to its executor-logs artifact (when published)."""
        if LOGS_OUTPUT in outputs["artifacts"]:
            path = outputs["artifacts"][LOGS_OUTPUT]["artifacts"][0]["uri"]
        else:
            path = os.path.join(pod_tmp, "log.txt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def _command(self, container, executor_input, component):
        """The container's command and args, placeholders replaced (getPlaceholders), with the
        component's parameter defaults (addDefaultParams); `python` is the image's."""
        with_defaults = json.loads(json.dumps(executor_input))
        values = with_defaults["inputs"]["parameterValues"]
        for key, definition in component.get("inputDefinitions", {}).get("parameters",
                                                                          {}).items():
            if key not in values and "defaultValue" in definition:
                values[key] = definition["defaultValue"]
        placeholders = {"{{$}}": json.dumps(executor_input, separators=(",", ":"))}
        for key, artifact_list in executor_input["inputs"]["artifacts"].items():
            placeholders[f"{{{{$.inputs.artifacts['{key}'].uri}}}}"] = \
                artifact_list["artifacts"][0]["uri"]
        for key, artifact_list in executor_input["outputs"]["artifacts"].items():
            placeholders[f"{{{{$.outputs.artifacts['{key}'].uri}}}}"] = \
                artifact_list["artifacts"][0]["uri"]
        for key, value in values.items():
            placeholders[f"{{{{$.inputs.parameters['{key}']}}}}"] = _text(value)
        for key, parameter in executor_input["outputs"]["parameters"].items():
            placeholders[f"{{{{$.outputs.parameters['{key}'].output_file}}}}"] = \
                parameter["outputFile"]

        def replace(part):
            for placeholder, value in placeholders.items():
                part = part.replace(placeholder, value)
            return part

        command = [replace(part) for part in container.get("command", [])]
        if command and command[0] == "python":
            command[0] = self.python
        return command + [replace(part) for part in container.get("args", [])]

    def _environment(self, pod_tmp):
        """The pod's environment: the image's interpreter first on PATH, its ENV, the metadata
        store's address (metadata-grpc-configmap), nothing of a checkout."""
        env = {key: value for key, value in os.environ.items()
               if key in ("HOME", "LANG", "LC_ALL", "USER")}
        env["PATH"] = os.path.dirname(self.python) + os.pathsep + "/usr/local/bin:/usr/bin:/bin"
        env["TMPDIR"] = pod_tmp
        env["METADATA_GRPC_SERVICE_HOST"] = "127.0.0.1"
        env["METADATA_GRPC_SERVICE_PORT"] = str(self._server.port)
        env.update(self.env)
        return env

    # -- an importer ----------------------------------------------------------------------------

    def _run_importer(self, name, task, component, importer, dag_id):
        """The driver's importer: an artifact at the given URI (a constant or a run input),
        recorded under a COMPLETE system.ImporterExecution (reimport matching not done)."""
        source = importer["artifactUri"]
        if "runtimeValue" in source:
            uri = source["runtimeValue"]["constant"]
        elif "componentInputParameter" in source:
            uri = self.parameters[source["componentInputParameter"]]
        else:
            raise SpecRunError(f"task {name}: importer URI {sorted(source)}: not done by run-spec")
        [(key, _)] = component.get("outputDefinitions", {}).get("artifacts", {}).items()
        execution = self._metadata.create_execution(
            self._contexts, IMPORTER_EXECUTION,
            {"display_name": name, "task_name": name, "parent_dag_id": dag_id})
        self._executions[name] = execution.id
        artifact = self._metadata.record_artifact(
            key, _type_name(importer["typeSchema"]),
            {"uri": uri, "metadata": importer.get("metadata", {})}, _SESSION_INFO)
        self._metadata.publish(execution, self._contexts, mlmd.Execution.COMPLETE, {},
                               [(key, artifact.id)])
        return TaskRun(name, "COMPLETE", execution.id, {key: uri}, {}, 0.0)


def recorded_outputs(execution):
    """An execution's output parameters (its `outputs` custom property) as JSON values."""
    if "outputs" not in execution.custom_properties:
        return {}
    return json_format.MessageToDict(execution.custom_properties["outputs"].struct_value)


def _convert_parameters(name, parameters, component):
    """The driver's type validation and conversion (handleParamTypeValidationAndConversion)."""
    for key, spec in component.get("inputDefinitions", {}).get("parameters", {}).items():
        if key not in parameters:
            if not spec.get("isOptional") and "defaultValue" not in spec:
                raise SpecRunError(f"task {name}: neither value nor default value provided for "
                                   f"non-optional parameter {key!r}")
            continue
        value, kind = parameters[key], spec.get("parameterType")
        if kind == "STRING":
            if not isinstance(value, str):
                parameters[key] = _text(value)
            continue
        actual = {bool: "bool", str: "string", list: "list", dict: "struct",
                  type(None): "null"}.get(type(value), "number")
        expected = {"NUMBER_DOUBLE": "number", "NUMBER_INTEGER": "number", "BOOLEAN": "bool",
                    "LIST": "list", "STRUCT": "struct"}.get(kind)
        if actual != expected:
            raise SpecRunError(f"task {name}: input parameter {key!r} type mismatch: expect "
                               f"{kind}, got {actual}")


def _text(value):
    """PbValueToText: a parameter's value as the text a placeholder or a STRING input gets."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return metadata.go_float(value, exponent=False)
    return metadata.go_json(value)


def _output_parameters(name, executor_output, outputs, component):
    """collectOutputParameters: the executor output's values, then each output parameter's file."""
    values = dict(executor_output.get("parameterValues", {}))
    types = {key: definition["parameterType"] for key, definition in
             component.get("outputDefinitions", {}).get("parameters", {}).items()}
    for key, parameter in outputs["parameters"].items():
        if key in values:
            continue
        try:
            with open(parameter["outputFile"]) as f:
                text = f.read()
        except OSError as e:
            raise SpecRunError(f"task {name}: failed to read output parameter name={key!r} "
                               f"path={parameter['outputFile']!r}: {e}") from None
        kind = types[key]
        if kind == "STRING":
            values[key] = text
        elif kind in ("NUMBER_INTEGER", "NUMBER_DOUBLE"):
            values[key] = float(int(text.strip()) if kind == "NUMBER_INTEGER" else text.strip())
        elif kind == "BOOLEAN":
            values[key] = text.strip().lower() in ("1", "t", "true")
        else:
            values[key] = json.loads(text)
    return values


def _read_json(path):
    """The executor output file (an empty ExecutorOutput when the task wrote none)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _type_name(artifact_type):
    """The MLMD type of an artifact: its schema's title (SchemaToArtifactType)."""
    if artifact_type.get("schemaTitle"):
        return artifact_type["schemaTitle"]
    title = (yaml.safe_load(artifact_type.get("instanceSchema") or "") or {}).get("title")
    if not title:
        raise SpecRunError(f"artifact type {artifact_type} has no title")
    return title


def _order(tasks):
    """Task names in an order where each comes after the tasks it depends on."""
    needs = {}
    for name, task in tasks.items():
        inputs = task.get("inputs", {})
        needs[name] = set(task.get("dependentTasks", [])) | {
            spec[kind]["producerTask"]
            for group, kind in (("artifacts", "taskOutputArtifact"),
                                ("parameters", "taskOutputParameter"))
            for spec in inputs.get(group, {}).values() if kind in spec}
    order = []
    while needs:
        ready = sorted(name for name, deps in needs.items() if deps <= set(order))
        if not ready:
            raise SpecRunError(f"the tasks {sorted(needs)} depend on each other in a cycle")
        order += ready
        for name in ready:
            del needs[name]
    return order


def _describe(run):
    if run.state == "CACHED":
        return f"{run.name}: CACHED (the outputs of an earlier run with the same cache key)"
    return f"{run.name}: COMPLETE ({run.seconds:.1f}s)"

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
  driver's and launcher's records are written there (metadata): the pipeline context named by
  the spec's pipeline (the OUTERMOST one where a pipeline is nested in another: the kfp SDK
  compiles both into one spec), the run context with the run's namespace and
  `<root>/<pipeline>/<run id>` as its pipeline root;
- a sub-DAG (a pipeline nested as a component) is a system.DAGExecution of its own, its
  inputs resolved, the component's defaults for the others, the parent of its tasks';
- each task, in dependency order: its inputs resolved as the driver does (constants, the DAG's
  inputs, upstream output parameters; upstream artifacts by their MLMD ids, handed over with an
  empty instance schema), then, with `cachingOptions.enableCache`, the driver's cache key: a
  previous COMPLETE execution of the pipeline in the namespace with the same fingerprint is
  reused (a CACHED execution whose outputs are its artifacts) and the task does not run;
  otherwise its outputs are provisioned (`<root>/<pipeline>/<run id>/<task>/<uuid>/<output>`,
  with the launcher's `executor-logs` artifact), the pod's name, UID and namespace recorded on
  its execution before its command runs (PrePublishExecution) and given to it as KFP_POD_NAME
  and KFP_POD_UID, the placeholders of its command and arguments replaced as the launcher
  replaces them (`{{$}}`, `{{$.inputs.parameters['x']}}`,
  `{{$.outputs.parameters['x'].output_file}}`...), and it runs as a process of `--python` (the
  image), in a directory of its own that stands for the pod's /tmp; then its executor output
  file and output parameter files are read, the artifacts' URIs and metadata merged, every
  output URI checked as the launcher's upload does (`KeyFromURI`: a URI of an object store, or
  here a local path, outside the run's `<root>/<pipeline>/<run id>` fails the task: "does not
  have expected bucket prefix"), and recorded.

What stands in for what: the pipeline root is a local directory, read and written in place (the
bucket; the launcher's copies of input artifacts to /gcs/..., which TFX's executors do not read,
are not made); tasks run one at a time; the pod is a process, whose requests and limits are
computed as the driver computes them (a value it cannot parse fails the task as it would) and
reported, not enforced. Not emulated: retries, parallelism, conditions, loops, outputs of
sub-DAGs, importer reimport matching, the image's filesystem.
"""

import dataclasses
import json
import os
import posixpath
import shutil
import subprocess
import tempfile
import time
import uuid

import yaml
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2 as mlmd

from . import backend, metadata, resources
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
MINIO_SECRET = "mlpipeline-minio-artifact"
STOCK_SECRETS = {MINIO_SECRET: {"accesskey": "minio", "secretkey": "minio123"}}


class SpecRunError(RuntimeError):
    """A task failed, or the spec asks for something the backend (or this runner) does not do."""


@dataclasses.dataclass
class TaskRun:
    """A task's outcome: state COMPLETE or CACHED, its execution's id, output URIs and
    parameters, seconds, and its pod's resources ({"requests": {...}, "limits": {...}}, as the
    driver's podSpecPatch has them)."""
    name: str
    state: str
    execution_id: int
    outputs: dict
    parameters: dict
    seconds: float
    resources: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Scope:
    """A DAG being run: its execution, its tasks, its inputs' values, the executions of its
    tasks so far ({task: execution id}), and its tasks' path prefix in reports."""
    execution: object
    tasks: dict
    inputs: dict
    path: str = ""
    executions: dict = dataclasses.field(default_factory=dict)


class SpecRun:
    """One run of an open-source Kubeflow Pipelines spec.

    Args:
      spec_path: the spec (`compile --target kubeflow`'s YAML).
      pipeline_root: the run's pipeline root: a local directory (the bucket), or a minio://
        root (a stock install's default) on the MinIO (or any S3) at minio_endpoint.
      python: the interpreter that plays the image: every container command runs with it.
      parameters: {name: value as text}, the run's inputs (the others take their defaults).
      env: environment variables of the image (the Dockerfile's ENV).
      metadata_path: the ML Metadata SQLite file (default: in the pipeline root).
      publish_logs: give each task the launcher's `executor-logs` output (the backend's
        default from 2.5 on).
      namespace: the run's namespace (recorded on its run context and its tasks' executions).
      secrets: {secret name: {key: value}} of the namespace, for the platform spec's
        secretAsEnv (a pod whose secret or key is missing never starts); a stock install's
        `mlpipeline-minio-artifact` (minio / minio123) is there unless replaced.
      minio_endpoint: host:port of the install's MinIO (its minio-service: every pod of the
        namespace gets MINIO_SERVICE_SERVICE_HOST and _PORT, and the driver takes the
        endpoint of a minio:// root from them).

    Raises:
      backend.SpecError: the backend would refuse the spec or the run's inputs.
      SpecRunError: the spec needs what this runner does not do (loops, conditions, outputs of
        sub-DAGs).
    """

    def __init__(self, spec_path, pipeline_root, python, parameters=None, env=None,
                 metadata_path=None, publish_logs=True, namespace=NAMESPACE, secrets=None,
                 minio_endpoint=None):
        self.spec, self.platform = backend.load_specs(spec_path)
        backend.check_executors(self.spec)
        self._check_supported(self.spec["root"]["dag"])
        given = {name: backend.parse_parameter(self.spec, name, text)
                 for name, text in (parameters or {}).items()}
        self.parameters = backend.run_parameters(self.spec, given)
        self.secrets = {**STOCK_SECRETS, **(secrets or {})}
        self.minio_endpoint = minio_endpoint
        pipeline_root = os.fspath(pipeline_root)
        if "://" in pipeline_root:
            if not pipeline_root.startswith("minio://") or not metadata_path:
                raise SpecRunError(f"pipeline root {pipeline_root}: run-spec takes a local "
                                   f"directory, or a minio:// root with --metadata and "
                                   f"--minio-endpoint")
            self.pipeline_root = pipeline_root.rstrip("/")
        else:
            self.pipeline_root = os.path.abspath(pipeline_root)
        self.metadata_path = os.path.abspath(
            metadata_path or os.path.join(self.pipeline_root, METADATA_FILE))
        self._session_info = json.dumps(self._store_session())
        self.python, self.env, self.publish_logs = python, dict(env or {}), publish_logs
        self.namespace = namespace
        # The driver's name for the pipeline: the spec's, which is the outermost pipeline's
        # where a pipeline runs nested in another (the kfp SDK compiles one spec of both).
        self.pipeline_name = self.spec["pipelineInfo"]["name"]
        self.run_id = str(uuid.uuid4())
        # The run context's pipeline_root (GenerateOutputURI): the launcher's bucket prefix.
        self.run_root = f"{self.pipeline_root}/{self.pipeline_name}/{self.run_id}"

    def _check_supported(self, dag, path=""):
        for name, task in dag["tasks"].items():
            component = self.spec["components"][task["componentRef"]["name"]]
            unsupported = [what for what, present in (
                ("a trigger condition", "triggerPolicy" in task),
                ("a loop", "parameterIterator" in task or "artifactIterator" in task),
                ("retries", "retryPolicy" in task),
                ("outputs of a sub-DAG", bool(component.get("dag", {}).get("outputs")))) if present]
            if unsupported:
                raise SpecRunError(f"task {path}{name}: {', '.join(unsupported)}: not done by "
                                   f"run-spec")
            if "dag" in component:
                self._check_supported(component["dag"], f"{path}{name}/")

    def run(self, report=print):
        """Runs every task, each line of progress given to report.

        Returns:
          {task: TaskRun}, in the order they ran (a task of a sub-DAG named `<dag task>/<task>`).

        Raises:
          SpecRunError: a task failed (its log's path and last lines in the message).
        """
        if "://" not in self.pipeline_root:
            os.makedirs(self.pipeline_root, exist_ok=True)
        os.makedirs(os.path.dirname(self.metadata_path), exist_ok=True)
        results = {}
        with MetadataServer(self.metadata_path) as server:
            self._server = server
            self._metadata = KfpMetadata(server.address)
            try:
                report(f"run {self.run_id} of {self.pipeline_name}; ML Metadata: "
                       f"{self.metadata_path} (served at {server.address})")
                self._contexts = self._metadata.pipeline(
                    self.pipeline_name, self.run_id, self.namespace, self.run_root,
                    self._session_info)
                dag = self._metadata.create_execution(
                    self._contexts, DAG_EXECUTION, {"display_name": "", "task_name": ""},
                    inputs=self.parameters, name=f"run/{self.run_id}")
                self._run_dag(_Scope(dag, self.spec["root"]["dag"]["tasks"], self.parameters),
                              results, report)
            finally:
                self._metadata.close()
        return results

    def _run_dag(self, scope, results, report):
        """Runs a DAG's tasks in dependency order, then publishes its execution."""
        state = mlmd.Execution.FAILED
        try:
            for name in _order(scope.tasks):
                task = scope.tasks[name]
                component = self.spec["components"][task["componentRef"]["name"]]
                if "dag" in component:
                    self._run_sub_dag(name, task, component, scope, results, report)
                    continue
                results[scope.path + name] = self._run_task(name, task, component, scope)
                report(_describe(scope.path + name, results[scope.path + name]))
            state = mlmd.Execution.COMPLETE
        finally:
            self._metadata.publish(scope.execution, self._contexts, state)

    def _run_sub_dag(self, name, task, component, scope, results, report):
        """driver.DAG: a system.DAGExecution of the task (its inputs resolved, the component's
        defaults for the others), whose tasks then run with it as their parent DAG."""
        inputs = self._resolve_inputs(name, task, component, scope)
        parameters = dict(inputs["parameterValues"])
        for key, definition in component.get("inputDefinitions", {}).get("parameters",
                                                                          {}).items():
            if key not in parameters and "defaultValue" in definition:
                parameters[key] = definition["defaultValue"]
        execution = self._metadata.create_execution(
            self._contexts, DAG_EXECUTION,
            {"display_name": name, "task_name": name, "parent_dag_id": scope.execution.id},
            inputs=parameters)
        scope.executions[name] = execution.id
        report(f"{scope.path}{name}: a sub-DAG of {len(component['dag']['tasks'])} tasks")
        self._run_dag(_Scope(execution, component["dag"]["tasks"], parameters,
                             f"{scope.path}{name}/"), results, report)

    # -- a task: the driver ---------------------------------------------------------------------

    def _run_task(self, name, task, component, scope):
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        started = time.monotonic()
        if "importer" in executor:
            run = self._run_importer(name, task, component, executor["importer"], scope)
        else:
            run = self._run_container(name, task, component, executor["container"], scope)
        run.seconds = time.monotonic() - started
        return run

    def _upstream_outputs(self, name, producer, scope):
        if producer not in scope.executions:
            raise SpecRunError(f"task {scope.path}{name}: its producer {producer} has not run")
        execution = self._metadata.execution(scope.executions[producer])
        parameters = recorded_outputs(execution)
        return self._metadata.output_artifacts(execution.id), parameters

    def _resolve_inputs(self, name, task, component, scope):
        """The executor input's `inputs`, as the driver resolves them (resolveInputs): a
        componentInputParameter is an input of the task's DAG (the run's, at the root)."""
        parameters = {}
        for key, spec in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in spec:
                parameters[key] = spec["runtimeValue"]["constant"]
            elif "componentInputParameter" in spec:
                if spec["componentInputParameter"] not in scope.inputs:
                    raise SpecRunError(f"task {scope.path}{name}: its DAG has no input "
                                       f"{spec['componentInputParameter']}")
                parameters[key] = scope.inputs[spec["componentInputParameter"]]
            elif "taskOutputParameter" in spec:
                source = spec["taskOutputParameter"]
                produced = self._upstream_outputs(name, source["producerTask"], scope)[1]
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
            produced = self._upstream_outputs(name, source["producerTask"], scope)[0]
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

    def _run_container(self, name, task, component, container, scope):
        inputs = self._resolve_inputs(name, task, component, scope)
        pod_tmp = tempfile.mkdtemp(prefix=f"kfp-{name}-")
        try:
            executor_input = {"inputs": inputs,
                              "outputs": self._provision_outputs(name, component, pod_tmp)}
            input_ids = {key: [int(a["name"]) for a in artifact_list["artifacts"]]
                         for key, artifact_list in inputs["artifacts"].items()}
            properties = {"display_name": name, "task_name": name,
                          "parent_dag_id": scope.execution.id,
                          "pod_name": "", "pod_uid": "", "namespace": "",
                          "image": container["image"]}
            cached = None
            if task.get("cachingOptions", {}).get("enableCache"):
                properties["cache_fingerprint"] = self._fingerprint(
                    container, component, executor_input, input_ids)
                cached = self._metadata.cached_execution(
                    self._contexts[0], properties["cache_fingerprint"], self.namespace)
                if cached is not None:
                    properties["cached_execution_id"] = str(cached.id)
            execution = self._metadata.create_execution(
                self._contexts, CONTAINER_EXECUTION, properties,
                inputs=inputs["parameterValues"], input_artifact_ids=input_ids)
            scope.executions[name] = execution.id
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
        pod = {"KFP_POD_NAME": f"{self.pipeline_name}-{uuid.uuid4().hex[:10]}",
               "KFP_POD_UID": str(uuid.uuid4())}  # The downward API's, in every executor pod.
        execution.custom_properties["pod_name"].string_value = pod["KFP_POD_NAME"]
        execution.custom_properties["pod_uid"].string_value = pod["KFP_POD_UID"]
        execution.custom_properties["namespace"].string_value = self.namespace
        self._metadata.update_execution(execution)  # PrePublishExecution.
        outputs = executor_input["outputs"]
        log_path = self._log_path(name, outputs, pod_tmp)
        state, parameters, recorded = mlmd.Execution.FAILED, None, []
        try:
            try:  # The driver's podSpecPatch (the pod is not made without it).
                pod_resources = resources.pod_resources(container.get("resources", {}))
            except resources.ResourceError as e:
                raise SpecRunError(f"task {name}: {e}") from None
            env = self._environment(pod_tmp, name, container, component["executorLabel"])
            command = self._command(container, executor_input, component)
            with open(log_path, "wb") as log:
                result = subprocess.run(command, cwd=pod_tmp, env={**env, **pod},
                                        stdout=log, stderr=subprocess.STDOUT)
            if result.returncode == 0 and LOGS_OUTPUT in outputs["artifacts"] and \
                    _scheme(outputs["artifacts"][LOGS_OUTPUT]["artifacts"][0]["uri"]):
                self._upload_log(log_path, outputs["artifacts"][LOGS_OUTPUT]["artifacts"][0]["uri"])
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
                self._bucket_key(key, artifact["uri"])  # Before the upload.
                recorded.append((key, self._metadata.record_artifact(
                    key, _type_name(artifact["type"]), artifact, self._session_info)))
            state = mlmd.Execution.COMPLETE
        finally:
            self._metadata.publish(execution, self._contexts, state,
                                   parameters if parameters is not None else {},
                                   [(key, artifact.id) for key, artifact in recorded])
        return TaskRun(name, "COMPLETE", execution.id,
                       {key: artifact.uri for key, artifact in recorded}, parameters, 0.0,
                       pod_resources)

    def _bucket_key(self, output, uri):
        """The launcher's upload of an output (uploadOutputArtifacts): a URI of an object store
        scheme (gs://, s3://, minio://; here also a local path: this root is the bucket) must be
        a key of the run's bucket config, whose prefix is the run's root (`<root>/<pipeline>/
        <run ID>`): bucketConfig.KeyFromURI; other URIs are skipped with a warning."""
        if not (_scheme(uri) in _BUCKET_SCHEMES or (not _scheme(uri) and os.path.isabs(uri))):
            return None
        prefixed = _prefixed_bucket(self.run_root)
        if not uri.startswith(prefixed):
            raise SpecRunError(f"failed to upload output artifact {json.dumps(output)}: URI "
                               f"{json.dumps(uri)} does not have expected bucket prefix "
                               f"{json.dumps(prefixed)}")
        key = uri[len(prefixed):].lstrip("/")
        if not key:
            raise SpecRunError(f"failed to upload output artifact {json.dumps(output)}: URI "
                               f"{json.dumps(uri)} has empty key given prefixed bucket "
                               f"{json.dumps(prefixed)}")
        return key

    def _log_path(self, name, outputs, pod_tmp):
        """The launcher writes the task's log to its executor-logs artifact (when published)."""
        uri = outputs["artifacts"].get(LOGS_OUTPUT, {}).get("artifacts", [{}])[0].get("uri")
        if uri and _scheme(uri):  # In the bucket: a local copy first (the pod's), kept here.
            path = os.path.join(os.path.dirname(self.metadata_path), "logs", self.run_id,
                                f"{name}.log")
        elif uri:
            path = uri
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

    def _store_session(self):
        """The run context's store_session_info, as the root driver writes it: for a minio://
        root without a kfp-launcher config, getDefaultMinioSessionInfo (the endpoint from the
        namespace's minio-service variables, or the multi-user default)."""
        if not self.pipeline_root.startswith("minio://"):
            return {"Provider": "file", "Params": {}}
        return {"Provider": "minio", "Params": {
            "region": "minio", "endpoint": self.minio_endpoint or "minio-service.kubeflow:9000",
            "disableSSL": "true", "fromEnv": "false", "secretName": MINIO_SECRET,
            "accessKeyKey": "accesskey", "secretKeyKey": "secretkey"}}

    def _environment(self, pod_tmp, name, container, label):
        """The pod's environment: the image's interpreter first on PATH, its ENV, the metadata
        store's address (metadata-grpc-configmap), the namespace's service variables, the
        container spec's env and the platform spec's secretAsEnv (as the driver's podSpecPatch
        has them), nothing of a checkout.

        Raises:
          SpecRunError: a secret or key the pod needs is not in the namespace (Kubernetes
            never starts it: CreateContainerConfigError).
        """
        env = {key: value for key, value in os.environ.items()
               if key in ("HOME", "LANG", "LC_ALL", "USER")}
        env["PATH"] = os.path.dirname(self.python) + os.pathsep + "/usr/local/bin:/usr/bin:/bin"
        env["TMPDIR"] = pod_tmp
        env["METADATA_GRPC_SERVICE_HOST"] = "127.0.0.1"
        env["METADATA_GRPC_SERVICE_PORT"] = str(self._server.port)
        if self.minio_endpoint:
            env["MINIO_SERVICE_SERVICE_HOST"], _, env["MINIO_SERVICE_SERVICE_PORT"] = \
                self.minio_endpoint.rpartition(":")
        env.update(self.env)
        env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
        for mount in backend.executor_platform(self.platform, label).get("secretAsEnv", []):
            secret = mount.get("secretName", "")
            for pair in mount.get("keyToEnv", []):
                if pair["secretKey"] not in self.secrets.get(secret, {}):
                    raise SpecRunError(
                        f"task {name}: its pod never starts: CreateContainerConfigError: "
                        + (f"couldn't find key {pair['secretKey']} in Secret "
                           f"{self.namespace}/{secret}" if secret in self.secrets
                           else f"secret \"{secret}\" not found"))
                env[pair["envVar"]] = self.secrets[secret][pair["secretKey"]]
        return env

    def _upload_log(self, path, uri):
        """The launcher's upload of the task's log to its executor-logs artifact in the bucket."""
        import boto3

        bucket, _, key = uri[len("minio://"):].partition("/")
        credentials = self.secrets[MINIO_SECRET]
        boto3.client("s3", endpoint_url=f"http://{self.minio_endpoint}", region_name="minio",
                     aws_access_key_id=credentials["accesskey"],
                     aws_secret_access_key=credentials["secretkey"]).upload_file(path, bucket,
                                                                                 key)

    # -- an importer ----------------------------------------------------------------------------

    def _run_importer(self, name, task, component, importer, scope):
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
            {"display_name": name, "task_name": name, "parent_dag_id": scope.execution.id})
        scope.executions[name] = execution.id
        artifact = self._metadata.record_artifact(
            key, _type_name(importer["typeSchema"]),
            {"uri": uri, "metadata": importer.get("metadata", {})}, self._session_info)
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


def _describe(path, run):
    if run.state == "CACHED":
        return f"{path}: CACHED (the outputs of an earlier run with the same cache key)"
    pod = "; ".join(f"{which} " + ", ".join(f"{kind} {value}" for kind, value in
                                            sorted(run.resources[which].items()))
                    for which in ("requests", "limits") if run.resources.get(which))
    return f"{path}: COMPLETE ({run.seconds:.1f}s{'; ' + pod if pod else ''})"


_BUCKET_SCHEMES = ("gs", "s3", "minio")  # LocalPathForURI's (and oci://, never uploaded).


def _scheme(uri):
    return uri.split("://", 1)[0] if "://" in uri else ""


def _prefixed_bucket(root):
    """Config.PrefixedBucket of ParseBucketConfig(root): scheme + path.Join(bucket, prefix)."""
    scheme, sep, rest = root.partition("://")
    if not sep:
        return posixpath.normpath(root)
    return f"{scheme}://{posixpath.normpath(rest.split('?', 1)[0])}"

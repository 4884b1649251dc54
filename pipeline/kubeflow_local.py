"""Runs a compiled Kubeflow Pipelines (v2) spec here, as Kubeflow would, without a cluster.

    tfx-embeddings run-spec pipeline_spec.json --python IMAGE_PYTHON --pipeline-root DIR \\
        --param examples=... --param vectors=...

The tasks run in dependency order, each the way Kubeflow's launcher runs it:

- a container task: its command and arguments (TFX's KFP v2 entrypoint, as compiled) run as a
  process of `--python`, the interpreter that stands in for the image, in a working directory
  of its own outside any checkout, with `{{$}}` replaced by the executor input the launcher
  gives: input artifacts (URI, type, and the custom properties their producer wrote), output
  artifacts with URIs under the pipeline root, the task's parameters (constants of the spec, or
  the run's inputs), and the output metadata file; a `lifecycle.preCacheCheck` container
  (ExampleGen's driver) runs first. Afterwards the output metadata file's artifacts are recorded.
- a resolver task: its artifact queries (`schema_title=... AND state=LIVE AND ...`) run over the
  artifacts that earlier tasks and earlier runs on this pipeline root produced (what Kubeflow's
  ML Metadata holds), the latest match each.
- an importer task: registers its artifact URI as an artifact.

The artifacts are recorded in `<pipeline root>/kubeflow_local_metadata.json`. Not emulated:
caching (every task runs), retries, parallel tasks, resources, and the image's own filesystem.
"""

import json
import logging
import os
import re
import subprocess
import tempfile
import time

import yaml

METADATA_FILE = "kubeflow_local_metadata.json"
_TYPES = {"STRING": "stringValue", "INT": "intValue", "DOUBLE": "doubleValue"}


class SpecRunError(RuntimeError):
    """A task of the spec failed, or the spec asks for something this runner cannot do."""


class ArtifactStore:
    """The artifacts runs on one pipeline root produced, as Kubeflow's metadata store keeps them."""

    def __init__(self, pipeline_root):
        self.path = os.path.join(pipeline_root, METADATA_FILE)
        self.artifacts = []
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.artifacts = json.load(f)

    def add(self, artifact):
        self.artifacts.append(artifact)
        self.save()

    def save(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.artifacts, f, indent=1)
        os.replace(self.path + ".tmp", self.path)

    def query(self, expression, inputs):
        """The latest artifact matching a resolver's filter, or None.

        Supported terms, joined by AND: schema_title="T", state=LIVE, name="N" (N may be a
        `{{$.inputs.artifacts['K'].metadata['P']}}` placeholder, read from the resolver's input
        artifacts), metadata.P.number_value=V.
        """
        terms = [term.strip() for term in expression.split(" AND ")]
        matches = []
        for artifact in self.artifacts:
            if all(_matches(term, artifact, inputs) for term in terms):
                matches.append(artifact)
        return matches[-1] if matches else None


def _matches(term, artifact, inputs):
    key, _, value = term.partition("=")
    value = value.strip('"')
    placeholder = re.fullmatch(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}",
                               value)
    if placeholder:
        source = inputs.get(placeholder.group(1)) or [{}]
        value = str(source[0].get("metadata", {}).get(placeholder.group(2)))
    if key == "schema_title":
        return artifact["schema_title"] == value
    if key == "state":
        return value == "LIVE"  # Every recorded artifact is live.
    if key == "name":
        return artifact["name"] == value
    field = re.fullmatch(r"metadata\.(\w+)\.number_value", key)
    if field:
        return artifact["metadata"].get(field.group(1)) == float(value)
    raise SpecRunError(f"resolver query term {term!r} is not supported")


def _schema_title(artifact_type):
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    return yaml.safe_load(artifact_type["instanceSchema"])["title"]


def _order(tasks):
    """Task names in an order where each comes after the tasks it depends on."""
    needs = {name: set(task.get("dependentTasks", [])) | {
        spec["taskOutputArtifact"]["producerTask"]
        for spec in task.get("inputs", {}).get("artifacts", {}).values()
        if "taskOutputArtifact" in spec} for name, task in tasks.items()}
    order = []
    while needs:
        ready = sorted(name for name, deps in needs.items() if deps <= set(order))
        if not ready:
            raise SpecRunError(f"the tasks {sorted(needs)} depend on each other in a cycle")
        order += ready
        for name in ready:
            del needs[name]
    return order


class SpecRun:
    """One run of a compiled spec (the JSON KubeflowV2DagRunner writes).

    Args:
      spec_path: the compiled spec.
      pipeline_root: where the run's artifacts go (Kubeflow's run-time pipeline root).
      python: the interpreter that plays the image: every container command runs with it.
      parameters: {name: value as a string}, the run's inputs (others take their defaults).
      env: environment variables of the image (the Dockerfile's ENV).
    """

    def __init__(self, spec_path, pipeline_root, python, parameters=None, env=None):
        with open(spec_path) as f:
            compiled = json.load(f)
        self.spec = compiled["pipelineSpec"]
        self.pipeline_root = os.path.abspath(pipeline_root)
        self.python, self.env = python, dict(env or {})
        self.run_id = time.strftime("run-%Y%m%d-%H%M%S")
        self.store = ArtifactStore(self.pipeline_root)
        self.parameters = self._run_parameters(compiled.get("runtimeConfig", {}),
                                               parameters or {})
        self.outputs = {}  # task -> {output key: [artifact]}

    def _run_parameters(self, runtime_config, given):
        declared = self.spec["root"].get("inputDefinitions", {}).get("parameters", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise SpecRunError(f"the spec has no pipeline input {sorted(unknown)}; it has "
                               f"{sorted(declared)}")
        values = dict(runtime_config.get("parameters", {}))
        for name, text in given.items():
            kind = _TYPES[declared[name]["type"]]
            values[name] = {kind: float(text) if kind == "doubleValue" else text}
        missing = set(declared) - set(values)
        if missing:
            raise SpecRunError(f"pipeline inputs without a value: {sorted(missing)}")
        return values

    def run(self):
        """Runs every task; returns {task: {output key: [artifact record]}}."""
        tasks = self.spec["root"]["dag"]["tasks"]
        for name in _order(tasks):
            started = time.monotonic()
            logging.info("Kubeflow (local): task %s started", name)
            self._run_task(name, tasks[name])
            logging.info("Kubeflow (local): task %s finished in %.1fs", name,
                         time.monotonic() - started)
        return self.outputs

    def _run_task(self, name, task):
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        inputs = {key: self._input_artifacts(spec)
                  for key, spec in task.get("inputs", {}).get("artifacts", {}).items()}
        if "resolver" in executor:
            self.outputs[name] = {
                key: [artifact] if artifact else []
                for key, query in executor["resolver"]["outputArtifactQueries"].items()
                for artifact in [self.store.query(query["filter"], inputs)]}
        elif "importer" in executor:
            self.outputs[name] = {"result": [self._record(
                name, "result", executor["importer"]["typeSchema"],
                self._parameter(executor["importer"]["artifactUri"]).popitem()[1])]}
        elif "container" in executor:
            self.outputs[name] = self._run_container(name, task, component, executor["container"],
                                                     inputs)
        else:
            raise SpecRunError(f"task {name}: executor {sorted(executor)} is not supported")

    def _input_artifacts(self, spec):
        if "taskOutputArtifact" not in spec:
            raise SpecRunError(f"input artifact {spec} is not supported")
        source = spec["taskOutputArtifact"]
        return self.outputs[source["producerTask"]][source["outputArtifactKey"]]

    def _parameter(self, spec):
        if "componentInputParameter" in spec:
            return dict(self.parameters[spec["componentInputParameter"]])
        if "runtimeValue" in spec:
            return dict(spec["runtimeValue"]["constantValue"])
        raise SpecRunError(f"parameter {spec} is not supported")

    def _record(self, task, key, artifact_type, uri):
        return {"name": f"{self.run_id}/{task}/{key}", "schema_title": _schema_title(artifact_type),
                "type": artifact_type, "uri": uri, "metadata": {}}

    def _run_container(self, name, task, component, container, inputs):
        task_dir = os.path.join(self.pipeline_root, self.spec["pipelineInfo"]["name"],
                                self.run_id, name)
        outputs = {key: [self._record(name, key, definition["artifactType"],
                                      os.path.join(task_dir, key))]
                   for key, definition in component.get("outputDefinitions", {})
                   .get("artifacts", {}).items()}
        output_file = os.path.join(task_dir, "executor_output.json")
        executor_input = {
            "inputs": {
                "parameters": {key: self._parameter(spec) for key, spec in
                               task.get("inputs", {}).get("parameters", {}).items()},
                "artifacts": {key: {"artifacts": [_runtime_artifact(a) for a in artifacts]}
                              for key, artifacts in inputs.items()}},
            "outputs": {
                "artifacts": {key: {"artifacts": [_runtime_artifact(a) for a in artifacts]}
                              for key, artifacts in outputs.items()},
                "outputFile": output_file}}
        os.makedirs(task_dir, exist_ok=True)
        log_path = os.path.join(task_dir, "log.txt")
        steps = [container.get("lifecycle", {}).get("preCacheCheck"), container]
        with tempfile.TemporaryDirectory(prefix=f"kfp-{name}-") as workdir:
            for step in filter(None, steps):
                command = [self.python if part == "python" else part
                           for part in step["command"]] + [
                    json.dumps(executor_input) if arg == "{{$}}" else arg
                    for arg in step["args"]]
                if any("{{" in part for part in command[len(step["command"]):]
                       if part != json.dumps(executor_input)):
                    raise SpecRunError(f"task {name}: a placeholder other than {{{{$}}}} in "
                                       f"{step['args']}")
                with open(log_path, "a") as log:
                    result = subprocess.run(command, cwd=workdir, env=self._environment(),
                                            stdout=log, stderr=subprocess.STDOUT)
                if result.returncode != 0:
                    with open(log_path) as log:
                        tail = log.read()[-3000:]
                    raise SpecRunError(f"task {name} failed (exit {result.returncode}); its "
                                       f"log: {log_path}\n{tail}")
        with open(output_file) as f:
            written = json.load(f).get("artifacts", {})
        for key, artifacts in outputs.items():
            for artifact, reported in zip(artifacts, written.get(key, {}).get("artifacts", [])):
                artifact["metadata"] = reported.get("metadata", {})
                artifact["uri"] = reported.get("uri", artifact["uri"])
            for artifact in artifacts:
                self.store.add(artifact)
        return outputs

    def _environment(self):
        """The image's environment: its interpreter's bin first on PATH, nothing of a checkout."""
        env = {key: value for key, value in os.environ.items()
               if key in ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER")}
        env["PATH"] = os.path.dirname(self.python) + os.pathsep + "/usr/local/bin:/usr/bin:/bin"
        env.update(self.env)
        return env


def _runtime_artifact(record):
    return {"name": record["name"], "type": record["type"], "uri": record["uri"],
            "metadata": record["metadata"]}

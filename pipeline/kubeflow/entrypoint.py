"""The container command of compiled Kubeflow specs: TFX's (kubeflow_v2_run_executor), taught
one more artifact type, and what the open-source backend's executor input holds that TFX's
entrypoint does not expect.

- TFX's entrypoint imports an output artifact's class from its Kubeflow schema title. Kubeflow
  shows an artifact titled `system.HTML` as the step's visualization, and no class lives at that
  path: this maps the title to `HtmlReport` (EmbeddingGen's coverage report).
- The open-source Kubeflow Pipelines driver hands a task its upstream artifacts with an empty
  instance schema (kubeflow/pipelines backend/src/v2/metadata/client.go,
  GetOutputArtifactsByExecutionId: `Schema: ""`), where TFX's entrypoint reads the artifact's
  class from the schema's title (yaml.safe_load("") is None, and it fails). The task's own
  inputs spec (`--json_serialized_inputs_spec_args`, in every spec of schema 2.1.0) declares each
  input's type: an input artifact without one takes its declared type here. (The fix that
  sky-uk/kfp-operator's tfx-patch makes inside TFX, made from outside.)
- The open-source driver adds an output artifact of its own to every task, `executor-logs`
  (type `system.Artifact`, which no TFX class has), where the launcher writes the task's log
  (on by default from backend 2.5: the API server's PUBLISH_LOGS). It is the launcher's, not the
  component's: TFX's executor does not see it (and the launcher records it all the same).

- A run under a stock install's `minio://` pipeline root: TensorFlow has no `minio://`;
  `artifact_store` makes every such URI `s3://` (MinIO's protocol, the launcher's endpoint and
  credentials) for TFX, and `minio://` again in the executor output, the URIs the launcher
  takes.

Then TFX's entrypoint runs as it is.
"""

import json
import os
import runpy
import sys

from tfx.orchestration.kubeflow.v2 import compiler_utils

from ...components import object_storage
from ...components.types import HtmlReport
from . import artifact_store

COMMAND = ["python", "-m", __name__]
INVOCATION_FLAG = "--json_serialized_invocation_args"
INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"
LAUNCHER_LOGS_OUTPUT = "executor-logs"


class EntrypointError(ValueError):
    """The executor input cannot be made one TFX's entrypoint reads."""


def _flag_index(argv, flag):
    """(index of the flag's value, whether it is `--flag=value`), or (None, False)."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return i + 1, False
        if arg.startswith(flag + "="):
            return i, True
    return None, False


def _get(argv, flag):
    index, joined = _flag_index(argv, flag)
    if index is None:
        return None
    return argv[index].split("=", 1)[1] if joined else argv[index]


def _set(argv, flag, value):
    index, joined = _flag_index(argv, flag)
    argv[index] = f"{flag}={value}" if joined else value


def _untyped(artifact_type):
    """True for a type without a title: no schemaTitle, and an instance schema that is empty or
    names no title."""
    if artifact_type.get("schemaTitle"):
        return False
    schema = artifact_type.get("instanceSchema")
    return not schema or "title:" not in schema


def for_tfx(argv):
    """argv with every untyped input artifact of the executor input given its declared type,
    and without the launcher's `executor-logs` output.

    Args:
      argv: the entrypoint's arguments (TFX's flags: the executor input, the inputs spec, the
        executor class, Beam's arguments).

    Returns:
      A new argv, or argv itself when nothing changes (Vertex's specs: typed inputs, no logs
      output).

    Raises:
      EntrypointError: an untyped input artifact the inputs spec does not declare.
    """
    invocation = _get(argv, INVOCATION_FLAG)
    if invocation is None:
        return argv
    executor_input = json.loads(invocation)
    outputs = executor_input.get("outputs", {}).get("artifacts", {})
    changed = outputs.pop(LAUNCHER_LOGS_OUTPUT, None) is not None
    declared = json.loads(_get(argv, INPUTS_SPEC_FLAG) or "{}").get("artifacts", {})
    for key, artifact_list in executor_input.get("inputs", {}).get("artifacts", {}).items():
        for artifact in artifact_list.get("artifacts", []):
            if not _untyped(artifact.get("type", {})):
                continue
            if key not in declared:
                raise EntrypointError(f"input artifact {key!r} has no type, and the task's "
                                      f"inputs spec declares none (it has {sorted(declared)})")
            artifact["type"] = dict(declared[key]["artifactType"])
            changed = True
    if not changed:
        return argv
    argv = list(argv)
    _set(argv, INVOCATION_FLAG, json.dumps(executor_input))
    return argv


def for_object_store(argv):
    """(argv with the executor input's minio:// URIs as s3://, the executor output's path, the
    buckets mapped); argv itself and no buckets where it has none."""
    invocation = _get(argv, INVOCATION_FLAG)
    if invocation is None:
        return argv, None, set()
    executor_input, buckets = artifact_store.for_tensorflow(json.loads(invocation))
    if not buckets:
        return argv, None, set()
    argv = list(argv)
    _set(argv, INVOCATION_FLAG, json.dumps(executor_input))
    return argv, executor_input.get("outputs", {}).get("outputFile"), buckets


def _back_to_minio(output_file, buckets):
    if not output_file or not os.path.exists(output_file):
        return
    with open(output_file) as f:
        executor_output = json.load(f)
    with open(output_file, "w") as f:
        json.dump(artifact_store.back_to_minio(executor_output, buckets), f)


@object_storage.exits_cleanly  # tensorflow-io's s3:// would abort the process at exit.
def main(argv):
    argv, output_file, buckets = for_object_store(for_tfx(argv))
    sys.argv = argv
    try:
        runpy.run_module("tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
                         run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if not e.code:
            _back_to_minio(output_file, buckets)
        raise
    _back_to_minio(output_file, buckets)


compiler_utils.TITLE_TO_CLASS_PATH[HtmlReport.TYPE_NAME] = (
    f"{HtmlReport.__module__}.{HtmlReport.__qualname__}")

if __name__ == "__main__":
    main(sys.argv)

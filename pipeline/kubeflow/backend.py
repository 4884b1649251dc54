"""What the open-source Kubeflow Pipelines 2.x backend accepts, checked here with its own rules
and messages: `compile` checks what it writes, `run-spec` what it runs.

Read from kubeflow/pipelines (backend/src, tags 2.0.0 to 2.17.0):

- upload (`apiserver/template/template.go`, `v2_template.go`): the file is YAML documents, one
  of them a bare `PipelineSpec` (`pipelineInfo.name` and `root` set); anything else, a Vertex
  `PipelineJob` included, is "unknown template format". Its `schemaVersion` must be 2.1.0. The
  pipeline's name must match `^[a-z0-9][a-z0-9-]{0,127}$` (`apiserver/common/utils.go`).
- a run (`validatePipelineJobInputs`): every root input without a default that is not optional
  must be given, a given one must have the declared type, and no other may be given; root
  defaults fill the rest (`compiler/argocompiler/argo.go`).
- the compiler (`compiler/visitor.go`): every executor is a container or an importer;
  anything else (TFX's resolvers among them) is "non-container and non-importer executor not
  implemented".
- not refused by the backend, but never run by it: a container's `lifecycle` hooks
  (`preCacheCheck`: TFX's ExampleGen driver, which on Vertex fingerprints the input files).
  Refused here, since a spec that counts on one behaves differently on a cluster.
"""

import json
import re

import yaml

SCHEMA_VERSION = "2.1.0"
_PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
_TYPE_CHECKS = {  # parameterType -> (accepts a JSON value, the API server's words)
    "NUMBER_DOUBLE": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                      "double or integer, but the parameter value is not of number value type"),
    "NUMBER_INTEGER": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                       "double or integer, but the parameter value is not of number value type"),
    "STRING": (lambda v: isinstance(v, str),
               "string, but the input parameter is not of string value type"),
    "BOOLEAN": (lambda v: isinstance(v, bool),
                "bool, but the input parameter is not of bool value type"),
    "LIST": (lambda v: isinstance(v, list),
             "list, but the input parameter is not of list value type"),
    "STRUCT": (lambda v: isinstance(v, dict),
               "struct, but the input parameter is not of struct value type"),
}


class SpecError(ValueError):
    """The open-source Kubeflow Pipelines backend would refuse the spec or the run."""


def load_spec(path):
    """The PipelineSpec of a pipeline file, as the API server reads an upload (load_specs)."""
    return load_specs(path)[0]


def load_specs(path):
    """The PipelineSpec and the platform spec of a pipeline file, as the API server reads an
    upload: YAML documents, one a PipelineSpec, at most one a platform spec (`platforms`).

    Args:
      path: a YAML (or JSON) file.

    Returns:
      (the PipelineSpec, the platform spec or {}) as dicts.

    Raises:
      SpecError: the API server's refusal ("unknown template format" for a Vertex PipelineJob,
        the schema version, the pipeline's name).
    """
    with open(path) as f:
        text = f.read()
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: unknown template format (not YAML: {e})") from None
    specs = [doc for doc in documents if isinstance(doc, dict)
             and (doc.get("pipelineInfo") or {}).get("name") and doc.get("root")]
    if not specs:
        hint = (" (a Vertex AI PipelineJob: its pipelineSpec is schema 2.0.0 and has resolver "
                "executors; compile --target kubeflow writes the open-source spec)"
                if any(isinstance(doc, dict) and "pipelineSpec" in doc for doc in documents)
                else "")
        raise SpecError(f"{path}: unknown template format{hint}")
    if len(specs) > 1:
        raise SpecError(f"{path}: multiple pipeline specs provided")
    platforms = [doc for doc in documents if isinstance(doc, dict) and "platforms" in doc]
    if len(platforms) > 1:
        raise SpecError(f"{path}: multiple platform specs provided")
    check_upload(specs[0])
    return specs[0], (platforms[0] if platforms else {})


def executor_platform(platform, label):
    """The kfp-kubernetes settings of an executor (secretAsEnv...), as the compiler hands them
    to the driver: the platform spec's kubernetes deploymentSpec entry of the executor label."""
    return (platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
            .get("executors", {}).get(label, {}))


def check_upload(spec):
    """Raises SpecError where the API server refuses an upload: schema version, name."""
    if spec.get("schemaVersion") != SCHEMA_VERSION:
        raise SpecError(f"KFP only supports schema version {SCHEMA_VERSION}, but the pipeline "
                        f"spec has version {spec.get('schemaVersion', '')}")
    name = spec["pipelineInfo"]["name"]
    if not _PIPELINE_NAME.fullmatch(name):
        raise SpecError(f"pipeline name {name!r}: pipeline's name must contain only lowercase "
                        f"alphanumeric characters or '-' and must start with alphanumeric "
                        f"characters")


def check_executors(spec):
    """Raises SpecError for what the open-source compiler refuses (an executor that is neither a
    container nor an importer) and for lifecycle hooks, which it never runs."""
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for name, component in sorted(spec.get("components", {}).items()):
        label = component.get("executorLabel")
        if not label:
            continue
        if label not in executors:
            raise SpecError(f'error processing component name="{name}": executor(label='
                            f'"{label}") not found in deployment config')
        executor = executors[label]
        if "container" not in executor and "importer" not in executor:
            raise SpecError(f'error processing component name="{name}": executor(label='
                            f'"{label}"): non-container and non-importer executor not '
                            f'implemented (its kind: {", ".join(sorted(executor))})')
        hooks = executor.get("container", {}).get("lifecycle")
        if hooks:
            raise SpecError(f"executor {label}: lifecycle hooks ({', '.join(sorted(hooks))}) are "
                            f"never run by the open-source Kubeflow Pipelines backend; a run "
                            f"there would silently skip them")


def run_parameters(spec, given):
    """The root inputs of a run, as the API server validates them and the compiler fills them.

    Args:
      spec: the PipelineSpec.
      given: {name: JSON value} the run sets.

    Returns:
      {name: JSON value}: the given values, and the defaults of the others.

    Raises:
      SpecError: a required input missing, a value of the wrong type, an input the pipeline
        does not have (the API server's messages).
    """
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    extra = sorted(set(given) - set(declared))
    if extra:
        raise SpecError(f"parameter(s) provided are not required by pipeline: {', '.join(extra)}")
    values = {}
    for name, definition in sorted(declared.items()):
        if name in given:
            accepts, words = _TYPE_CHECKS.get(definition.get("parameterType"),
                                              (lambda v: False, "unknown"))
            if not accepts(given[name]):
                raise SpecError(f"input parameter {name} requires type {words}")
            values[name] = given[name]
        elif "defaultValue" in definition:
            values[name] = definition["defaultValue"]
        elif not definition.get("isOptional"):
            raise SpecError(f"parameter {name} is not optional, yet has neither default value "
                            f"nor user provided value")
    return values


def parse_parameter(spec, name, text):
    """A run input given as text on a command line, as the JSON value of its declared type."""
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    kind = declared.get(name, {}).get("parameterType", "STRING")
    try:
        if kind == "STRING":
            return text
        if kind in ("NUMBER_DOUBLE", "NUMBER_INTEGER"):
            return float(text)
        if kind == "BOOLEAN":
            return {"true": True, "false": False}[text.lower()]
        return json.loads(text)
    except (ValueError, KeyError):
        raise SpecError(f"input parameter {name}: {text!r} is not a {kind} value") from None

"""TFX's compiled pipeline spec (schema 2.1.0), made into one the open-source Kubeflow Pipelines
backend runs as intended.

TFX's `KubeflowV2DagRunner(use_pipeline_spec_2_1=True)` writes a bare PipelineSpec of schema
2.1.0 that the open-source API server takes. Three things in it assume Vertex AI Pipelines:

- the run's defaults: the spec's root inputs lose the config's values (TFX keeps them in the
  PipelineJob's runtimeConfig, which the bare spec does not have): they become the inputs'
  `defaultValue`, so a run need not set every input;
- ExampleGen's `lifecycle.preCacheCheck` (TFX's driver, which fingerprints the input files so
  the cache knows when they changed) is never run by the open-source backend: it is replaced by
  a task of its own (`data_fingerprint`) whose output is an input parameter of ExampleGen, so
  ExampleGen's cache key changes when the files do and only then;
- tasks whose answer changes between runs with the same inputs (the fingerprint itself,
  LatestBlessedModel) have Kubeflow's cache turned off.

Resolvers are not here to remove: `rewrite` has put the LatestBlessedModel step in their place
before TFX compiled the pipeline.
"""

import copy
import json

import yaml

from . import backend

EXAMPLE_GEN_DRIVER = "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"
FINGERPRINT_COMMAND = ["python", "-m", "tfx_embeddings.pipeline.kubeflow.data_fingerprint"]
FINGERPRINT_PARAMETER = "input_fingerprint"  # TFX's name for it (example_gen.utils).
_INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"


def open_source_spec(compiled, defaults, uncached_tasks=()):
    """The open-source spec of TFX's compiled 2.1 spec.

    Args:
      compiled: the PipelineSpec TFX wrote, as a dict (not changed).
      defaults: {root input: its default value} (the config's values).
      uncached_tasks: tasks whose Kubeflow cache is turned off.

    Returns:
      The new PipelineSpec, checked with the open-source backend's rules.

    Raises:
      backend.SpecError: a lifecycle hook other than TFX's ExampleGen driver, or anything
        the backend would refuse.
    """
    spec = copy.deepcopy(compiled)
    _set_root_defaults(spec, defaults)
    for task in _tasks_with_example_gen_driver(spec):
        _fingerprint_input_files(spec, task)
    tasks = spec["root"]["dag"]["tasks"]
    for task in uncached_tasks:
        tasks[task]["cachingOptions"] = {}  # enableCache false, as the kfp SDK writes it.
    backend.check_upload(spec)
    backend.check_executors(spec)
    return spec


def write_spec(spec, path, platform=None):
    """Writes spec as YAML, with a header like the kfp SDK's, then the platform spec (a second
    YAML document, as the kfp SDK writes kfp-kubernetes' settings) where there is one (a .json
    path gets the spec alone as JSON)."""
    with open(path, "w") as f:
        if path.endswith(".json"):
            if platform:
                raise backend.SpecError(f"{path}: a platform spec needs a .yaml file")
            json.dump(spec, f, indent=2, sort_keys=True)
            return
        f.write(f"# PIPELINE DEFINITION\n# Name: {spec['pipelineInfo']['name']}\n"
                f"# Open-source Kubeflow Pipelines 2.x (schema {spec['schemaVersion']}), "
                f"compiled by tfx-embeddings from {spec.get('sdkVersion', 'TFX')}.\n# Inputs:\n")
        for name, definition in sorted(spec["root"].get("inputDefinitions", {})
                                       .get("parameters", {}).items()):
            f.write(f"#    {name}: {definition['parameterType']} "
                    f"[Default: {json.dumps(definition.get('defaultValue'))}]\n")
        yaml.safe_dump(spec, f, sort_keys=True, width=100)
        if platform:
            f.write("---\n")
            yaml.safe_dump(platform, f, sort_keys=True, width=100)


def _set_root_defaults(spec, defaults):
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = set(defaults) - set(parameters)
    if unknown:
        raise backend.SpecError(f"defaults for inputs the pipeline lacks: {sorted(unknown)}")
    for name, value in defaults.items():
        parameters[name]["defaultValue"] = value


def _executor(spec, task):
    component = spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]
    return component, spec["deploymentSpec"]["executors"][component["executorLabel"]]


def _tasks_with_example_gen_driver(spec):
    """Tasks whose container has TFX's ExampleGen driver as its lifecycle hook (refuses any
    other hook: it has no open-source equivalent here)."""
    found = []
    for task in sorted(spec["root"]["dag"]["tasks"]):
        component = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
        if "executorLabel" not in spec["components"][component]:
            continue
        hooks = _executor(spec, task)[1].get("container", {}).get("lifecycle")
        if not hooks:
            continue
        command = hooks.get("preCacheCheck", {}).get("command", [])
        if set(hooks) != {"preCacheCheck"} or EXAMPLE_GEN_DRIVER not in command:
            raise backend.SpecError(
                f"task {task}: lifecycle hooks {sorted(hooks)} ({command}) are never run by the "
                f"open-source backend, and none of them is TFX's ExampleGen driver")
        found.append(task)
    return found


def _fingerprint_input_files(spec, task):
    """Adds `<task>-input-fingerprint` before the ExampleGen task and makes its output an input
    parameter of the task, in place of the driver hook."""
    tasks = spec["root"]["dag"]["tasks"]
    component, executor = _executor(spec, task)
    container = executor["container"]
    del container["lifecycle"]
    name = f"{task}-input-fingerprint"
    inputs = {key: tasks[task]["inputs"]["parameters"][key]
              for key in ("input_base", "input_config")}
    spec["components"][name] = {
        "executorLabel": f"{name}_executor",
        "inputDefinitions": {"parameters": {key: {"parameterType": "STRING"} for key in inputs}},
        "outputDefinitions": {"parameters": {FINGERPRINT_PARAMETER: {"parameterType": "STRING"}}}}
    output_file = "{{$.outputs.parameters['%s'].output_file}}" % FINGERPRINT_PARAMETER
    spec["deploymentSpec"]["executors"][f"{name}_executor"] = {"container": {
        "image": container["image"],
        "command": FINGERPRINT_COMMAND,
        "args": ["--input-base", "{{$.inputs.parameters['input_base']}}",
                 "--input-config", "{{$.inputs.parameters['input_config']}}",
                 "--output", output_file]}}
    tasks[name] = {"cachingOptions": {}, "componentRef": {"name": name},
                   "inputs": {"parameters": copy.deepcopy(inputs)}, "taskInfo": {"name": name}}
    tasks[task]["inputs"]["parameters"][FINGERPRINT_PARAMETER] = {"taskOutputParameter": {
        "producerTask": name, "outputParameterKey": FINGERPRINT_PARAMETER}}
    tasks[task]["dependentTasks"] = sorted(set(tasks[task].get("dependentTasks", [])) | {name})
    component.setdefault("inputDefinitions", {}).setdefault("parameters", {})[
        FINGERPRINT_PARAMETER] = {"parameterType": "STRING"}
    # TFX's entrypoint types exec properties by this copy of the inputs: declare it there too.
    args = container["args"]
    index = args.index(_INPUTS_SPEC_FLAG) + 1
    inputs_spec = json.loads(args[index])
    inputs_spec.setdefault("parameters", {})[FINGERPRINT_PARAMETER] = {"parameterType": "STRING"}
    args[index] = json.dumps(inputs_spec, indent=2, sort_keys=True)

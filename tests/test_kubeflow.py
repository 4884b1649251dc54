"""The Kubeflow path. Open-source Kubeflow Pipelines 2.x: compile_for_kubeflow takes any TFX
pipeline (its Resolver becomes the LatestBlessedModel step, what the backend never runs is
refused naming the node); the compiled spec is one the backend takes (the kfp SDK loads it,
schema 2.1.0, container executors only, nothing of the compiling machine); `run-spec` applies
its rules (the API server's, the compiler's, the launcher's bucket prefix, the driver's records,
cache key and pod resources). Whole runs: tests/test_adoption.py (a user's Keras 3 project).
Vertex AI: TFX's PipelineJob, resolvers and all.

Compiled by the image stand-in (build/image: only the wheel installed), outside the checkout."""

import copy
import glob
import json
import logging
import os
import re
import subprocess
import sys

import pytest
import yaml
from ml_metadata.proto import metadata_store_pb2 as mlmd
from tfx.components.example_gen import driver as example_gen_driver
from tfx.dsl.components.base import base_executor

from tests.conftest import ROOT
from tfx_embeddings.components.latest_blessed_model import executor as latest_executor
from tfx_embeddings.pipeline.demo import runners, sample_data
from tfx_embeddings.pipeline.demo.config import ConfigError, load_config
from tfx_embeddings.pipeline.kubeflow import (
    backend,
    compiler,
    data_fingerprint,
    entrypoint,
    metadata,
)
from tfx_embeddings.pipeline.kubeflow.run_spec import SpecRun

CONFIG = os.path.join(ROOT, "configs", "kubeflow-local.yaml")
FINGERPRINT_TASK = "CsvExampleGen-input-fingerprint"


def _cli(python, *args, cwd, check=True):
    result = subprocess.run([python, "-m", "tfx_embeddings.pipeline", *args], cwd=cwd,
                            capture_output=True, text=True,
                            env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    if check:
        assert result.returncode == 0, result.stderr[-5000:]
    return result


@pytest.fixture(scope="module")
def spec(image, tmp_path_factory):
    """The open-source spec, compiled by the image's own python outside the checkout."""
    work = tmp_path_factory.mktemp("compile")
    out = _cli(image, "compile", "--config", CONFIG, "--image", "registry/embeddings:1",
               "--output", str(work / "pipeline.yaml"), cwd=work).stdout
    assert "open-source Kubeflow Pipelines spec (PipelineSpec, schema 2.1.0)" in out
    return work / "pipeline.yaml"


@pytest.fixture(scope="module")
def vertex_spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("vertex") / "pipeline_job.json"
    return runners.compile_kubeflow(load_config(CONFIG), "registry/embeddings:1", str(path),
                                    target=compiler.VERTEX)


@pytest.fixture(scope="module")
def kfp_sdk():
    """The python of build/kfp-sdk: kfp 2.5.0 (make kfp-sdk)."""
    python = os.path.join(ROOT, "build", "kfp-sdk", "bin", "python")
    if not os.path.exists(python):  # make test builds it first.
        subprocess.run(["make", "-s", "kfp-sdk"], cwd=ROOT, check=True, capture_output=True)
    return python


def _load(path):
    """The PipelineSpec document of a compiled file (a platform spec document follows it)."""
    with open(path) as f:
        return next(yaml.safe_load_all(f))


# -- the compiled spec -----------------------------------------------------------------------

def test_the_kfp_sdk_loads_the_spec(spec, kfp_sdk):
    script = ("import json, sys, kfp; from kfp import components\n"
              "c = components.load_component_from_file(sys.argv[1])\n"
              "print(json.dumps({'kfp': kfp.__version__, 'name': c.name, 'inputs': {\n"
              "    n: i.default for n, i in c.component_spec.inputs.items()}}))")
    result = subprocess.run([kfp_sdk, "-c", script, str(spec)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout)
    assert loaded["kfp"] == "2.5.0" and loaded["name"] == "pretrained-embeddings-kfp"
    assert loaded["inputs"]["vectors"] == "gs://my-bucket/vectors/glove.6B.50d.txt"  # A default.
    # Every step gets the stock install's MinIO credentials (a minio:// root works): the
    # platform spec, a second YAML document, as kfp-kubernetes writes it.
    compiled, platform = backend.load_specs(str(spec))
    for label, executor in compiled["deploymentSpec"]["executors"].items():
        assert backend.executor_platform(platform, label)["secretAsEnv"] == [{
            "secretName": "mlpipeline-minio-artifact", "keyToEnv": [
                {"secretKey": "accesskey", "envVar": "KFP_MINIO_ACCESS_KEY"},
                {"secretKey": "secretkey", "envVar": "KFP_MINIO_SECRET_KEY"}]}], label
        assert {"name": "KFP_MINIO_SECRET", "value": "mlpipeline-minio-artifact"} in \
            executor["container"]["env"]


def test_the_spec_is_one_the_open_source_backend_runs(spec):
    compiled = backend.load_spec(str(spec))  # As the API server reads an upload.
    backend.check_executors(compiled)
    assert compiled["schemaVersion"] == "2.1.0" and "pipelineSpec" not in compiled
    executors = compiled["deploymentSpec"]["executors"]
    assert all(set(e) == {"container"} for e in executors.values())
    assert not any("lifecycle" in e["container"] for e in executors.values())
    tasks = compiled["root"]["dag"]["tasks"]
    assert set(tasks) == {"CsvExampleGen", FINGERPRINT_TASK, "StatisticsGen", "ImportSchemaGen",
                          "VocabularyGen", "Transform", "EmbeddingGen",
                          "LatestBlessedModelResolver", "EmbeddingTrainer", "Evaluator", "Pusher"}
    # ExampleGen's cache key has the fingerprint of its input files; the steps whose answer
    # changes between runs with the same inputs are never cached; the others are.
    assert tasks["CsvExampleGen"]["inputs"]["parameters"]["input_fingerprint"] == {
        "taskOutputParameter": {"producerTask": FINGERPRINT_TASK,
                                "outputParameterKey": "input_fingerprint"}}
    assert tasks[FINGERPRINT_TASK]["inputs"]["parameters"]["input_base"] == {
        "componentInputParameter": "examples"}
    uncached = {name for name, task in tasks.items()
                if not task.get("cachingOptions", {}).get("enableCache")}
    assert uncached == {FINGERPRINT_TASK, "LatestBlessedModelResolver"}
    # The latest blessed model feeds the trainer's warm start and the Evaluator's baseline.
    for task, key in (("EmbeddingTrainer", "base_model"), ("Evaluator", "baseline_model")):
        assert tasks[task]["inputs"]["artifacts"][key]["taskOutputArtifact"][
            "producerTask"] == "LatestBlessedModelResolver"
    assert "tfx_embeddings.components.latest_blessed_model.evaluator.Executor" in \
        executors["Evaluator_executor"]["container"]["args"]
    # A run needs no input: the config's values are the defaults.
    assert set(backend.run_parameters(compiled, {})) == {
        "examples", "vectors", "push_destination"}


def test_the_spec_has_no_path_of_the_compiling_machine(spec):
    text = spec.read_text()
    for path in (ROOT, str(spec.parent), os.path.expanduser("~"), sys.prefix, "/tmp/"):
        assert path not in text, path
    compiled = _load(spec)
    assert compiled["root"]["inputDefinitions"]["parameters"]["examples"]["defaultValue"] == \
        "gs://my-bucket/data/reviews"
    assert compiled["deploymentSpec"]["executors"]["ImportSchemaGen_executor"]["container"][
        "args"][1] == "tfx_embeddings.pipeline.demo.schema.Executor"


def test_compile_refuses_a_path_of_this_machine(tmp_path):
    with pytest.raises(ConfigError, match="data.examples: .*data/sample/corpus is a path of this "
                                          "machine, which Kubeflow's steps cannot read"):
        runners.compile_kubeflow(load_config(os.path.join(ROOT, "configs", "demo.yaml"))
                                 .model_copy(update={"pipeline_root": "gs://b/root",
                                                     "serving_dir": "gs://b/serving"}),
                                 "image", str(tmp_path / "pipeline.yaml"))


def test_the_vertex_target_is_tfx_pipeline_job_with_its_resolvers(vertex_spec):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    with open(vertex_spec) as f:
        job = json_format.Parse(f.read(), pipeline_spec_pb2.PipelineJob())
    spec = json_format.MessageToDict(job.pipeline_spec)
    assert job.display_name == "pretrained-embeddings-kfp"
    assert spec["schemaVersion"] == "2.0.0"
    assert job.runtime_config.parameters["vectors"].string_value == \
        "gs://my-bucket/vectors/glove.6B.50d.txt"
    resolvers = {name for name, e in spec["deploymentSpec"]["executors"].items()
                 if "resolver" in e}
    assert resolvers == {"LatestBlessedModelResolver-model-blessing-resolver_executor",
                         "LatestBlessedModelResolver-model-resolver_executor"}
    # The open-source backend takes none of it.
    with pytest.raises(backend.SpecError, match="unknown template format"):
        backend.load_spec(vertex_spec)


# -- what run-spec refuses, as the backend does ----------------------------------------------

def _write(tmp_path, spec, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_run_spec_refuses_what_the_open_source_backend_refuses(spec, vertex_spec, tmp_path):
    compiled = _load(spec)
    image = sys.executable

    # A resolver (TFX's, from the Vertex target), as the open-source compiler refuses it.
    with_resolver = copy.deepcopy(compiled)
    with open(vertex_spec) as f:
        resolver = json.load(f)["pipelineSpec"]["deploymentSpec"]["executors"][
            "LatestBlessedModelResolver-model-resolver_executor"]
    with_resolver["deploymentSpec"]["executors"]["LatestBlessedModelResolver_executor"] = resolver
    with pytest.raises(backend.SpecError, match=re.escape(
            'error processing component name="LatestBlessedModelResolver": executor(label='
            '"LatestBlessedModelResolver_executor"): non-container and non-importer executor not '
            'implemented')):
        SpecRun(_write(tmp_path, with_resolver), tmp_path / "root", image)
    # Vertex's PipelineJob, as the API server refuses it.
    with pytest.raises(backend.SpecError, match="unknown template format"):
        SpecRun(vertex_spec, tmp_path / "root", image)
    # A lifecycle hook: the backend would skip it (ExampleGen would read stale data).
    with_hook = copy.deepcopy(compiled)
    with_hook["deploymentSpec"]["executors"]["CsvExampleGen_executor"]["container"][
        "lifecycle"] = {"preCacheCheck": {"command": ["python"], "args": []}}
    with pytest.raises(backend.SpecError, match="lifecycle hooks .preCacheCheck. are never "
                                                      "run by the open-source"):
        SpecRun(_write(tmp_path, with_hook), tmp_path / "root", image)
    # Schema 2.0.0, a name the API server refuses.
    for change, message in (({"schemaVersion": "2.0.0"}, "KFP only supports schema version "
                                                          "2.1.0, but the pipeline spec has "
                                                          "version 2.0.0"),
                            ({"pipelineInfo": {"name": "Pretrained_Embeddings"}},
                             "pipeline's name must contain only lowercase")):
        with pytest.raises(backend.SpecError, match=message):
            SpecRun(_write(tmp_path, {**compiled, **change}), tmp_path / "root", image)
    # Run inputs: unknown, of the wrong type, required without a default.
    with pytest.raises(backend.SpecError, match="parameter.s. provided are not required "
                                                      "by pipeline: epochs"):
        SpecRun(str(spec), tmp_path / "root", image, parameters={"epochs": "3"})
    without_default = copy.deepcopy(compiled)
    del without_default["root"]["inputDefinitions"]["parameters"]["vectors"]["defaultValue"]
    with pytest.raises(backend.SpecError, match="parameter vectors is not optional, yet "
                                                      "has neither default value nor user "
                                                      "provided value"):
        SpecRun(_write(tmp_path, without_default), tmp_path / "root", image)
    with pytest.raises(backend.SpecError, match="input parameter vectors requires type "
                                                      "string"):
        backend.run_parameters(compiled, {"vectors": 3.0})


# -- the pieces ------------------------------------------------------------------------------

def test_the_cache_key_is_the_open_source_drivers():
    """The two fingerprints of kubeflow/pipelines backend/src/v2/cacheutils/cache_test.go
    (TestGenerateFingerPrint), from the same keys."""
    model_schema = ("title: kfp.Model\ntype: object\nproperties:\n  framework:\n    type: string"
                    "\n  framework_version:\n    type: string\n")
    assert metadata.cache_fingerprint(
        {"dataset_one": ["1"], "dataset_two": ["2"]},
        {"message": "Some string value", "num_steps": 5.0},
        {"model": {"name": "model", "type": {"instanceSchema": model_schema},
                   "metadata": {"name": "model"}, "uri": "gs://dropped"},
         "metrics": {"name": "metrics", "type": {"schemaTitle": "kfp.Metrics"},
                     "metadata": {"name": "metrics"}}},
        {"output_parameter_one": "STRING", "output_parameter_two": "INT"},
        ["sh", "ec", "test"], "python:3.9") == \
        "4e8a5d7d70997b0a35429fcd481af8fcd5b9f58ef4391bdb6ad900fd1c63622b"
    assert metadata.cache_fingerprint(
        {"dataset": ["10"]}, {}, {}, {"output_parameter": "DOUBLE"}, ["sh", "ec", "run"],
        "python:3.9") == "0a4cc1f15cdfad5170e1358518f7128c5278500a670db1b9a3f3d83b93db396e"


def _record(kfp, contexts, task, outputs, state=mlmd.Execution.COMPLETE, properties=None):
    """Writes a task's execution and output artifacts through the backend's records."""
    execution = kfp.create_execution(contexts, metadata.CONTAINER_EXECUTION,
                                      {"task_name": task, "display_name": task,
                                       **(properties or {})})
    artifacts = {key: kfp.record_artifact(key, type_name, {"uri": uri, "metadata": values}, "{}")
                 for key, (type_name, uri, values) in outputs.items()}
    kfp.publish(execution, contexts, state, {},
                [(key, artifact.id) for key, artifact in artifacts.items()])
    return artifacts


class _Runs:
    """Runs recorded as the backend records them: a trainer's model, an Evaluator's blessing."""

    def __init__(self, kfp):
        self.kfp = kfp

    def run(self, run_id, blessed=True, pipeline="p", namespace="kubeflow", root="/root",
            trainer="Trainer", evaluator="Evaluator"):
        contexts = self.kfp.pipeline(pipeline, run_id, namespace, f"{root}/{pipeline}/{run_id}",
                                     "{}")
        model = _record(self.kfp, contexts, trainer, {"model": (
            "tfx.Model", f"{root}/{pipeline}/{run_id}/{trainer}/model", {})})["model"]
        _record(self.kfp, contexts, evaluator, {"blessing": (
            "tfx.ModelBlessing", f"{root}/{pipeline}/{run_id}/{evaluator}/blessing",
            {"blessed": float(blessed), "current_model_id": str(model.id)})})
        return model

    def asking(self, run_id, pipeline="p", namespace="kubeflow", root="/root"):
        """The LatestBlessedModel step of a run: its execution, with its pod's UID."""
        contexts = self.kfp.pipeline(pipeline, run_id, namespace, f"{root}/{pipeline}/{run_id}",
                                     "{}")
        uid = f"uid-{run_id}"
        _record(self.kfp, contexts, "latest", {}, state=mlmd.Execution.RUNNING,
                properties={"pod_uid": uid, "namespace": namespace})
        return {"KFP_POD_UID": uid}


def test_latest_blessed_model_asks_its_own_runs_pipeline_namespace_and_root(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with metadata.MetadataServer(str(tmp_path / "mlmd.sqlite")) as server:
        kfp = metadata.KfpMetadata(server.address)
        store = latest_executor.connect_from_environment({
            "METADATA_GRPC_SERVICE_HOST": "127.0.0.1",
            "METADATA_GRPC_SERVICE_PORT": str(server.port)})
        runs = _Runs(kfp)

        def find(pod, trainer="Trainer", evaluator="Evaluator"):
            caplog.clear()
            run = latest_executor.own_run(store, pod)
            found = latest_executor.find_latest_blessed_model(store, run, trainer, evaluator)
            return found and found.uri

        pod = runs.asking("r0")
        run = latest_executor.own_run(store, pod)
        assert (run.pipeline_context.name, run.run_context.name, run.namespace,
                run.pipeline_root) == ("p", "r0", "kubeflow", "/root")
        assert find(pod) is None  # Nothing blessed yet.

        first = runs.run("r1")
        assert find(runs.asking("r2")) == first.uri
        runs.run("r3", blessed=False)  # Not blessed: run 1's is still the latest blessed model.
        other_evaluator = runs.run("r4", evaluator="OtherEvaluator")
        other_trainer = runs.run("r5", trainer="BaselineTrainer")
        pod = runs.asking("r6")
        assert find(pod) == first.uri
        assert (f"skipped blessing {other_evaluator.id + 1}: not written by the task Evaluator"
                in caplog.text)
        assert f"skipped model {other_trainer.id} (blessed by blessing {other_trainer.id + 1})" \
            f": not written by the task Trainer" in caplog.text
        # Channels naming no producer (TFX's IMDB example): any trainer, any Evaluator.
        assert find(pod, trainer=None, evaluator=None) == other_trainer.uri

        # Another namespace running a pipeline of the same name: the same pipeline context in
        # ML Metadata, but not this run's models.
        foreign = runs.run("r7", namespace="team-b")
        assert find(pod) == first.uri
        assert (f"skipped blessing {foreign.id + 1}: written in namespace team-b, not this run's "
                f"kubeflow" in caplog.text)
        assert find(runs.asking("r8", namespace="team-b")) == foreign.uri

        # A model under another pipeline root: skipped, saying why; a run under a new root
        # starts from scratch, then finds its own.
        elsewhere = runs.run("r9", root="/old-bucket/root")
        assert find(pod) == first.uri
        assert (f"skipped model {elsewhere.id} (blessed by blessing {elsewhere.id + 1}): "
                f"/old-bucket/root/p/r9/Trainer/model is not under this run's pipeline root "
                f"/root/" in caplog.text)
        new_root = runs.asking("r10", root="/new-root")
        assert find(new_root) is None
        latest = runs.run("r11", root="/new-root")
        assert find(new_root) == latest.uri and find(pod) == first.uri

        # Nested in another pipeline: the driver names the pipeline context by the outermost
        # pipeline, whatever this one was compiled as; its step finds that pipeline's models.
        nested = runs.asking("r12", pipeline="outer")
        assert find(nested) is None
        outer = runs.run("r13", pipeline="outer")
        assert find(nested) == outer.uri and find(pod) == first.uri
        kfp.close()


def test_latest_blessed_model_needs_the_pods_metadata_and_uid(tmp_path):
    with pytest.raises(latest_executor.MetadataStoreError,
                       match="METADATA_GRPC_SERVICE_HOST and METADATA_GRPC_SERVICE_PORT not set"):
        latest_executor.connect_from_environment({})
    with metadata.MetadataServer(str(tmp_path / "mlmd.sqlite")) as server:
        store = latest_executor.connect_from_environment({
            "METADATA_GRPC_SERVICE_HOST": "127.0.0.1",
            "METADATA_GRPC_SERVICE_PORT": str(server.port)})
        with pytest.raises(latest_executor.MetadataStoreError,
                           match="KFP_POD_UID is not set: the Kubeflow Pipelines backend gives "
                                 "it to every step's container"):
            latest_executor.own_run(store, {})
        with pytest.raises(latest_executor.MetadataStoreError,
                           match="0 executions are recorded for this pod .KFP_POD_UID=abc-1."):
            latest_executor.own_run(store, {"KFP_POD_UID": "abc-1"})


def test_consumers_see_the_previous_model_or_none():
    from tfx.types import standard_artifacts

    from tfx_embeddings.components import latest_blessed_model

    def output(found, uri=None):
        model = standard_artifacts.Model()
        model.uri = "/root/p/run2/latest/model"  # Where the driver put it: nothing there.
        model.set_int_custom_property("found", found)
        if uri:
            model.set_string_custom_property("model_uri", uri)
        return model

    given = {"examples": ["e"], "base_model": [output(1, "/root/p/run1/Trainer/model")]}
    resolved = latest_blessed_model.present(given, "base_model")
    assert resolved is given and [a.uri for a in resolved["base_model"]] == [
        "/root/p/run1/Trainer/model"]
    given = {"examples": ["e"], "base_model": [output(0)]}
    assert latest_blessed_model.present(given, "base_model") == {"examples": ["e"]}
    plain = standard_artifacts.Model()  # A Resolver's (Vertex, the local runner): as it is.
    plain.uri = "/root/m"
    assert latest_blessed_model.present({"base_model": [plain]}, "base_model")[
        "base_model"] == [plain]


def test_the_entrypoint_types_the_inputs_the_open_source_driver_leaves_untyped():
    declared = {"artifactType": {"instanceSchema": "title: tfx.Model\ntype: object\n"}}
    executor_input = {
        "inputs": {"artifacts": {"base_model": {"artifacts": [
            {"name": "12", "type": {"instanceSchema": ""}, "uri": "gs://b/m"}]}}},
        "outputs": {"artifacts": {
            "model": {"artifacts": [{"uri": "gs://b/out", "type": declared["artifactType"]}]},
            "executor-logs": {"artifacts": [{"uri": "gs://b/logs",
                                             "type": {"schemaTitle": "system.Artifact"}}]}}}}
    argv = ["entrypoint", "--executor_class_path", "x.Executor",
            "--json_serialized_invocation_args", json.dumps(executor_input),
            "--json_serialized_inputs_spec_args",
            json.dumps({"artifacts": {"base_model": declared}}), "--runner=FnApiRunner"]
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_utils

    def tfx_reads(invocation):
        parsed = json_format.Parse(invocation, pipeline_spec_pb2.ExecutorInput())
        return tfx_utils.parse_raw_artifact_dict(parsed.inputs.artifacts, {})

    with pytest.raises(AttributeError):  # What TFX's entrypoint makes of the driver's input.
        tfx_reads(argv[4])
    fixed = entrypoint.for_tfx(argv)
    assert type(tfx_reads(fixed[4])["base_model"][0]).__name__ == "Model"
    passed = json.loads(fixed[4])
    assert passed["inputs"]["artifacts"]["base_model"]["artifacts"][0]["type"] == \
        declared["artifactType"]
    assert set(passed["outputs"]["artifacts"]) == {"model"}
    assert fixed[:4] + fixed[5:] == argv[:4] + argv[5:]
    argv[6] = json.dumps({"artifacts": {}})
    with pytest.raises(entrypoint.EntrypointError, match="'base_model' has no type"):
        entrypoint.for_tfx(argv)


def test_the_input_fingerprint_changes_when_the_files_do(tmp_path):
    sample_data.write_sample(str(tmp_path), n_train=10, n_eval=5)
    corpus = str(tmp_path / "corpus")
    splits = [("train", "train/*"), ("eval", "eval/*")]
    before = data_fingerprint.fingerprint(corpus, splits)
    assert before.endswith("(2 files, %d bytes)" % sum(
        os.path.getsize(p) for p in glob.glob(f"{corpus}/*/*.csv")))
    assert data_fingerprint.fingerprint(corpus, splits) == before
    sample_data.add_train_rows(str(tmp_path), 3)
    added = data_fingerprint.fingerprint(corpus, splits)
    assert added != before
    path = tmp_path / "corpus" / "eval" / "eval.csv"
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # Rewritten, same size.
    assert data_fingerprint.fingerprint(corpus, splits) != added
    with pytest.raises(data_fingerprint.FingerprintError, match="split eval: no file matches"):
        data_fingerprint.fingerprint(corpus, [("eval", "missing/*")])
    with pytest.raises(data_fingerprint.FingerprintError, match="span or version placeholder"):
        data_fingerprint.fingerprint(corpus, [("train", "span-{SPAN}/*")])


# -- the public API on any TFX pipeline ------------------------------------------------------

def _user_pipeline(root, resolver_strategy=None, trainer_executor=None, example_gen=None,
                   baseline_key="baseline_model"):
    """A pipeline as TFX's examples write one: ExampleGen, TFX's own Trainer warm-started from a
    Resolver's latest blessed model (channels naming no producer), an Evaluator comparing with
    it, a Pusher."""
    import tensorflow_model_analysis as tfma
    from tfx import v1 as tfx
    from tfx.dsl.components.base import executor_spec

    examples = example_gen or tfx.components.CsvExampleGen(input_base="gs://b/data")
    latest = tfx.dsl.Resolver(
        strategy_class=resolver_strategy or tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    trainer = tfx.components.Trainer(
        examples=examples.outputs["examples"], run_fn="user_module.run_fn",
        base_model=latest.outputs["model"], train_args=tfx.proto.TrainArgs(num_steps=1))
    if trainer_executor:
        trainer.executor_spec = executor_spec.ExecutorClassSpec(trainer_executor)
    evaluator = tfx.components.Evaluator(
        examples=examples.outputs["examples"], model=trainer.outputs["model"],
        **{baseline_key: latest.outputs["model"]},
        eval_config=tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key="label")]))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory="gs://b/serving")))
    return tfx.dsl.Pipeline(pipeline_name="user-pipeline", pipeline_root=str(root),
                            components=[examples, latest, trainer, evaluator, pusher])


def _executor_class(spec, task):
    args = _executor(spec, task)["container"]["args"]
    return args[args.index("--executor_class_path") + 1]


def _executor(spec, task):
    label = spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]][
        "executorLabel"]
    return spec["deploymentSpec"]["executors"][label]


def test_any_pipelines_resolver_becomes_the_latest_blessed_model_step(tmp_path):
    from tfx.components.trainer import executor as tfx_trainer

    import tfx_embeddings

    pipeline = _user_pipeline(tmp_path / "root")
    before = [(node.id, type(node).__name__, getattr(node.executor_spec, "executor_class", None))
              for node in pipeline.components]
    path = tfx_embeddings.compile_for_kubeflow(pipeline, "registry/user:1",
                                               str(tmp_path / "pipeline.yaml"))
    spec = backend.load_spec(path)
    backend.check_executors(spec)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"CsvExampleGen", FINGERPRINT_TASK, "latest_blessed_model_resolver",
                          "Trainer", "Evaluator", "Pusher"}
    # The Resolver's id, now the LatestBlessedModel step: any trainer, any Evaluator (its
    # channels name no producer), never cached; the same consumers, taught its not-found model.
    assert _executor_class(spec, "latest_blessed_model_resolver") == \
        "tfx_embeddings.components.latest_blessed_model.executor.Executor"
    assert tasks["latest_blessed_model_resolver"]["cachingOptions"] == {}
    assert "inputs" not in tasks["latest_blessed_model_resolver"]  # No name, no task: any.
    for task, key in (("Trainer", "base_model"), ("Evaluator", "baseline_model")):
        assert tasks[task]["inputs"]["artifacts"][key] == {"taskOutputArtifact": {
            "producerTask": "latest_blessed_model_resolver", "outputArtifactKey": "model"}}
    assert _executor_class(spec, "Trainer") == \
        "tfx_embeddings.components.latest_blessed_model.trainer.Executor"
    assert _executor_class(spec, "Evaluator") == \
        "tfx_embeddings.components.latest_blessed_model.evaluator.Executor"
    for task in tasks:  # Every step runs the project's code.
        assert _executor(spec, task)["container"]["command"][:3] == [
            "python", "-m", "tfx_embeddings.pipeline.kubeflow." + (
                "data_fingerprint" if task == FINGERPRINT_TASK else "entrypoint")], task
    # The user's pipeline is as it was: compiling for Vertex after this still has the Resolver.
    assert [(node.id, type(node).__name__, getattr(node.executor_spec, "executor_class", None))
            for node in pipeline.components] == before
    assert dict((name, cls) for name, _, cls in before)["Trainer"] is tfx_trainer.GenericExecutor
    assert pipeline.components[2].inputs["base_model"].producer_component_id == \
        "latest_blessed_model_resolver"


def test_every_file_based_example_gen_gets_its_input_fingerprint(tmp_path):
    from tfx import v1 as tfx
    from tfx.components.example_gen.component import FileBasedExampleGen
    from tfx.components.example_gen.import_example_gen import executor as import_executor
    from tfx.dsl.components.base import executor_spec

    import tfx_embeddings

    custom = FileBasedExampleGen(
        input_base="gs://b/parquet",
        custom_executor_spec=executor_spec.BeamExecutorSpec(import_executor.Executor),
    ).with_id("ParquetExampleGen")
    for example_gen, task in ((tfx.components.ImportExampleGen(input_base="gs://b/records"),
                               "ImportExampleGen"), (custom, "ParquetExampleGen")):
        path = tfx_embeddings.compile_for_kubeflow(
            _user_pipeline(tmp_path / "root", example_gen=example_gen), "registry/user:1",
            str(tmp_path / f"{task}.yaml"))
        tasks = _load(path)["root"]["dag"]["tasks"]
        assert tasks[task]["inputs"]["parameters"]["input_fingerprint"] == {
            "taskOutputParameter": {"producerTask": f"{task}-input-fingerprint",
                                    "outputParameterKey": "input_fingerprint"}}
        assert tasks[f"{task}-input-fingerprint"]["inputs"]["parameters"]["input_base"] == {
            "runtimeValue": {"constant": example_gen.exec_properties["input_base"]}}


class UserExecutor(base_executor.BaseExecutor):
    """A user's executor: nothing says it knows LatestBlessedModel's not-found model."""


class UserDriver(example_gen_driver.FileBasedDriver):
    """A user's driver, which the open-source backend would never run."""


def test_what_the_open_source_backend_cannot_run_is_refused_naming_the_node(tmp_path):
    from tfx import v1 as tfx

    import tfx_embeddings
    from tfx_embeddings.pipeline.kubeflow.rewrite import PipelineError

    def refused(pipeline, message):
        with pytest.raises(PipelineError, match=message):
            tfx_embeddings.compile_for_kubeflow(pipeline, "registry/user:1",
                                                str(tmp_path / "never.yaml"))
        assert not (tmp_path / "never.yaml").exists()

    root = tmp_path / "root"
    refused(_user_pipeline(root, resolver_strategy=tfx.dsl.experimental.LatestArtifactStrategy),
            "node latest_blessed_model_resolver: a Resolver with tfx.dsl.input_resolution."
            "strategies.latest_artifact_strategy.LatestArtifactStrategy; the open-source "
            "Kubeflow Pipelines backend runs no resolver")

    refused(_user_pipeline(root, trainer_executor=UserExecutor),
            "node Trainer: its input 'base_model' is the latest blessed model .the Resolver "
            "latest_blessed_model_resolver., .* its executor .*UserExecutor is not known to "
            "treat that as no model")
    refused(_user_pipeline(root, example_gen=tfx.components.CsvExampleGen(
            input_base="gs://b/data", input_config=tfx.proto.Input(splits=[
                tfx.proto.Input.Split(name="train", pattern="span-{SPAN}/train/*")]))),
        "node CsvExampleGen: split train's pattern 'span-{SPAN}/train/.' has a span, version "
        "or date placeholder, which TFX's ExampleGen driver resolves")

    example_gen = tfx.components.CsvExampleGen(input_base="gs://b/data")
    example_gen.driver_class = UserDriver
    refused(_user_pipeline(root, example_gen=example_gen),
            "node CsvExampleGen: its driver .*UserDriver is never run by the open-source "
            "Kubeflow Pipelines backend")


def test_resources_are_written_where_the_backend_reads_them():
    from tfx_embeddings.pipeline.kubeflow import resources

    spec = {"root": {"dag": {"tasks": {
        "Trainer": {"componentRef": {"name": "Trainer"}},
        "Transform": {"componentRef": {"name": "Transform"}}}}},
        "components": {"Trainer": {"executorLabel": "Trainer_executor"},
                       "Transform": {"executorLabel": "Transform_executor"}},
        "deploymentSpec": {"executors": {
            "Trainer_executor": {"container": {"image": "i", "resources": {"cpuLimit": 1.0}}},
            "Transform_executor": {"container": {"image": "i"}}}}}
    assert resources.apply(spec, {"*": {"cpu_request": "500m", "memory_request": "1Gi"},
                                  "Trainer": {"cpu_limit": "8", "memory_limit": "16Gi",
                                              "memory_request": "8Gi"}}) == ["Trainer", "Transform"]
    executors = spec["deploymentSpec"]["executors"]
    # The fields every backend 2.x reads (cores; memory in 10^9 bytes).
    assert executors["Trainer_executor"]["container"]["resources"] == {
        "cpuRequest": 0.5, "cpuLimit": 8.0, "memoryRequest": 8.589934592,
        "memoryLimit": 17.179869184}
    # What the driver makes of them (fmt %v, "G" for memory): the pod's.
    assert resources.pod_resources(executors["Trainer_executor"]["container"]["resources"]) == {
        "requests": {"cpu": "0.5", "memory": "8.589934592G"},
        "limits": {"cpu": "8", "memory": "17.179869184G"}}
    assert resources.quantity("8.589934592G") == resources.quantity("8Gi")
    assert resources.pod_resources(executors["Transform_executor"]["container"]["resources"]) \
        == {"requests": {"cpu": "0.5", "memory": "1.073741824G"}, "limits": {}}
    assert resources.go_float(1e6) == "1e+06" and resources.go_float(123456.0) == "123456"
    for values, message in (
            ({"Trainer": {"cpu_request": "4", "cpu_limit": "2"}},
             "step Trainer: cpu request 4 is over its limit 2"),
            ({"Trainer": {"memory_limit": "lots"}}, "'lots': quantities must match"),
            ({"Trainer": {"memory_limit": "10k"}}, "step Trainer: memory_limit 10k: the "
                                                    "backend's driver reads it as 1e-05G"),
            ({"Trainer": {"gpu": "1"}}, "step Trainer: unknown resource gpu"),
            ({"Pusher": {"cpu_limit": "1"}}, "resources for steps the pipeline lacks: Pusher")):
        with pytest.raises(resources.ResourceError, match=message):
            resources.apply(spec, values)
    with pytest.raises(resources.ResourceError, match="failed to init podSpecPatch: 'x': "
                                                      "quantities must match"):
        resources.pod_resources({"resourceMemoryLimit": "x"})


def test_the_pusher_takes_a_plain_path_typed_as_the_run_parameter(tmp_path):
    from google.protobuf import json_format
    from tfx.components.pusher import executor as tfx_pusher
    from tfx.types import standard_artifacts

    from tfx_embeddings.pipeline.kubeflow import pusher

    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    (tmp_path / "model" / "Format-Serving").mkdir(parents=True)
    (tmp_path / "model" / "Format-Serving" / "saved_model.pb").write_bytes(b"model")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)

    def push(executor, destination):
        pushed = standard_artifacts.PushedModel()
        pushed.uri = str(tmp_path / "pushed")
        executor().Do({"model": [model], "model_blessing": [blessing]},
                      {"pushed_model": [pushed]}, {"push_destination": destination})
        return pushed

    typed = str(tmp_path / "serving")  # What a person types in Kubeflow's UI.
    with pytest.raises(json_format.ParseError, match="Failed to load JSON"):
        push(tfx_pusher.Executor, typed)  # TFX's own, before this.
    pushed = push(pusher.Executor, typed)
    [version] = os.listdir(typed)
    assert (tmp_path / "serving" / version / "saved_model.pb").read_bytes() == b"model"
    assert pushed.get_int_custom_property("pushed") == 1
    assert json.loads(pusher.as_push_destination('{"filesystem": {"baseDirectory": "gs://b"}}')) \
        == {"filesystem": {"baseDirectory": "gs://b"}}
    with pytest.raises(ValueError, match="push_destination is empty"):
        pusher.as_push_destination(" ")


def test_run_spec_refuses_an_output_outside_the_runs_bucket_prefix(tmp_path):
    """The launcher's upload (KeyFromURI) takes an output URI only under the run's own
    `<root>/<pipeline>/<run id>`: a previous run's model, under the same root or not, fails
    the task; this is what made LatestBlessedModel keep its own URI."""
    from tfx_embeddings.pipeline.kubeflow.run_spec import SpecRunError

    empty = {"pipelineInfo": {"name": "p"}, "schemaVersion": "2.1.0", "components": {},
             "root": {"dag": {"tasks": {}}}, "deploymentSpec": {"executors": {}}}
    run = SpecRun(_write(tmp_path, empty), tmp_path / "root", sys.executable)
    assert run._bucket_key("model", f"{run.run_root}/Trainer/u/model") == "Trainer/u/model"
    with pytest.raises(SpecRunError, match=re.escape(
            f'failed to upload output artifact "model": URI "{tmp_path}/root/p/earlier/Trainer/'
            f'u/model" does not have expected bucket prefix "{tmp_path}/root/p/{run.run_id}"')):
        run._bucket_key("model", f"{tmp_path}/root/p/earlier/Trainer/u/model")
    assert run._bucket_key("model", "hdfs://cluster/model") is None  # Not uploaded: skipped.
    minio = SpecRun(_write(tmp_path, empty), "minio://mlpipeline/v2/artifacts", sys.executable,
                    metadata_path=str(tmp_path / "mlmd.sqlite"))
    with pytest.raises(SpecRunError, match="does not have expected bucket prefix "
                                           '"minio://mlpipeline/v2/artifacts/p/'):
        minio._bucket_key("model", "minio://other-bucket/v2/artifacts/p/x/model")
    # A pod whose secret the namespace lacks never starts.
    minio._server = type("Server", (), {"port": 1})
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"e": {
        "secretAsEnv": [{"secretName": "team-store", "keyToEnv": [
            {"secretKey": "accesskey", "envVar": "KFP_MINIO_ACCESS_KEY"}]}]}}}}}}
    minio.platform = platform
    with pytest.raises(SpecRunError, match='task t: its pod never starts: '
                                           'CreateContainerConfigError: secret "team-store" not '
                                           'found'):
        minio._environment(str(tmp_path), "t", {}, "e")
    minio.secrets["team-store"] = {"accesskey": "k"}
    assert minio._environment(str(tmp_path), "t", {"env": [{"name": "A", "value": "b"}]}, "e")[
        "KFP_MINIO_ACCESS_KEY"] == "k"


def test_tfx_trainer_takes_the_previous_model_or_none(tmp_path):
    """TFX's own Trainer, as compile_for_kubeflow swaps its executor: fn_args.base_model is the
    previous model's serving directory, or None on a first run (TFX's GenericExecutor itself
    would hand run_fn the empty directory of a model that was not found)."""
    from tfx.components.trainer import executor as tfx_trainer
    from tfx.types import standard_artifacts

    from tfx_embeddings.components.latest_blessed_model import trainer

    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["train", "eval"]'
    outputs = {key: [cls()] for key, cls in (("model", standard_artifacts.Model),
                                              ("model_run", standard_artifacts.ModelRun))}
    for key, [artifact] in outputs.items():
        artifact.uri = str(tmp_path / key)
    properties = {"train_args": "{}", "eval_args": "{}", "custom_config": "null"}

    def base_model(executor, found, uri=None):
        model = standard_artifacts.Model()
        model.uri = str(tmp_path / "this-run" / "latest" / "model")
        model.set_int_custom_property("found", found)
        if uri:
            model.set_string_custom_property("model_uri", uri)
        inputs = {"examples": [examples], "base_model": [model]}
        return executor()._GetFnArgs(inputs, outputs, properties).base_model

    previous = str(tmp_path / "previous-run" / "Trainer" / "model")
    assert base_model(trainer.Executor, 1, previous) == f"{previous}/Format-Serving"
    assert base_model(trainer.Executor, 0) is None
    assert base_model(tfx_trainer.GenericExecutor, 0) == \
        f"{tmp_path}/this-run/latest/model/Format-Serving"

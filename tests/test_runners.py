"""Every way of running it, short of a cluster: runner configs, the Kubeflow spec, the CLI."""

import json
import subprocess
import sys

import pytest
import yaml
from apache_beam.options import pipeline_options

from tests.conftest import write_vocabulary
from tfx_embeddings.components.embedding_gen.executor import build_embedding
from tfx_embeddings.pipeline.demo import runners
from tfx_embeddings.pipeline.demo.config import load_config
from tfx_embeddings.pipeline.demo.pipeline import create_pipeline


@pytest.mark.parametrize("config_file, runner, options", [
    ("configs/dataflow.yaml", "DataflowRunner", {
        pipeline_options.GoogleCloudOptions: {"project": "my-project", "region": "us-central1",
                                              "temp_location": "gs://my-bucket/tmp"},
        pipeline_options.SetupOptions: {"setup_file": "./setup.py"},
        pipeline_options.WorkerOptions: {"max_num_workers": 32}}),
    ("configs/flink.yaml", "FlinkRunner", {  # The cluster make demo-flink starts here.
        pipeline_options.FlinkRunnerOptions: {"flink_master": "127.0.0.1:8081",
                                              "flink_version": "1.19", "parallelism": 2},
        pipeline_options.PortableOptions: {
            "job_endpoint": "localhost:8099", "environment_type": "PROCESS",
            "environment_config": '{"command": "tfx-embeddings-beam-worker"}',
            "environment_cache_millis": "30000"}}),  # Beam parses it as a string.
    ("configs/kubeflow.yaml", "DataflowRunner", {
        pipeline_options.GoogleCloudOptions: {"project": "my-project"},
        # The workers run the steps' image, which has the project installed (the Dockerfile).
        pipeline_options.WorkerOptions: {
            "sdk_container_image": "my-registry/tfx-pretrained-embeddings:latest"},
        pipeline_options.SetupOptions: {"setup_file": None}}),
    ("configs/kubeflow-local.yaml", "FnApiRunner", {
        pipeline_options.DirectOptions: {"direct_running_mode": "in_memory"}}),
    ("configs/demo.yaml", "FnApiRunner", {
        pipeline_options.DirectOptions: {"direct_running_mode": "multi_threading",
                                         "direct_num_workers": 2}}),
])
def test_runner_configs_give_beam_the_right_options(config_file, runner, options):
    config = load_config(config_file)
    args = create_pipeline(config, metadata_connection_config=None).beam_pipeline_args
    assert args == config.beam_pipeline_args
    parsed = pipeline_options.PipelineOptions(args)
    assert parsed.view_as(pipeline_options.StandardOptions).runner == runner  # Named.
    for view, expected in options.items():
        for name, value in expected.items():
            assert getattr(parsed.view_as(view), name) == value, name
    if runner not in ("FnApiRunner", "FlinkRunner") or "kubeflow" in config_file:
        # A cluster reads no local path (flink.yaml's cluster is on this machine).
        assert all("://" in p for p in (config.pipeline_root, config.data.examples,
                                        config.data.vectors, config.serving_dir))


def test_kubeflow_spec_has_every_component_with_its_arguments(tmp_path):
    config = load_config("configs/kubeflow.yaml")
    output = runners.compile_kubeflow(config, "registry/embeddings:1", str(tmp_path / "p.yaml"))
    with open(output) as f:
        spec = next(yaml.safe_load_all(f))  # The PipelineSpec; the platform spec follows.
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"CsvExampleGen", "CsvExampleGen-input-fingerprint", "StatisticsGen",
                          "ImportSchemaGen", "VocabularyGen", "Transform", "EmbeddingGen",
                          "LatestBlessedModelResolver", "EmbeddingTrainer", "Evaluator",
                          "Pusher"}

    def parameter(task, name):
        return tasks[task]["inputs"]["parameters"][name]["runtimeValue"]["constant"]

    assert tasks["EmbeddingGen"]["inputs"]["parameters"]["vectors_path"] == {
        "componentInputParameter": "vectors"}  # A pipeline input, the config's its default.
    assert spec["root"]["inputDefinitions"]["parameters"]["vectors"]["defaultValue"] == \
        config.data.vectors
    assert parameter("EmbeddingGen", "max_shard_mb") == 256
    assert parameter("EmbeddingTrainer", "run_fn") == "tfx_embeddings.pipeline.demo.model.run_fn"
    assert json.loads(parameter("EmbeddingTrainer", "custom_config"))["epochs"] == 10
    assert parameter("Transform", "preprocessing_fn") == \
        "tfx_embeddings.pipeline.demo.preprocessing.preprocessing_fn"
    assert parameter("LatestBlessedModelResolver", "trainer_task") == "EmbeddingTrainer"
    assert "embedding" in tasks["EmbeddingTrainer"]["inputs"]["artifacts"]
    assert "base_model" in tasks["EmbeddingTrainer"]["inputs"]["artifacts"]
    executors = spec["deploymentSpec"]["executors"]
    embedding_gen = executors["EmbeddingGen_executor"]["container"]
    assert embedding_gen["image"] == "registry/embeddings:1"
    assert "tfx_embeddings.components.embedding_gen.executor.Executor" in embedding_gen["args"]
    assert embedding_gen["command"] == ["python", "-m",
                                        "tfx_embeddings.pipeline.kubeflow.entrypoint"]
    assert "--runner=DataflowRunner" in embedding_gen["args"]
    # The push destination: a directory by default, which the Pusher takes as it is.
    assert spec["root"]["inputDefinitions"]["parameters"]["push_destination"][
        "defaultValue"] == config.serving_dir
    assert "tfx_embeddings.pipeline.kubeflow.pusher.Executor" in \
        executors["Pusher_executor"]["container"]["args"]
    # The config's kubeflow.resources, where the backend's driver reads them.
    assert executors["EmbeddingTrainer_executor"]["container"]["resources"] == {
        "cpuRequest": 4.0, "cpuLimit": 8.0, "memoryRequest": 17.179869184,
        "memoryLimit": 17.179869184}
    assert executors["Pusher_executor"]["container"]["resources"] == {
        "cpuRequest": 1.0, "memoryRequest": 2.147483648}


def test_compile_refuses_dataflow_without_the_projects_code(tmp_path):
    from tfx_embeddings.pipeline.demo.config import ConfigError

    config = load_config("configs/kubeflow.yaml")
    args = [a for a in config.beam_pipeline_args if not a.startswith("--sdk_container_image")]
    for extra, message in (([], "DataflowRunner without --sdk_container_image"),
                           (["--setup_file=./setup.py"], "--setup_file needs the source tree")):
        with pytest.raises(ConfigError, match=message):
            runners.compile_kubeflow(config.model_copy(update={
                "beam_pipeline_args": args + extra}), "registry/embeddings:1",
                str(tmp_path / "p.yaml"))


def test_the_demo_pipeline_has_tfx_resolver_everywhere():
    """The demo is written as a user's pipeline: compile_for_kubeflow swaps its Resolver."""
    config = load_config("configs/demo.yaml")
    ids = {c.id for c in create_pipeline(config).components}
    assert "LatestBlessedModelResolver" in ids and "LatestBlessedModel" not in ids


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize("command, words", [
    ("run", ["--config", "LocalDagRunner"]),
    ("compile", ["--pipeline", "--config", "--image", "--output", "--target", "Kubeflow",
                 "Vertex"]),
    ("run-spec", ["--python", "--pipeline-root", "--param", "--metadata", "backend"]),
    ("inspect", ["artifact", "--json", "manifest"]),
])
def test_every_command_has_help(command, words):
    result = _cli(command, "--help")
    assert result.returncode == 0
    for word in words:
        assert word in result.stdout


def test_inspect_prints_the_manifest(tmp_path, small_vectors):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["w1", "w2", "nope"])
    build_embedding(str(vocabulary), small_vectors[0], str(tmp_path / "out"), num_shards=2,
                    row_layout="padded")
    result = _cli("inspect", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    for text in ("vocabulary size:        3 tokens (5 rows x 6 float32; padded layout: padding "
                 "row 0, OOV rows 4-4)",
                 "vocabulary coverage:    2 tokens have a pretrained vector (66.7%)",
                 "checkpoint shards:      2 (2-3 rows each)", "tokens_initialized=1",
                 "vector_rows_matched=2", f"coverage report:        {tmp_path}/out/report.html"):
        assert text in result.stdout
    as_json = json.loads(_cli("inspect", "--json", str(tmp_path / "out")).stdout)
    assert as_json["shape"] == [5, 6] and as_json["layout"]["name"] == "padded"
    result = _cli("inspect", str(tmp_path))
    assert result.returncode != 0 and "was never published" in result.stderr

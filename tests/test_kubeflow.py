"""The Kubeflow path, executed: the compiled spec names nothing of the machine that compiled it,
and runs, task by task, as Kubeflow's launcher runs it (tfx-embeddings run-spec), with only the
wheel installed (build/image) and from directories outside the checkout."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tfx_embeddings.pipeline import sample_data
from tfx_embeddings.pipeline.config import ConfigError, load_config
from tfx_embeddings.pipeline.kubeflow_local import METADATA_FILE
from tfx_embeddings.pipeline.runners import compile_kubeflow

CONFIG = os.path.join(ROOT, "configs", "kubeflow-local.yaml")


def _cli(python, *args, cwd):
    result = subprocess.run([python, "-m", "tfx_embeddings.pipeline", *args], cwd=cwd,
                            capture_output=True, text=True,
                            env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stdout


@pytest.fixture(scope="module")
def spec(image, tmp_path_factory):
    """The spec compiled by the image's own python, in a directory outside the checkout."""
    work = tmp_path_factory.mktemp("compile")
    _cli(image, "compile", "--config", CONFIG, "--image", "registry/embeddings:1", "--output",
         str(work / "spec.json"), cwd=work)
    return work / "spec.json"


def test_the_spec_has_no_path_of_the_compiling_machine(spec):
    text = spec.read_text()
    for path in (ROOT, str(spec.parent), os.path.expanduser("~"), sys.prefix, "/tmp/"):
        assert path not in text, path
    compiled = json.loads(text)
    assert set(compiled["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]) == {
        "examples", "vectors", "push_destination"}
    assert compiled["runtimeConfig"]["parameters"]["vectors"] == {
        "stringValue": "gs://my-bucket/vectors/glove.6B.50d.txt"}  # The config's, a default.
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    assert executors["ImportSchemaGen_executor"]["container"]["args"][1] == \
        "tfx_embeddings.pipeline.schema.Executor"


def test_compile_refuses_a_path_of_this_machine(tmp_path):
    with pytest.raises(ConfigError, match="data.examples: .*data/sample/corpus is a path of this "
                                          "machine, which Kubeflow's steps cannot read"):
        compile_kubeflow(load_config(os.path.join(ROOT, "configs", "demo.yaml"))
                         .model_copy(update={"pipeline_root": "gs://b/root",
                                             "serving_dir": "gs://b/serving"}),
                         "image", str(tmp_path / "spec.json"))


def _run_spec(image, spec, work):
    out = _cli(image, "run-spec", str(spec), "--python", image, "--pipeline-root",
               str(work / "root"), "--env", "TF_USE_LEGACY_KERAS=1",
               "--param", f"examples={work}/sample/corpus",
               "--param", f"vectors={work}/sample/vectors/glove.sample.50d.txt",
               "--param", json.dumps({"filesystem": {"baseDirectory": str(work / "serving")}})
               .join(["push_destination=", ""]), cwd=work)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def test_the_spec_runs_as_kubeflow_would_twice(image, spec, tmp_path):
    sample_data.write_sample(str(tmp_path / "sample"), n_train=120, n_eval=60)
    first = _run_spec(image, spec, tmp_path)
    assert "LatestBlessedModelResolver-model-resolver.model" not in first  # None yet.
    second = _run_spec(image, spec, tmp_path)

    # The resolver's query found the first run's model in the artifacts Kubeflow keeps...
    assert second["LatestBlessedModelResolver-model-resolver.model"] == \
        first["EmbeddingTrainer.model"]
    # ...and the second trainer warm-started from it: custom properties and artifacts flowed.
    with open(os.path.join(second["EmbeddingTrainer.model_run"], "metrics.json")) as f:
        warm_start = json.load(f)["warm_start"]
    assert warm_start["previous_model"] > 100 and warm_start["other_weights"] == 4
    with open(tmp_path / "root" / METADATA_FILE) as f:
        recorded = {a["name"]: a for a in json.load(f)}
    embedding = next(a for a in recorded.values() if a["uri"] == second["EmbeddingGen.embedding"])
    assert embedding["schema_title"] == "tfx_embeddings.PretrainedEmbedding"
    assert embedding["metadata"]["num_shards"] == 4
    # The coverage report, as the HTML artifact Kubeflow's UI shows as the step's visualization.
    report = next(a for a in recorded.values() if a["uri"] == second["EmbeddingGen.report"])
    assert report["schema_title"] == "system.HTML"
    with open(report["uri"]) as f:
        assert f.read().startswith("<!DOCTYPE html>")

    pushed = sorted(os.listdir(tmp_path / "serving"))
    assert len(pushed) == 2
    scores = _cli(image, "predict", str(tmp_path / "serving" / pushed[-1]),
                  "The movie was brikalo and brimine!", "the plot felt dulkaka. Dulmine",
                  cwd=tmp_path).splitlines()[-2:]
    assert float(scores[0].split()[0]) > 0.5 > float(scores[1].split()[0])

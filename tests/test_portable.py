"""The Beam steps on Beam's portable runner: a job service in its own process, SDK workers from an
external worker pool (the path Flink, Spark and Dataflow run Python on); the vocabulary and the
checkpoint are byte-identical to the local runner's."""

import os
import subprocess
import sys
import textwrap

import pytest

from tfx_embeddings.pipeline.demo import sample_data

pytestmark = pytest.mark.cluster


def test_portable_runner_writes_the_same_bytes(tmp_path):
    sample_data.write_sample(str(tmp_path / "sample"), n_train=120, n_eval=60)
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent(f"""
        pipeline_name: portable
        pipeline_root: {tmp_path}/unused
        serving_dir: {tmp_path}/unused
        data:
          examples: {tmp_path}/sample/corpus
          vectors: {tmp_path}/sample/vectors/glove.sample.50d.txt
        text: {{max_tokens: 16, vocabulary_splits: [train, eval]}}
        trainer: {{epochs: 1, batch_size: 16}}
        beam_pipeline_args: [--runner=FnApiRunner, --direct_running_mode=multi_processing,
                             --direct_num_workers=2]
    """))
    result = subprocess.run(
        [sys.executable, "-m", "tfx_embeddings.pipeline.demo.portable", "--config", str(config),
         "--work_dir", str(tmp_path / "work")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    compared = [line for line in result.stdout.splitlines()
                if line.startswith(("identical", "DIFFERENT"))]
    assert len(compared) == 7, compared  # Vocabulary, 4 data files, the index, the copy.
    assert all(line.startswith("identical") for line in compared), compared
    logs = str(tmp_path / "work" / "services")
    with open(os.path.join(logs, "job_service.log")) as f:
        jobs = f.read()
    with open(os.path.join(logs, "worker_pool.log")) as f:
        workers = f.read()
    # One portable job per Beam step (ExampleGen, StatisticsGen, VocabularyGen, Transform,
    # EmbeddingGen, Evaluator), each run by SDK workers the external pool started.
    assert jobs.count("Completed job in") == 6 and "with state DONE" in jobs
    assert workers.count("Starting worker with command") >= 6

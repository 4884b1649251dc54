"""Runs as production has them, through LocalDagRunner: two runs at once with a Beam
DirectRunner of worker processes (a run killed in any step, and the next run healing it, are
test_schedule.py's)."""

import subprocess
import sys
import textwrap

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from tfx_embeddings.components import embedding_artifact
from tfx_embeddings.components.types import PretrainedEmbedding
from tfx_embeddings.pipeline.demo import sample_data

pytestmark = pytest.mark.pipeline

UPSTREAM = ("CsvExampleGen", "StatisticsGen", "VocabularyGen", "Transform", "EmbeddingGen")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample")
    sample_data.write_sample(str(path), n_train=80, n_eval=40)
    return path


def _config(tmp_path, sample, beam_args, vectors=None):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"""
        pipeline_name: production
        pipeline_root: {tmp_path}/root
        serving_dir: {tmp_path}/serving
        data:
          examples: {sample}/corpus
          vectors: {vectors or f"{sample}/vectors/glove.sample.50d.txt"}
        text: {{max_tokens: 16, vocabulary_splits: [train, eval]}}
        trainer: {{epochs: 1, batch_size: 16}}
        beam_pipeline_args: {beam_args}
    """))
    return str(path)


def _start(config, log):
    """Starts a run; its output goes to a file (a pipe nobody reads would block it)."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "tfx_embeddings.pipeline", "run",
                                 "--config", config],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _finish(run, log):
    run.wait(timeout=900)
    with open(log) as f:
        output = f.read()
    assert run.returncode == 0, output[-5000:]
    return output


def _full_log(output):
    """The full log a run's terminal output names."""
    return output.split("the full log: ", 1)[1].split()[0]


def _store(tmp_path):
    return metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
        str(tmp_path / "root" / "metadata.sqlite")))


def _states(store, node):
    context = store.get_context_by_type_and_name("node", f"production.{node}")
    executions = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
    return [metadata_store_pb2.Execution.State.Name(e.last_known_state) for e in executions]


def _assert_published_artifacts_verify(store):
    live = [a for a in store.get_artifacts_by_type(PretrainedEmbedding.TYPE_NAME)
            if a.state == a.LIVE]
    assert live
    for artifact in live:
        embedding_artifact.EmbeddingArtifact(artifact.uri).verify()


def test_two_runs_at_once_with_beam_worker_processes(tmp_path, sample):
    """Both finish; the second waits for the first, then reuses its cached results."""
    config = _config(tmp_path, sample, "[--runner=FnApiRunner, "
                                       "--direct_running_mode=multi_processing, "
                                       "--direct_num_workers=2]")
    logs = [tmp_path / "run1.log", tmp_path / "run2.log"]
    runs = [_start(config, log) for log in logs]
    outputs = [_finish(run, log) for run, log in zip(runs, logs)]
    assert sum("another run holds" in output for output in outputs) == 1
    store = _store(tmp_path)
    for node in UPSTREAM:
        assert _states(store, node) == ["COMPLETE", "CACHED"], node
    assert _states(store, "EmbeddingTrainer") == ["COMPLETE", "COMPLETE"]  # New base_model.
    _assert_published_artifacts_verify(store)
    full_logs = [open(_full_log(output)).read() for output in outputs]
    for log in full_logs:  # The Beam counters of the EmbeddingGen run are in its full log.
        if "EmbeddingGen Beam counters" in log:
            assert "'shards_written': 4" in log
            break
    else:
        pytest.fail("no run logged EmbeddingGen's Beam counters")

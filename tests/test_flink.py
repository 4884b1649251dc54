"""Beam steps on a real Apache Flink cluster started here (a JobManager and two TaskManagers,
each a java process, and Beam's Flink job server; tfx_embeddings.pipeline.flink), started and
stopped from the CLI as a user does for their own pipeline: VocabularyGen's and EmbeddingGen's
Beam jobs write the local runner's bytes, as Flink jobs that FINISHED with subtasks on both
TaskManagers; stopping the cluster leaves no process behind.

The first run on a machine builds the jars with Maven (about 5 minutes; cached after)."""

import csv
import filecmp
import glob
import json
import os
import shutil
import socket
import subprocess
import sys

import apache_beam as beam
import psutil
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from tfx_embeddings.components.embedding_gen.executor import build_embedding
from tfx_embeddings.components.vocabulary_gen import beam_impl
from tfx_embeddings.pipeline.demo import sample_data, text
from tfx_embeddings.pipeline.flink.cluster import FlinkCluster, FlinkError

pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(shutil.which("java") is None,
                                 reason="no java on PATH: Flink needs a Java runtime")]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """(the sample's documents, its vector file)."""
    out = tmp_path_factory.mktemp("sample")
    sample_data.write_sample(str(out), n_train=300, n_eval=100)
    documents = []
    for path in sorted(glob.glob(str(out / "corpus" / "*" / "*.csv"))):
        with open(path, newline="") as f:
            documents += [row["text"] for row in csv.DictReader(f)]
    return documents, str(out / "vectors" / "glove.sample.50d.txt")


def _vocabulary_job(documents, path, options):
    with beam.Pipeline(options=PipelineOptions(options)) as pipeline:
        _ = (pipeline | beam.Create(documents)
             | beam_impl.WriteVocabulary(path, text.tokenize, store_frequency=True))


def _embedding_job(vocabulary, vectors, out, options):
    build_embedding(vocabulary, vectors, out, num_shards=4, row_layout="padded",
                    make_pipeline=lambda: beam.Pipeline(options=PipelineOptions(options)))
    return sorted(os.path.relpath(p, out) for p in glob.glob(os.path.join(out, "checkpoint", "*"))
                  ) + ["vocabulary.txt"]


def _cli(*args):
    """`tfx-embeddings flink ARGS`, as a user runs it: its stdout."""
    result = subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", "flink", *args],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _alive(process):
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_cluster_started_from_the_cli_runs_the_jobs_and_stops_clean(sample, tmp_path):
    """`flink start` leaves a cluster running after it exits and prints the Beam options; with
    them, the vocabulary and embedding jobs write the local runner's bytes as Flink jobs that
    finished on both TaskManagers; `flink stop` (another process) leaves no process, no port,
    no working file."""
    documents, vectors = sample
    run_dir = str(tmp_path / "cluster")
    rest_port, job_port = _free_port(), _free_port()
    out = _cli("start", "--run-dir", run_dir, "--task-managers", "2",
               "--rest-port", str(rest_port), "--job-port", str(job_port))
    try:
        on_flink = json.loads(_cli("args", "--run-dir", run_dir, "--json"))
        assert f"--flink_master=127.0.0.1:{rest_port}" in on_flink
        assert f"--job_endpoint=localhost:{job_port}" in on_flink
        assert all(f"  {option}" in out for option in on_flink)  # start prints them too.
        cluster = FlinkCluster.attach(run_dir)
        processes = [psutil.Process(pid) for pid in cluster.pids().values()]
        assert len(processes) == 4  # The JobManager, two TaskManagers, the job server.

        local = ["--runner=FnApiRunner"]
        _vocabulary_job(documents, str(tmp_path / "local.vocab"), local)
        _vocabulary_job(documents, str(tmp_path / "flink.vocab"),
                        on_flink + ["--job_name=test-vocabulary"])
        assert filecmp.cmp(tmp_path / "local.vocab", tmp_path / "flink.vocab", shallow=False)
        assert len((tmp_path / "local.vocab").read_text().splitlines()) > 100
        files = _embedding_job(str(tmp_path / "local.vocab"), vectors, str(tmp_path / "local"),
                               local)
        assert _embedding_job(str(tmp_path / "flink.vocab"), vectors, str(tmp_path / "flink"),
                              on_flink + ["--job_name=test-embedding"]) == files
        assert len(files) == 6  # The index, 4 data shards, the vocabulary.
        for name in files:
            assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "flink" / name,
                               shallow=False), name
        jobs = {job["name"]: job for job in cluster.jobs()}
        for name in ("test-vocabulary", "test-embedding"):  # Flink's view: both jobs, done.
            assert jobs[name]["state"] == "FINISHED", jobs[name]
        # The work spread: subtasks of the embedding job ran on both TaskManagers.
        assert set(cluster.job_task_managers(jobs["test-embedding"]["jid"])) == {"tm1", "tm2"}
        # With the SDK workers the TaskManagers started, if any still run.
        processes += [child for p in processes for child in p.children(recursive=True)]
    finally:
        stopped = _cli("stop", "--run-dir", run_dir)
    assert "Stopped" in stopped
    assert not [p for p in processes if _alive(p)]
    for port in (rest_port, job_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, port
    assert not glob.glob(os.path.join(run_dir, "*", "tmp"))  # Working files deleted.
    with pytest.raises(FlinkError, match="no Flink cluster was started in"):
        FlinkCluster.attach(run_dir)  # Its state is gone with it.


def test_a_port_in_use_is_named_and_nothing_is_left_running(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(FlinkError, match=f"port {port} is in use"):
            with FlinkCluster(tmp_path, rest_port=port, job_port=_free_port()):
                pass
    assert not os.path.exists(tmp_path / "log" / "jobmanager.out")  # Nothing was started.

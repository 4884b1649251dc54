"""Beam steps on a real Apache Flink cluster started here (a JobManager and two TaskManagers,
each a java process, and Beam's Flink job server; tfx_embeddings.pipeline.flink): VocabularyGen's
and EmbeddingGen's Beam jobs write the local runner's bytes, as Flink jobs that FINISHED with
subtasks on both TaskManagers; stopping the cluster leaves no process behind.

The first run on a machine builds the jars with Maven (about 5 minutes; cached after)."""

import csv
import filecmp
import glob
import os
import shutil
import socket

import apache_beam as beam
import psutil
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from tfx_embeddings.components.embedding_gen.executor import build_embedding
from tfx_embeddings.components.vocabulary_gen import beam_impl
from tfx_embeddings.pipeline.demo import sample_data, text
from tfx_embeddings.pipeline.flink.cluster import FlinkCluster, FlinkError

pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="no java on PATH: Flink needs a Java runtime")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with FlinkCluster(tmp_path_factory.mktemp("flink"), task_managers=2,
                            rest_port=_free_port(), job_port=_free_port()) as started:
        yield started


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


def test_vocabulary_and_embedding_jobs_on_flink_write_the_local_runners_bytes(
        cluster, sample, tmp_path):
    documents, vectors = sample
    local = ["--runner=FnApiRunner"]
    on_flink = cluster.beam_pipeline_args()
    _vocabulary_job(documents, str(tmp_path / "local.vocab"), local)
    _vocabulary_job(documents, str(tmp_path / "flink.vocab"),
                    on_flink + ["--job_name=test-vocabulary"])
    assert filecmp.cmp(tmp_path / "local.vocab", tmp_path / "flink.vocab", shallow=False)
    assert len((tmp_path / "local.vocab").read_text().splitlines()) > 100

    files = _embedding_job(str(tmp_path / "local.vocab"), vectors, str(tmp_path / "local"), local)
    assert _embedding_job(str(tmp_path / "flink.vocab"), vectors, str(tmp_path / "flink"),
                          on_flink + ["--job_name=test-embedding"]) == files
    assert len(files) == 6  # The index, 4 data shards, the vocabulary.
    for name in files:
        assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "flink" / name,
                           shallow=False), name

    jobs = {job["name"]: job for job in cluster.jobs()}
    for name in ("test-vocabulary", "test-embedding"):  # Flink's view: both its jobs, done.
        assert jobs[name]["state"] == "FINISHED", jobs[name]
    # The work spread: subtasks of the embedding job ran on both TaskManagers.
    assert set(cluster.job_task_managers(jobs["test-embedding"]["jid"])) == {"tm1", "tm2"}


def test_a_port_in_use_is_named_and_nothing_is_left_running(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(FlinkError, match=f"port {port} is in use"):
            with FlinkCluster(tmp_path, rest_port=port, job_port=_free_port()):
                pass
    assert not os.path.exists(tmp_path / "log" / "jobmanager.out")  # Nothing was started.


def test_stopping_the_cluster_leaves_no_process(cluster):
    """Last in this module: stops the module's cluster (its fixture's stop is then a no-op)."""
    processes = [psutil.Process(pid) for pid in cluster.pids().values()]
    assert len(processes) == 4  # The JobManager, two TaskManagers, the job server.
    # With the SDK workers the TaskManagers started, if any still run.
    processes += [child for p in processes for child in p.children(recursive=True)]
    cluster.stop()

    def alive(process):
        try:
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    assert not [p for p in processes if alive(p)]
    for port in (cluster.rest_port, cluster.job_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, port
    assert not glob.glob(os.path.join(cluster.run_dir, "*", "tmp"))  # Working files deleted.

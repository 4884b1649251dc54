"""Object storage, run for real: EmbeddingGen, the restore and warm start against an S3
emulator (moto's server, emulators/s3.py) started and stopped by each test (the whole
pipeline: tests/test_pipeline.py, beside the same run on local disk).

The code under test is the project's, TensorFlow's (tensorflow-io's s3://) and Beam's (boto3);
moto stands in for S3. Every s3:// job runs in a process of its own (tests/s3_jobs.py, or the
command line): a process that used tensorflow-io's s3:// aborts at exit, and pytest's must not.
This process reads the bucket with boto3 only, to compare it with the same work on local disk.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

from emulators.s3 import S3Emulator, differing, local_tree, max_overlap, ranged_gets, renamed
from tests import s3_jobs
from tests.conftest import ROOT, write_glove, write_vocabulary

BUCKET = "embeddings"
RANGE_BYTES = 64 << 10  # A 0.6 MB vector file in 10 ranges.


def _emulator(ranged_get_latency=0.0):
    """An emulator of the test's own, stopped after it (and checked gone) however it ends."""
    with S3Emulator(buckets=[BUCKET], ranged_get_latency=ranged_get_latency) as emulator:
        group = emulator.process.pid
        yield emulator
    assert not S3Emulator.alive(group), "the emulator's processes are still running"


@pytest.fixture
def s3():
    yield from _emulator()


@pytest.fixture
def slow_s3():
    """Each ranged GET held 0.2 s, as an object store's latency: on a small file, ranges read
    at the same time show as requests in flight at once."""
    yield from _emulator(ranged_get_latency=0.2)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Vectors A and B (same tokens, other values) and a vocabulary of half their tokens plus
    tokens they lack."""
    tmp_path = tmp_path_factory.mktemp("objstore")
    rng = np.random.default_rng(7)
    paths = {}
    for name in ("a", "b"):
        paths[f"vectors_{name}"] = str(write_glove(
            tmp_path / f"vectors_{name}.txt",
            ((f"t{i}", rng.standard_normal(24)) for i in range(3000))))
    paths["vocabulary"] = str(write_vocabulary(tmp_path / "vocabulary.txt",
                                               [f"t{i}" for i in range(0, 4000, 2)]))
    paths["old_vocabulary"] = str(write_vocabulary(
        tmp_path / "old_vocabulary.txt", [f"t{i}" for i in range(0, 1500, 3)] + ["gone"]))
    return tmp_path, paths


def _env(s3):
    return {**os.environ, **s3.env()}


def _job(s3, *args, timeout=900):
    """Runs `python -m tests.s3_jobs ARGS` against the emulator; returns its RESULT."""
    run = subprocess.run([sys.executable, "-m", "tests.s3_jobs", *args], cwd=ROOT, env=_env(s3),
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    [line] = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def test_embedding_gen_reads_the_bucket_in_parallel_ranges_bit_for_bit(slow_s3, inputs,
                                                                       tmp_path, monkeypatch):
    """Vector file, vocabulary and artifact in the bucket, two Beam worker processes: every byte
    range is its own ranged GET, ranges are read at the same time by both workers, and the
    artifact is byte for byte the one built from local disk (but for the paths it names)."""
    from tfx_embeddings.components.embedding_gen import beam_impl

    s3 = slow_s3
    _, paths = inputs
    vectors_uri = s3.upload(paths["vectors_a"], BUCKET, "in/vectors.txt")
    vocabulary_uri = s3.upload(paths["vocabulary"], BUCKET, "in/vocabulary.txt")
    out_uri = f"s3://{BUCKET}/out/embedding"
    _job(s3, "embed", vocabulary_uri, vectors_uri, out_uri, "--range-bytes", str(RANGE_BYTES),
         "--workers", "2")

    monkeypatch.setattr(beam_impl, "RANGE_BYTES", RANGE_BYTES)
    local_out = str(tmp_path / "embedding")
    s3_jobs.build(paths["vocabulary"], paths["vectors_a"], local_out)  # In this process.
    local = renamed(local_tree(local_out), [(paths["vectors_a"], vectors_uri),
                                            (local_out, out_uri)])
    assert differing(s3.tree(BUCKET, "out/embedding"), local) == []

    size = os.path.getsize(paths["vectors_a"])
    starts = list(range(0, size, RANGE_BYTES))
    assert len(starts) == 10
    gets = ranged_gets(s3.requests(), BUCKET, "in/vectors.txt")
    first_bytes = {first for first, _, _ in gets}
    # A range past the first starts one byte early (the end of the previous range's last line).
    assert {0} | {start - 1 for start in starts[1:]} <= first_bytes, sorted(first_bytes)
    whole = [r for r in s3.requests() if r["method"] == "GET" and r["key"] == "in/vectors.txt"
             and not r["range"]]
    assert whole == []  # Never the whole object in one request.
    in_workers = [(start, end) for first, start, end in gets if first > 0]
    print(f"{len(gets)} ranged GETs of the vector file, at most {max_overlap(in_workers)} at "
          f"once in the workers")
    assert max_overlap(in_workers) >= 2, gets  # Two workers' ranges in flight at once.

    # The command line exits with its own status after s3:// was used (not tensorflow-io's
    # abort at exit, 134), here an error's.
    run = subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", "inspect",
                          f"s3://{BUCKET}/out/nothing"], cwd=ROOT, env=_env(s3),
                         capture_output=True, text=True)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "never published" in run.stderr


def test_restore_and_warm_start_from_the_bucket_give_the_rows_from_disk(s3, inputs, tmp_path):
    """A previous model's trained embedding exported to the bucket, this run's artifact in the
    bucket: the restore layer's rows, cold and warm-started, are those from local disk."""
    _, paths = inputs
    local_npz, remote_npz = str(tmp_path / "local.npz"), str(tmp_path / "remote.npz")
    s3_jobs.restore_scenario(str(tmp_path / "local"), paths["vectors_a"],
                             paths["old_vocabulary"], paths["vocabulary"], local_npz)
    uris = [s3.upload(paths[name], BUCKET, f"in/{name}.txt")
            for name in ("vectors_a", "old_vocabulary", "vocabulary")]
    _job(s3, "restore", f"s3://{BUCKET}/restore", *uris, remote_npz)
    local, remote = np.load(local_npz), np.load(remote_npz)
    for name in ("cold", "warm", "counts"):
        np.testing.assert_array_equal(remote[name], local[name])
    previous, pretrained, _ = remote["counts"]
    assert previous > 0 and pretrained > 0  # Rows from both sources, not a cold start.
    assert not np.array_equal(remote["warm"], remote["cold"])


def _killed_writer(s3, arguments, mark, count, delay):
    """Starts an embed job and SIGKILLs it `delay` seconds after it prints its `count`th MARK
    `mark`; returns False if it had finished by then."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "tests.s3_jobs", "embed", *arguments,
                                "--markers"], cwd=ROOT, env=_env(s3), stdout=subprocess.PIPE,
                               stderr=log, text=True)
    hung = []
    watchdog = threading.Timer(900, lambda: (hung.append(True), process.kill()))
    watchdog.start()
    try:
        for line in process.stdout:
            if line.startswith(f"MARK {mark} "):
                count -= 1
                if not count:
                    time.sleep(delay)
                    break
        process.send_signal(signal.SIGKILL)
    finally:
        process.stdout.close()
        process.wait()
        watchdog.cancel()
    assert not hung, f"the writer printed no MARK {mark} in 900 s"
    log.seek(0)
    assert process.returncode in (0, -signal.SIGKILL), log.read()[-5000:].decode(errors="replace")
    log.close()
    return process.returncode == -signal.SIGKILL


def _published_files(tree):
    """What must be whole in a published artifact: the checkpoint, vocabulary, row keys and
    bits, and the manifest but for the vector file's path."""
    files = {name: data for name, data in tree.items()
             if name.startswith("checkpoint/") or name in (
                 "vocabulary.txt", "row_keys.txt", "has_vector.bits")}
    manifest = json.loads(tree["manifest.json"])
    manifest["source"]["path"] = None
    files["manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    return files


def test_killed_publish_never_leaves_a_half_published_artifact_in_the_bucket(s3, inputs,
                                                                             tmp_path):
    """As tests/test_faults.py on local disk, in the bucket, where a directory is moved object
    by object: each trial's prefix holds a whole artifact B (another vocabulary and vector
    file), then EmbeddingGen of A is SIGKILLed at a random moment: in its Beam job, in its
    publish (as it moves the checkpoint directory, or a random other one of the six entries of
    its staging directory), or just after its publish. A reader accepts a whole A, a whole B, or nothing;
    a rerun then publishes A whole, with no leftovers."""
    _, paths = inputs
    references = {}
    for name, vocabulary in (("a", "vocabulary"), ("b", "old_vocabulary")):  # Every file
        # differs, the checkpoint's shape too.
        directory = str(tmp_path / name)
        s3_jobs.build(paths[vocabulary], paths[f"vectors_{name}"], directory)  # Locally.
        references[name] = _published_files(local_tree(directory))
    vectors_uri = s3.upload(paths["vectors_a"], BUCKET, "in/vectors.txt")
    vocabulary_uri = s3.upload(paths["vocabulary"], BUCKET, "in/vocabulary.txt")

    rng = random.Random(11)
    trials = [("staging", 1, rng.uniform(0, 5)),
              ("move", 1, rng.uniform(0, 0.3)),  # In the checkpoint's four objects,
              ("move", rng.randint(2, 6), rng.uniform(0, 0.3)),  # or among the other entries.
              ("published", 1, 0.0)]
    uris, killed = [], []
    for index, (mark, count, delay) in enumerate(trials):
        prefix = f"trial{index}"
        s3.upload_tree(str(tmp_path / "b"), BUCKET, prefix, last=("manifest.json",))
        uris.append(f"s3://{BUCKET}/{prefix}")
        killed.append(_killed_writer(s3, [vocabulary_uri, vectors_uri, uris[-1]], mark, count,
                                     delay))
    trees = [s3.tree(BUCKET, f"trial{index}") for index in range(len(trials))]

    result = _job(s3, "rerun", vocabulary_uri, vectors_uri, *uris)  # Check, rerun, check.
    outcomes = []
    for index, uri in enumerate(uris):
        if result[uri]["before"]["accepted"]:
            whole = [name for name, files in references.items()
                     if _published_files(trees[index]) == files]
            assert whole, f"{uri}: accepted, but neither A nor B whole"
            outcomes.append(f"whole {whole[0].upper()}")
        else:
            assert killed[index], f"{uri}: the run finished, but a reader refuses it"
            assert "never published" in result[uri]["before"]["error"], result[uri]
            outcomes.append("refused")
    print("SIGKILL", [f"{mark} #{count} +{delay:.2f}s" for mark, count, delay in trials],
          "->", outcomes)
    assert "refused" in outcomes and "whole A" in outcomes, outcomes

    for index, uri in enumerate(uris):  # The rerun into the same place.
        assert result[uri]["after"]["accepted"], result[uri]
        tree = s3.tree(BUCKET, f"trial{index}")
        assert _published_files(tree) == references["a"]
        assert not [name for name in tree if name.startswith(".")], sorted(tree)


@pytest.mark.parametrize("missing, says", [("tensorflow_io", "TensorFlow reads s3:// paths "
                                                               "through tensorflow-io"),
                                           ("boto3", "Beam reads s3:// paths with boto3")])
def test_a_missing_s3_package_is_named_with_the_extra_to_install(monkeypatch, missing, says):
    from tfx_embeddings.components import embedding_artifact, object_storage

    monkeypatch.setitem(sys.modules, missing, None)  # As if not installed: import fails.
    with pytest.raises(object_storage.ObjectStorageError) as error:
        embedding_artifact.EmbeddingArtifact(f"s3://{BUCKET}/artifact")
    assert str(error.value).startswith(f"s3://{BUCKET}/artifact: {says}, which is not installed")
    assert "pip install 'tfx-pretrained-embeddings[s3]'" in str(error.value)
    assert not object_storage.s3_used()


def test_the_emulator_dies_with_the_process_that_started_it(tmp_path):
    """A test process killed outright (SIGKILL: no teardown runs) leaves no emulator behind."""
    starter = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from emulators.s3 import S3Emulator; "
                               "s3 = S3Emulator(log_dir=sys.argv[1]).start(); "
                               "print(s3.process.pid, flush=True); time.sleep(600)",
         str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    group = int(starter.stdout.readline())
    assert S3Emulator.alive(group)
    starter.kill()
    starter.wait()
    starter.stdout.close()
    deadline = time.monotonic() + 10
    while S3Emulator.alive(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not S3Emulator.alive(group)


def test_one_is_local_and_a_file_uri_is_local(tmp_path):
    """filesystems (Beam's side) and object_storage (TensorFlow's) agree: a plain path and a
    file:// URI are local, and the local file is what a file:// URI reads."""
    from tfx_embeddings.components import filesystems, object_storage

    assert object_storage.is_local is filesystems.is_local
    for path, local in (("/x/y", True), ("x/y", True), ("file:///x/y", True),
                        ("FILE:///x/y", True), ("s3://b/k", False), ("gs://b/k", False),
                        ("hdfs://host/p", False)):
        assert filesystems.is_local(path) is local, path
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    uri = f"file://{path}"
    assert filesystems.local_path(uri) == str(path)
    assert filesystems.read_bytes(uri) == b"abc"
    assert filesystems.exists(uri) and filesystems.stat(uri).size == 3
    filesystems.write_bytes(f"file://{tmp_path}/new/g.txt", b"de")
    assert (tmp_path / "new" / "g.txt").read_bytes() == b"de"

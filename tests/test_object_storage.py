"""Object storage, run for real: EmbeddingGen, the restore and warm start against an S3
emulator (moto's server, emulators/s3.py) started and stopped by each test (the whole
pipeline: tests/test_pipeline.py, beside the same run on local disk).

The code under test is the project's, TensorFlow's (tensorflow-io's s3://) and Beam's (boto3);
moto stands in for S3. Every s3:// job runs in a process of its own (tests/s3_jobs.py, or the
command line): a process that used tensorflow-io's s3:// aborts at exit, and pytest's must not.
This process reads the bucket with boto3 only, to compare it with the same work on local disk.
"""

import contextlib
import json
import os
import random
import re
import signal
import socket
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

pytestmark = pytest.mark.cluster

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
    its staging directory), or just after its publish. A reader accepts a whole A, a whole B, or
    nothing; a rerun then publishes A whole, with no leftovers."""
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


# ---------------------------------------------------------- unreachable paths fail in seconds

S3_KEYS = ["--s3_access_key_id=testing", "--s3_secret_access_key=testing",
           "--s3_region_name=us-east-1"]
VECTORS_URI = f"s3://{BUCKET}/in/vectors.txt"


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _dropping_endpoint():
    """An endpoint that never answers a connection: a listening socket whose backlog is full,
    so the kernel drops every new SYN, as a filtered or unroutable address does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(server.getsockname())
        try:
            yield f"http://127.0.0.1:{server.getsockname()[1]}"
        finally:
            for filler in fillers:
                filler.close()


def _check_fails(inputs=(), outputs=(), args=()):
    """object_storage.check_reachable's error and seconds (real requests, in this process:
    boto3 and Google's clients only, no tensorflow-io)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_embeddings.components import object_storage

    started = time.monotonic()
    with pytest.raises(object_storage.ObjectStorageError) as raised:
        object_storage.check_reachable(inputs, outputs, PipelineOptions(list(args)))
    return str(raised.value), time.monotonic() - started


@pytest.mark.parametrize("case", ["the emulator stopped", "a closed port", "dropped connections",
                                  "10.255.255.1", "TEST-NET-1 192.0.2.1"])
def test_an_unreachable_s3_endpoint_is_named_within_seconds(case):
    """One request, a connect timeout of 5 s, no retry (Beam's S3 client retried for 528 s).
    On these machines 10.255.255.1 and other unroutable addresses are answered by the
    sandbox's network (HTTP 404, no S3 error) and 192.0.2.1:9000 is refused; elsewhere they
    time out: each gives its own cause."""
    if case == "the emulator stopped":
        with S3Emulator(buckets=[BUCKET]) as emulator:
            endpoint = emulator.endpoint
    elif case == "a closed port":
        endpoint = f"http://127.0.0.1:{_closed_port()}"
    else:
        endpoint = {"10.255.255.1": "http://10.255.255.1:9000",
                    "TEST-NET-1 192.0.2.1": "http://192.0.2.1:9000"}.get(case)
    with contextlib.ExitStack() as stack:
        if case == "dropped connections":
            endpoint = stack.enter_context(_dropping_endpoint())
        error, seconds = _check_fails([VECTORS_URI], args=[f"--s3_endpoint_url={endpoint}",
                                                           *S3_KEYS])
    print(f"{case}: {seconds:.2f} s: {error}")
    assert seconds < 30
    causes = {"refused": rf"the S3 endpoint {endpoint} is unreachable \(Could not connect",
              "no answer": rf"the S3 endpoint {endpoint} did not answer in time \(Connect "
                           rf"timeout",
              "not S3": rf"{endpoint} answered HTTP \d+ without an S3 error \(not an S3 store"}
    expected = {"the emulator stopped": ["refused"], "a closed port": ["refused"],
                "dropped connections": ["no answer"]}.get(case, list(causes))
    prefix = re.escape(f"{VECTORS_URI}: cannot be reached: ")
    assert any(re.match(prefix + causes[cause], error) for cause in expected), error


def test_missing_credentials_a_missing_bucket_and_a_reachable_one(s3, inputs, monkeypatch):
    _, paths = inputs
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    error, seconds = _check_fails([VECTORS_URI])  # Nothing set.
    assert error.startswith(f"{VECTORS_URI}: cannot be reached: no AWS credentials (set "
                            f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), error
    assert seconds < 30

    emulator = [f"--s3_endpoint_url={s3.endpoint}", *S3_KEYS]
    error, _ = _check_fails([], ["s3://missing/out"], emulator)
    assert error == (f"s3://missing/out: cannot be reached: the bucket 'missing' does not exist "
                     f"at {s3.endpoint}")

    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_embeddings.components import object_storage

    s3.upload(paths["vectors_a"], BUCKET, "in/vectors.txt")
    while ("PUT", "in/vectors.txt") not in [(r["method"], r["key"]) for r in s3.requests()]:
        time.sleep(0.05)
    before = len(s3.requests())
    started = time.monotonic()
    object_storage.check_reachable([VECTORS_URI], [f"s3://{BUCKET}/out/embedding"],
                                   PipelineOptions(emulator))
    seconds = time.monotonic() - started
    print(f"a reachable bucket: checked in {seconds * 1000:.0f} ms")
    assert seconds < 2
    # One request per path: the vector file's HEAD, the output bucket's listing (one key).
    time.sleep(0.2)  # Room for a third request to be logged, were one sent.
    assert [(r["method"], r["key"], r["status"])
            for r in s3.requests(at_least=before + 2)[before:]] == [
        ("HEAD", "in/vectors.txt", 200), ("GET", "", 200)]


def test_a_gs_path_without_credentials_fails_within_seconds(tmp_path, small_vectors,
                                                           monkeypatch):
    """This machine has no network to Google and no credentials: build_embedding says so at
    once, naming the path as written (before: 132 s of retries, then google-api-core's
    RetryError with the path URL-encoded)."""
    from tfx_embeddings.components.embedding_gen.build import build_embedding
    from tfx_embeddings.components.object_storage import ObjectStorageError

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["w1", "w2"])
    path = "gs://bucket-of-nobody/vectors/glove 6B.txt"
    started = time.monotonic()
    with pytest.raises(ObjectStorageError) as raised:
        build_embedding(str(vocabulary), path, str(tmp_path / "out"), row_layout="tft")
    seconds = time.monotonic() - started
    print(f"{seconds:.2f} s: {raised.value}")
    assert seconds < 30
    assert str(raised.value).startswith(
        f"{path}: cannot be reached: no Google credentials (Your default credentials were not "
        f"found), so anonymously: ")
    assert not (tmp_path / "out").exists()


def _attempt(env, *args):
    """`python -m tests.s3_jobs attempt ARGS` with env: its RESULT."""
    run = subprocess.run([sys.executable, "-m", "tests.s3_jobs", "attempt", *args], cwd=ROOT,
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    [line] = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def test_the_job_fails_within_30_s_when_its_bucket_is_down(inputs, tmp_path):
    """EmbeddingGen's job with its vector file in a bucket whose store is down (the emulator
    stopped): the project's error within 30 s (before: 528 s of Beam's s3io retries)."""
    _, paths = inputs
    with S3Emulator(buckets=[BUCKET]) as emulator:
        env = emulator.env()
    result = _attempt(env, paths["vocabulary"], VECTORS_URI, str(tmp_path / "out"))
    print(result)
    assert result["type"] == "ObjectStorageError" and result["seconds"] < 30
    assert result["error"].startswith(f"{VECTORS_URI}: cannot be reached: the S3 endpoint "
                                      f"{env['AWS_ENDPOINT_URL']} is unreachable")


def test_tensorflows_s3_endpoint_down_fails_the_output_check_within_30_s(s3, inputs, tmp_path):
    """Beam's client reaches the store, TensorFlow's (tensorflow-io, S3_ENDPOINT) does not: it
    would retry a closed port for 51 s, then call the bucket empty; the output check gives up
    in time and names TensorFlow's settings."""
    _, paths = inputs
    out = f"s3://{BUCKET}/out/embedding"
    env = {**s3.env(), "S3_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    result = _attempt(env, paths["vocabulary"], paths["vectors_a"], out)
    print(result)
    assert result["type"] == "ObjectStorageError" and result["seconds"] < 30
    assert result["error"].startswith(
        f"{out}: cannot be reached: no answer within 2")
    assert "tensorflow-io reads S3_ENDPOINT" in result["error"]

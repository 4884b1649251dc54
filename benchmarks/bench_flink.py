"""EmbeddingGen on a Flink cluster of 1 and of 2 TaskManagers, beside the local runner.

    python -m benchmarks.bench_flink [--rows 400000] [--dim 300]      (make bench-flink)
    python -m benchmarks.bench_flink --vectors FILE --vocabulary FILE   (files made elsewhere)

The ingest benchmark's job (bench_ingest: a GloVe text file of rows x dim, 1 GB for 400k x 300,
and its 111k-token vocabulary, generated once in benchmarks/work/ if missing) through
build_embedding: on the local runner (bench_ingest's row: FnApiRunner, 2 worker processes),
then on a Flink cluster started here (tfx_embeddings.pipeline.flink) with 1 TaskManager, then
with 2 (2 slots each, --parallelism=2, one Python SDK worker per TaskManager, Beam's default).
Each job's driver runs in a process of its own; the time is build_embedding's, from the driver
(job submission, the jar's upload, the SDK workers' start included), beside Flink's own
duration of the job. It is split, from the driver's clock, Flink's job timestamps (REST API)
and the TaskManagers' logs, into: submission (Beam's run() until Flink has the job: the job
server's translation and the upload of its jar), Flink's scheduling (the job created until
running), the SDK workers' start (running until the first Python SDK worker connects: the
TaskManager starts `tfx-embeddings-beam-worker`, which imports Beam), the work (until the job
ends) and the driver's own steps before and after the job (inspect; merge, verify, publish).
The harness polls each TaskManager's process (the JVM) and the SDK workers it started (its
child processes) for their peak RSS. Writes benchmarks/results/flink.json. Clusters are started
before and stopped after their row (not timed).
"""

import argparse
import datetime
import glob
import json
import logging
import os
import re
import sys
import tempfile
import time

import psutil

from benchmarks import bench_ingest
from benchmarks.common import write_table

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = bench_ingest.WORK


def _rss(process):
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def run_driver(beam_args, vectors, vocabulary, task_manager_pids=()):
    """Runs build_embedding in a process of its own with beam_args; returns (seconds of
    build_embedding, the driver's peak RSS MB, {TaskManager: (JVM peak MB, SDK workers' peak
    MB)})."""
    result = os.path.join(WORK, f"bench_flink_{os.getpid()}.json")
    driver = psutil.Popen([sys.executable, "-m", "benchmarks.bench_flink", "--one",
                           json.dumps(beam_args), vectors, vocabulary, result],
                          cwd=os.path.dirname(HERE))
    task_managers = {name: psutil.Process(pid) for name, pid in task_manager_pids}
    peaks = {name: [0, 0] for name in task_managers}
    driver_peak = 0
    while driver.poll() is None:
        try:
            driver_peak = max(driver_peak, sum(_rss(p) for p in [driver] + driver.children(
                recursive=True)))
        except psutil.Error:
            pass
        for name, process in task_managers.items():
            try:
                workers = process.children(recursive=True)
            except psutil.Error:
                workers = []
            peaks[name][0] = max(peaks[name][0], _rss(process))
            peaks[name][1] = max(peaks[name][1], sum(_rss(w) for w in workers))
        time.sleep(0.1)
    if driver.returncode:
        raise SystemExit(f"the job with {beam_args} failed (exit status {driver.returncode})")
    with open(result) as f:
        measured = json.load(f)
    os.remove(result)
    return measured, driver_peak / 2**20, {name: (jvm / 2**20, workers / 2**20)
                                           for name, (jvm, workers) in peaks.items()}


def one(beam_args, vectors, vocabulary, result):
    """The measured job, in this process; the time excludes interpreter start and imports.
    Writes {seconds, submitted: the wall-clock time Beam's run() was called, stages: the
    EmbeddingGen stage seconds build_embedding logs}."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    import tfx_embeddings

    stages, submitted = {}, []

    class Stages(logging.Handler):
        def emit(self, record):
            stages.update(getattr(record, "stage_seconds", {}))

    stage_logger = logging.getLogger("tfx_embeddings.embedding_gen.stages")
    stage_logger.addHandler(Stages())
    stage_logger.setLevel(logging.INFO)  # Python's default, WARNING, drops it.
    run = beam.Pipeline.run

    def timed_run(pipeline, *args, **kwargs):
        submitted.append(time.time())
        return run(pipeline, *args, **kwargs)

    beam.Pipeline.run = timed_run
    started = time.time()
    with tempfile.TemporaryDirectory(dir=WORK) as out:
        tfx_embeddings.build_embedding(
            vocabulary, vectors, os.path.join(out, "embedding"), row_layout="padded",
            make_pipeline=lambda: beam.Pipeline(options=PipelineOptions(beam_args)))
    with open(result, "w") as f:
        json.dump({"seconds": time.time() - started, "submitted": submitted[0],
                   "stages": stages}, f)


_CONNECTED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Beam Fn Control client "
                        r"connected with id")


def phases(measured, job, log_dir):
    """The job's seconds by phase (see the module's docstring), from the driver's measurement,
    Flink's job details (/jobs/<jid>: timestamps in ms) and the TaskManagers' logs."""
    stamps = {state: ms / 1000 for state, ms in job["timestamps"].items() if ms}
    created = min(stamps.get("INITIALIZING", job["start-time"] / 1000),
                  stamps.get("CREATED", float("inf")))
    connected = []
    for path in glob.glob(os.path.join(log_dir, "taskmanager*.log")):
        with open(path) as f:
            for line in f:
                found = _CONNECTED.match(line)
                if found:  # The TaskManagers log local time.
                    connected.append(datetime.datetime.strptime(
                        found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    running = stamps["RUNNING"]
    first_worker = min(connected) if connected else running
    stages = measured["stages"]
    return {"submission_s": round(created - measured["submitted"], 2),
            "flink_scheduling_s": round(running - created, 2),
            "sdk_worker_start_s": round(first_worker - running, 2),
            "work_s": round(job["end-time"] / 1000 - first_worker, 2),
            "driver_before_after_s": round(sum(stages.get(stage, 0.0) for stage in (
                "inspect", "merge", "verify", "publish")), 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--vectors", help="a GloVe file (default: bench_ingest's, made if missing)")
    parser.add_argument("--vocabulary", help="its vocabulary (default: bench_ingest's)")
    parser.add_argument("--task_managers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(json.loads(args.one[0]), *args.one[1:])
    from tfx_embeddings.pipeline.flink import cluster as flink

    vectors = args.vectors or bench_ingest.prepare_glove("vectors", args.rows, args.dim)
    vocabulary = args.vocabulary or bench_ingest.prepare_vocabulary(args.rows)
    os.makedirs(WORK, exist_ok=True)
    jars = flink.ensure_jars()
    rows = []
    measured, driver_mb, _ = run_driver(bench_ingest.RUNNER_ARGS["processes"], vectors,
                                        vocabulary)
    stages = measured["stages"]
    rows.append({"runner": "local (FnApiRunner, 2 worker processes)",
                 "seconds": round(measured["seconds"], 2), "flink_job_seconds": "-",
                 "work_s": round(stages.get("beam_job", 0.0), 2),
                 "driver_before_after_s": round(sum(stages.get(stage, 0.0) for stage in (
                     "inspect", "merge", "verify", "publish")), 2), "state": "-",
                 "peak_rss_mb": f"{driver_mb:.0f} (the driver and its workers)",
                 "driver_peak_rss_mb": "-", "subtasks": "-"})
    print(rows[-1], flush=True)
    for count in args.task_managers:
        with tempfile.TemporaryDirectory(dir=WORK) as run_dir, flink.FlinkCluster(
                run_dir, task_managers=count, jars=jars, rest_port=_free_port(),
                job_port=_free_port()) as cluster:
            beam_args = cluster.beam_pipeline_args(parallelism=2) + [
                f"--job_name=bench-flink-{count}tm"]
            task_managers = [(name, pid) for name, pid in cluster.pids().items()
                             if name.startswith("taskmanager")]
            measured, driver_mb, peaks = run_driver(beam_args, vectors, vocabulary,
                                                    task_managers)
            [job] = [job for job in cluster.jobs() if job["name"] == f"bench-flink-{count}tm"]
            spread = cluster.job_task_managers(job["jid"])
            rows.append({
                "runner": f"Flink, {count} TaskManager{'s' if count > 1 else ''}",
                "seconds": round(measured["seconds"], 2),
                "flink_job_seconds": job["duration"] / 1000,
                **phases(measured, cluster.rest(f"/jobs/{job['jid']}"), cluster.log_dir),
                "state": job["state"],
                "peak_rss_mb": "; ".join(
                    f"{name.replace('taskmanager', 'TM ')}: JVM {jvm:.0f} + SDK workers "
                    f"{workers:.0f}" for name, (jvm, workers) in peaks.items()),
                "driver_peak_rss_mb": round(driver_mb),
                "subtasks": ", ".join(f"{tm} {n}" for tm, n in spread.items())})
            print(rows[-1], flush=True)
    write_table("flink", rows, ["runner", "seconds", "submission_s", "flink_scheduling_s",
                                "sdk_worker_start_s", "work_s", "driver_before_after_s",
                                "flink_job_seconds", "state", "peak_rss_mb",
                                "driver_peak_rss_mb", "subtasks"],
                extra={"vectors": os.path.basename(vectors),
                       "vectors_bytes": os.path.getsize(vectors),
                       "vocabulary_lines": sum(1 for _ in open(vocabulary)),
                       "cpus": os.cpu_count(), "flink": flink.FLINK_VERSION,
                       "beam_java": flink.BEAM_JAVA_VERSION})


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()

"""A schedule of runs of the demo pipeline, simulated as fast as the machine allows: new train
rows before each run, then the run (LocalDagRunner, under the metadata lock, retention after it),
then what it left: seconds, disk under the pipeline root, in the serving directory and in the
temporary directory, ML Metadata's size, the process's open files and child processes.

    python -m tfx_embeddings.pipeline.demo.schedule --config configs/demo.yaml --runs 20 \
        [--json schedule.json]

By default the runs share this one process, as runs of a long-lived worker would: whatever a
run leaves open or running adds up. With --process-per-run each run is a process of its own,
as a scheduler starts it (Airflow's task, a Kubernetes pod): TensorFlow keeps what every
SavedModel load creates for the life of the process (see docs/scheduling.md), which a
long-lived process accumulates and a process per run does not. `make bench-schedule` runs 100
runs a process each.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

from . import sample_data
from .config import load_config

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFT and the model use Keras 2 (tf_keras).

# Rows of the eval split kept as they are: every run is evaluated on the same rows.
NEW_ROWS_FILE = "new.csv"


def prepare_data(config, work_dir):
    """A copy of the config's corpus under work_dir, whose train split gets new rows each run;
    returns the config that reads it."""
    corpus = os.path.join(work_dir, "data", "corpus")
    shutil.rmtree(os.path.join(work_dir, "data"), ignore_errors=True)
    shutil.copytree(config.data.examples, corpus)
    return config.model_copy(update={"data": config.data.model_copy(update={"examples": corpus})})


def add_rows(config, run, rows, data_cycle=0, name=NEW_ROWS_FILE):
    """Writes the run's new train rows to the file `name` of the train split (by default
    replacing the last run's), seeded by the run's number, or by run % data_cycle: the same
    rows (and file times) come back every data_cycle runs."""
    seed = 1000 + (run % data_cycle if data_cycle else run)
    path = sample_data.add_train_rows(os.path.dirname(config.data.examples), rows, seed=seed,
                                      name=name)
    if data_cycle:  # ExampleGen's fingerprint of its input holds the files' times.
        os.utime(path, (1_700_000_000 + seed, 1_700_000_000 + seed))


def disk_bytes(path):
    """Bytes of the files under path (0 if it does not exist)."""
    total = 0
    for directory, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                pass
    return total


def measure(config, temporary_dir):
    """What is on disk and open now (the metadata store's size: 0 before the first run)."""
    import psutil

    process = psutil.Process()
    root_bytes = disk_bytes(config.pipeline_root)
    metadata_bytes = (os.path.getsize(config.metadata_path)
                      if os.path.exists(config.metadata_path) else 0)
    inside = config.metadata_path.startswith(config.pipeline_root.rstrip("/") + "/")
    return {
        "pipeline_root_bytes": root_bytes,
        # The pipeline root without the metadata store (the artifacts, and what TFX keeps).
        "artifact_bytes": root_bytes - (metadata_bytes if inside else 0),
        "serving_bytes": disk_bytes(config.serving_dir),
        "tmp_bytes": disk_bytes(temporary_dir),
        "tmp_entries": sorted(os.listdir(temporary_dir)),
        "metadata_bytes": metadata_bytes,
        "open_files": sorted(f.path for f in process.open_files()),
        "fds": process.num_fds(),
        "children": [" ".join(c.cmdline()[:3]) for c in process.children(recursive=True)],
        "threads": process.num_threads(),
        "rss_bytes": process.memory_info().rss,
    }


def simulate(config, runs, work_dir, rows=40, data_cycle=0, report=print,
             process_per_run=False, reference_every=0):
    """Runs the pipeline `runs` times with new rows before each; returns one record per run,
    after one of run 0: what was open and on disk before the first.

    Args:
      config: a validated PipelineConfig (its corpus is copied; its pipeline root and serving
        directory are used as they are).
      runs: how many runs.
      work_dir: where the copied corpus lives.
      rows: new train rows per run.
      data_cycle: if > 0, the new rows repeat every data_cycle runs (for TFX's cache).
      report: called with a line per run.
      process_per_run: each run in a new Python process, as a scheduler starts it (a record's
        seconds then count the process's start; run_seconds, rss_bytes and peak_rss_bytes
        are the run's process's), instead of all in this one.
      reference_every: if > 0, after every this many runs a reference run too, in a new
        process: the same pipeline and corpus on a fresh pipeline root (no history), whose
        seconds (the record's reference_seconds) tell a trend in the runs' seconds from a
        change in the machine's speed.
    """
    from . import runners

    config = prepare_data(config, work_dir)
    config_path = (_write_config(config, os.path.join(work_dir, "schedule-config.yaml"))
                   if process_per_run else None)
    reference_path = _reference_config(config, work_dir) if reference_every else None
    temporary_dir = tempfile.gettempdir()
    records = [{"run": 0, "seconds": 0, **measure(config, temporary_dir)}]  # Before any run.
    for run in range(1, runs + 1):
        add_rows(config, run, rows, data_cycle)
        started = time.monotonic()
        if process_per_run:
            outcome = _run_in_new_process(config_path, work_dir, run)
        else:
            outcome = _outcome(runners.run_local(config), time.monotonic() - started)
        record = {"run": run, "seconds": round(time.monotonic() - started, 2),
                  **measure(config, temporary_dir), **outcome}
        if reference_every and run % reference_every == 0:
            record["reference_seconds"] = _reference_run(reference_path, work_dir, run)
        records.append(record)
        report(f"run {run:3d}: {record['seconds']:6.1f} s, pipeline root "
               f"{record['pipeline_root_bytes'] / 1e6:7.1f} MB, serving "
               f"{record['serving_bytes'] / 1e6:5.1f} MB, metadata "
               f"{record['metadata_bytes'] / 1e6:5.2f} MB, tmp {record['tmp_bytes']} B, "
               f"open files {len(record['open_files'])}, children {len(record['children'])}, "
               f"RSS {record['rss_bytes'] / 1e6:.0f} MB, "
               f"freed {record.get('freed_bytes', 0) / 1e6:.1f} MB"
               + (f", reference run {record['reference_seconds']:.1f} s"
                  if "reference_seconds" in record else ""))
    return records


def _write_config(config, path):
    """config as a YAML file at path (for a run in another process); returns path."""
    with open(path, "w") as f:
        yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), f)
    return path


def _reference_directory(work_dir):
    return os.path.join(work_dir, "reference")


def _reference_config(config, work_dir):
    """The reference runs' config file: a pipeline root and serving directory of their own
    under work_dir, the same corpus."""
    root = _reference_directory(work_dir)
    return _write_config(config.model_copy(update={
        "pipeline_root": os.path.join(root, "pipeline_root"),
        "serving_dir": os.path.join(root, "serving"),
        "metadata_path": os.path.join(root, "pipeline_root", "metadata.sqlite")}),
        os.path.join(work_dir, "reference-config.yaml"))


def _reference_run(config_path, work_dir, run):
    """A run of the reference config from an empty pipeline root, in a new process; its
    seconds (the process's start included, as for a run with process_per_run)."""
    shutil.rmtree(_reference_directory(work_dir), ignore_errors=True)
    started = time.monotonic()
    _run_in_new_process(config_path, work_dir, f"{run}'s reference")
    seconds = round(time.monotonic() - started, 2)
    shutil.rmtree(_reference_directory(work_dir), ignore_errors=True)
    return seconds


def _outcome(result, seconds):
    """What a run's local.LocalRun says, and its process's memory now and at its peak."""
    import psutil

    outcome = {"run_seconds": round(seconds, 2),
               "rss_bytes": psutil.Process().memory_info().rss,
               # Linux gives kilobytes; in a long-lived process, the peak of all runs so far.
               "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               "healed_orphans": result.healed.orphans}
    if result.retired is not None:
        outcome.update(retired=result.retired.retired, freed_bytes=result.retired.freed_bytes,
                       kept_runs=len(result.retired.kept_runs),
                       orphans=result.retired.orphans)
    return outcome


def run_once(config_path, outcome_path):
    """One run in this process, as a scheduler's task does it; its outcome as JSON."""
    from . import runners

    started = time.monotonic()
    result = runners.run_local(load_config(config_path))
    with open(outcome_path, "w") as f:
        json.dump(_outcome(result, time.monotonic() - started), f)


def _run_in_new_process(config_path, work_dir, run):
    """run_once in a new Python process (its output goes where this process's goes)."""
    outcome_path = os.path.join(work_dir, "outcome.json")
    command = [sys.executable, "-c",
               "import sys; from tfx_embeddings.pipeline.demo import schedule; "
               "schedule.run_once(*sys.argv[1:])", config_path, outcome_path]
    returncode = subprocess.call(command)
    if returncode != 0:
        raise RuntimeError(f"run {run} failed in its process (exit status {returncode}); "
                           f"its output is above")
    with open(outcome_path) as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=40, help="new train rows per run")
    parser.add_argument("--data-cycle", type=int, default=0,
                        help="the new rows repeat every N runs (0: new every run)")
    parser.add_argument("--work", default="build/schedule",
                        help="the corpus copy, the pipeline root, the serving directory (unless "
                             "the config names them)")
    parser.add_argument("--process-per-run", action="store_true",
                        help="each run in a new process, as a scheduler starts it")
    parser.add_argument("--json", help="write the records here")
    parser.add_argument("--log", help="the runs' full log (default: <work>/schedule.log)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    work_dir = os.path.abspath(args.work)
    os.makedirs(work_dir, exist_ok=True)
    from ..console import RunConsole

    with RunConsole(args.log or os.path.join(work_dir, "schedule.log")) as console:
        records = simulate(config, args.runs, work_dir, args.rows, args.data_cycle,
                           report=console.print, process_per_run=args.process_per_run)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    return records


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

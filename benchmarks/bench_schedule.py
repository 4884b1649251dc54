"""A long schedule simulated: runs of the demo pipeline back to back, each in a new process as a
scheduler starts it, new train rows before each, retention keeping 3 runs; per run its seconds,
the disk under the pipeline root and in the serving directory, the bytes left in the temporary
directory, ML Metadata's size, the open files and child processes left, the run's memory.

    python -m benchmarks.bench_schedule [--runs 100] [--in-process]   (make bench-schedule)

--in-process runs them all in this one process instead, as a long-lived worker calling
`run_local` would: TensorFlow keeps what each SavedModel load creates for the process's life
(docs/scheduling.md), and that mode shows what it costs.

Done when disk and time level off after the retention window and nothing is left in the
temporary directory: the table gives each measure's slope per run over the runs after the
window (a least-squares line), and its first and last value there. The pipeline root holds the
ML Metadata store, which keeps a record of every run (a few tens of kilobytes each): the
artifacts' share is its own column. The process's peak memory is recorded too.

The pipeline is the demo's on a small corpus (the sample's first 400 train and 200 eval rows,
40 new rows a run) and 2 training epochs, so that 100 runs take about an hour, not a day: what
is measured is what a run leaves, not how well it trains.
"""

import argparse
import contextlib
import csv
import logging
import os
import shutil
import sys
import tempfile

import numpy as np
import yaml

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEEP_RUNS = 3
# The first run after the window is still filling it (its retention is the first to retire).
WINDOW = KEEP_RUNS + 2
MEASURES = (("seconds", "s"), ("run_seconds", "s"), ("pipeline_root_bytes", "B"),
            ("artifact_bytes", "B"), ("serving_bytes", "B"), ("metadata_bytes", "B"),
            ("tmp_bytes", "B"), ("open_files", "files"), ("children", "processes"),
            ("fds", "fds"), ("rss_bytes", "B"), ("peak_rss_bytes", "B"),
            # The runs that have a reference run: their seconds against the reference's, a
            # trend in them the runs' own, not the machine's.
            ("reference_seconds", "s"), ("seconds_over_reference", "x"))


def small_corpus(source, destination, train_rows=400, eval_rows=200):
    """The sample's first rows of each split."""
    for split, rows in (("train", train_rows), ("eval", eval_rows)):
        os.makedirs(os.path.join(destination, split))
        with open(os.path.join(source, split, f"{split}.csv"), newline="") as f:
            kept = list(csv.reader(f))[:rows + 1]
        with open(os.path.join(destination, split, f"{split}.csv"), "w", newline="") as f:
            csv.writer(f).writerows(kept)


def write_config(work):
    """The benchmark's config: the demo's, smaller."""
    with open(os.path.join(ROOT, "configs", "demo.yaml")) as f:
        config = yaml.safe_load(f)
    small_corpus(os.path.join(ROOT, config["data"]["examples"]), os.path.join(work, "corpus"))
    config.update({
        "pipeline_name": "schedule-benchmark",
        "pipeline_root": os.path.join(work, "pipeline_root"),
        "serving_dir": os.path.join(work, "serving"),
        "data": {**config["data"], "examples": os.path.join(work, "corpus"),
                 "vectors": os.path.join(ROOT, config["data"]["vectors"])},
        "trainer": {**config["trainer"], "epochs": 2, "train_random_baseline": False},
        "retention": {"keep_runs": KEEP_RUNS},
    })
    path = os.path.join(work, "config.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


def slopes(records):
    """{measure: (slope per run, first, last)} over the runs after the retention window (those
    that have the measure)."""
    after = [r for r in records if r["run"] > WINDOW]
    for record in after:
        if "reference_seconds" in record:
            record["seconds_over_reference"] = record["seconds"] / record["reference_seconds"]
    result = {}
    for name, _ in MEASURES:
        having = [r for r in after if name in r]
        values = [len(r[name]) if isinstance(r[name], list) else r[name] for r in having]
        if len(values) >= 2:
            slope = float(np.polyfit([r["run"] for r in having], values, 1)[0])
            result[name] = (slope, values[0], values[-1])
    return result


@contextlib.contextmanager
def _quiet(log_path):
    """Everything the runs write (TFX, Beam, TensorFlow: file descriptors 1 and 2, and the
    root logger) goes to log_path; yields a file on the terminal for one line per run."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True)
        try:
            yield terminal
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=40, help="new train rows per run")
    parser.add_argument("--reference-every", type=int, default=10,
                        help="a reference run (a fresh pipeline root) after every N runs")
    parser.add_argument("--in-process", action="store_true",
                        help="all runs in this process (default: each in a new one)")
    args = parser.parse_args()
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    work = os.path.join(common.WORK_DIR, "schedule")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    # The runs' own temporary directory: whatever they leave there is counted, nothing else's.
    temporary = os.path.join(work, "tmp")
    os.makedirs(temporary)
    os.environ["TMPDIR"] = temporary
    tempfile.tempdir = temporary

    from tfx_embeddings.pipeline.demo import schedule
    from tfx_embeddings.pipeline.demo.config import load_config

    config = load_config(write_config(work))
    with _quiet(os.path.join(work, "schedule.log")) as terminal:
        records = schedule.simulate(config, args.runs, work, rows=args.rows,
                                    report=lambda line: terminal.write(line + "\n"),
                                    process_per_run=not args.in_process,
                                    reference_every=args.reference_every)
    found = slopes(records)
    rows = [{"run": r["run"], "seconds": r["seconds"], "run_seconds": r.get("run_seconds", 0),
             "pipeline_root_mb": round(r["pipeline_root_bytes"] / 1e6, 2),
             "artifacts_mb": round(r["artifact_bytes"] / 1e6, 2),
             "serving_mb": round(r["serving_bytes"] / 1e6, 2),
             "metadata_mb": round(r["metadata_bytes"] / 1e6, 3),
             "tmp_bytes": r["tmp_bytes"], "open_files": len(r["open_files"]),
             "children": len(r["children"]), "rss_mb": round(r["rss_bytes"] / 1e6),
             "peak_rss_mb": round(r.get("peak_rss_bytes", 0) / 1e6),
             "freed_mb": round(r.get("freed_bytes", 0) / 1e6, 2),
             "reference_seconds": r.get("reference_seconds", "")}
            for r in records]
    shown = [row for row in rows if row["run"] <= WINDOW + 1 or row["run"] % 10 == 0
             or row["run"] == args.runs]
    result_name = "schedule-in-process" if args.in_process else "schedule"
    mode = "in this one process" if args.in_process else "each in a new process"
    print(f"\n{args.runs} scheduled runs {mode} (keep_runs {KEEP_RUNS}); every 10th shown, "
          f"all in benchmarks/results/{result_name}.json\n")
    common.write_table(result_name, shown, list(rows[0]), extra={
        "runs": args.runs, "process_per_run": not args.in_process, "keep_runs": KEEP_RUNS,
        "new_rows_per_run": args.rows,
        "all_runs": rows, "records": records,
        "slopes_after_window": {name: {"per_run": slope, "first": first, "last": last}
                                for name, (slope, first, last) in found.items()}})
    print(f"\nslope per run after run {WINDOW} (least squares), first and last value there:\n")
    print("| measure | slope per run | first | last |\n|---|---|---|---|")
    for name, unit in MEASURES:
        if name in found:
            slope, first, last = found[name]
            print(f"| {name} | {slope:+.4g} {unit} | {first:.4g} | {last:.4g} |")


if __name__ == "__main__":
    main()

"""Shared by the benchmarks: peak memory, one measurement per process, result tables."""

import json
import os
import subprocess
import sys
import time

import numpy as np

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
WORK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")


def peak_rss_mb():
    """This process's peak resident set size (VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))


def run_measured(module, *args):
    """Runs `python -m module args` in a fresh process; returns the JSON it prints last."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{result.stderr[-4000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    measured.setdefault("seconds", time.monotonic() - started)
    return measured


def measure_growth(module, modes, work, matrix_mb, anchor, time_ratio_key):
    """Runs each mode of a benchmark module in its own process; rows with the peak RSS growth
    as a multiple of the matrix and the time as a multiple of the anchor mode's."""
    rows = []
    for mode in modes:
        measured = run_measured(module, mode, work)
        rows.append({"name": mode, "seconds": round(measured["seconds"], 2),
                     "peak_rss_delta_mb": round(measured["peak_rss_delta_mb"], 1),
                     "x_matrix": round(measured["peak_rss_delta_mb"] / matrix_mb, 2)})
    anchor_seconds = next(r["seconds"] for r in rows if r["name"] == anchor)
    for row in rows:
        row[time_ratio_key] = round(row["seconds"] / anchor_seconds, 2)
    return rows


def write_table(name, rows, columns, extra=None):
    """Prints rows as a Markdown table and writes results/<name>.json."""
    header = "| " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    print("\n".join(lines))
    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, f"{name}.json"), "w") as f:
        json.dump({**(extra or {}), "rows": rows}, f, indent=2)
        f.write("\n")


def _cell(value):
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write_random_artifact(out, rows, dimension, num_shards, tokens=None):
    """A published embedding artifact of a random matrix, written shard by shard with the
    project's checkpoint writer (so memory stays one shard); returns its manifest.

    With tokens (a list of str) the vocabulary is those tokens (rows is then ignored), else
    rows - 2 made-up ones; the layout is the padded one with one OOV row, every token marked as
    having a vector.
    """
    from tfx_embeddings.components import embedding_artifact

    os.makedirs(out, exist_ok=True)
    staging = embedding_artifact.staging_dir(out)
    tokens = tokens if tokens is not None else [f"t{i}" for i in range(rows - 2)]
    vocabulary = os.path.join(out, ".source_vocabulary.txt")
    with open(vocabulary, "w") as f:
        f.writelines(f"1 {token}\n" for token in tokens)
    layout = embedding_artifact.RowLayout(embedding_artifact.PADDED, len(tokens), 1)
    shape = (layout.num_rows, dimension)
    bounds = embedding_artifact.shard_bounds(layout.num_rows, num_shards)
    prefixes, shards = [], []
    for i in range(len(bounds) - 1):
        start, stop = bounds[i], bounds[i + 1]
        block = np.random.default_rng(i).standard_normal((stop - start, dimension), np.float32)
        prefixes.append(os.path.join(staging, f"shard{i}", "part"))
        shards.append(embedding_artifact.Shard(start, stop, embedding_artifact.write_rows(
            prefixes[-1], shape, start, block)))
        del block
    prefix = os.path.join(staging, embedding_artifact.CHECKPOINT_PREFIX)
    embedding_artifact.merge(prefixes, shards, shape, prefix)
    embedding_artifact.verify_shards(prefix, shape, shards)
    has_vector = np.ones(layout.num_rows, bool)
    has_vector[[0, -1]] = False
    manifest = embedding_artifact.publish(
        staging, out, layout=layout, vocabulary_path=vocabulary, vocabulary_has_counts=True,
        shards=shards, has_vector=has_vector)
    os.remove(vocabulary)
    return manifest

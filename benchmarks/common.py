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
    """An embedding artifact of a random matrix, written shard by shard with the project's
    checkpoint writer (so memory stays one shard); returns its manifest.

    With tokens (a list of str), it has a vocabulary and the pipeline's row layout (padding,
    the tokens, one OOV row; rows is then ignored), every token marked as having a vector.
    """
    from components.embedding_gen import checkpoint

    os.makedirs(out, exist_ok=True)
    manifest = {"format_version": checkpoint.FORMAT_VERSION,
                "checkpoint_prefix": checkpoint.CHECKPOINT_PREFIX,
                "tensor_name": checkpoint.TENSOR_NAME}
    if tokens is not None:
        layout = checkpoint.RowLayout(len(tokens), 1)
        rows = layout.num_rows
        with open(os.path.join(out, checkpoint.VOCABULARY_FILE), "w") as f:
            f.writelines(f"1 {token}\n" for token in tokens)
        has_vector = np.zeros(rows, bool)
        has_vector[1:1 + len(tokens)] = True
        with open(os.path.join(out, checkpoint.HAS_VECTOR_FILE), "wb") as f:
            f.write(np.packbits(has_vector).tobytes())
        with open(os.path.join(out, checkpoint.ROW_KEYS_FILE), "wb") as f:
            f.writelines(key + b"\n" for key in layout.row_keys(
                0, rows, [token.encode() for token in tokens]))
        manifest.update({"vocabulary_file": checkpoint.VOCABULARY_FILE,
                         "vocabulary_has_counts": True, "reserved_rows": layout.to_json(),
                         "vocabulary_size": len(tokens), "fingerprints": {
                             "vocabulary_sha256": checkpoint.file_sha256(
                                 os.path.join(out, checkpoint.VOCABULARY_FILE))}})
    shape = (rows, dimension)
    bounds = checkpoint.shard_bounds(rows, num_shards)
    shards = []
    for i in range(len(bounds) - 1):
        start, stop = bounds[i], bounds[i + 1]
        block = np.random.default_rng(i).standard_normal((stop - start, dimension), np.float32)
        prefix = os.path.join(out, f".shard{i}", "part")
        shards.append({"start": start, "stop": stop, "prefix": prefix,
                       "sha256": checkpoint.write_slice(prefix, shape, start, block)})
        del block
    checkpoint.merge_and_verify(shards, shape, os.path.join(out, checkpoint.CHECKPOINT_PREFIX))
    manifest.update({
        "shape": list(shape), "dtype": "float32",
        "coverage": {"tokens_with_vector": len(tokens or ()) or rows, "vocabulary_share": 1.0},
        "shards": [{"rows": [s["start"], s["stop"]], "sha256": s["sha256"]} for s in shards],
        "files": checkpoint.file_sizes(out, checkpoint.CHECKPOINT_DIR)})
    with open(os.path.join(out, checkpoint.MANIFEST_FILE), "w") as f:
        json.dump(manifest, f)
    return manifest

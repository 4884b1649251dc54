"""Warm-start benchmark: remap a 1,000,000 x 300 trained embedding to a vocabulary in which 10%
of the tokens were replaced.

    python -m benchmarks.bench_warmstart              # the comparison (make bench-warmstart)
    python -m benchmarks.bench_warmstart MODE WORKDIR  # one way, in this process

project: restore.pretrained_embedding(new artifact, base_model=previous model), rows remapped
from the checkpoints in the graph. warmstart_embedding_matrix: tf_keras's utility, fed the same
previous matrix as numpy (loaded before its clock and baseline start, as its users do).
"""

import json
import os
import shutil
import sys
import time

from benchmarks import common

ROWS = int(os.environ.get("BENCH_ROWS", 1_000_000))
DIMENSION = 300
SHARDS = 4
MODES = ("project", "warmstart_embedding_matrix")


def _vocabularies():
    tokens = ROWS - 2  # Padding and one OOV row complete the matrix.
    replaced = tokens // 10
    old = [f"w{i}" for i in range(tokens)]
    new = old[replaced:] + [f"n{i}" for i in range(replaced)]
    return old, new


def measure(mode, work):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras

    from tfx_embeddings.components.embedding_artifact import CHECKPOINT_PREFIX, TENSOR_NAME
    from tfx_embeddings.components.embedding_trainer import restore, warmstart

    tf.reduce_sum(tf.zeros([8]))  # Warm TF up before the baseline.
    previous_model = os.path.join(work, "previous_model", "Format-Serving")
    if mode == "export":  # What the previous run's trainer left: its trained embedding export.
        layer = restore.pretrained_embedding(os.path.join(work, "previous"))
        layer.build((None,))
        warmstart.export_trained_embedding(layer.partitions, os.path.join(work, "previous"),
                                   os.path.dirname(previous_model))
        print(json.dumps({}))
        return
    if mode == "project":
        before, started = common.peak_rss_mb(), time.monotonic()
        layer = restore.pretrained_embedding(os.path.join(work, "current"),
                                             base_model=previous_model)
        layer.build((None,))
        last = layer.partitions[-1]
    else:
        old, new = _vocabularies()
        old, new = ["<pad>"] + old + ["<oov>"], ["<pad>"] + new + ["<oov>"]
        base = tf.train.load_variable(
            os.path.join(work, "previous", CHECKPOINT_PREFIX), TENSOR_NAME)
        before, started = common.peak_rss_mb(), time.monotonic()
        last = tf_keras.utils.warmstart_embedding_matrix(
            base_vocabulary=old, new_vocabulary=new, base_embeddings=base,
            new_embeddings_initializer="uniform")
    float(tf.reduce_sum(tf.gather(last, [int(last.shape[0]) - 1])))  # Ready, read as lookups do.
    print(json.dumps({"seconds": time.monotonic() - started,
                      "peak_rss_delta_mb": common.peak_rss_mb() - before}))


def main():
    work = os.path.join(common.WORK_DIR, "warmstart")
    shutil.rmtree(work, ignore_errors=True)
    old, new = _vocabularies()
    started = time.monotonic()
    common.write_random_artifact(os.path.join(work, "previous"), None, DIMENSION, SHARDS,
                                 tokens=old)
    common.write_random_artifact(os.path.join(work, "current"), None, DIMENSION, SHARDS,
                                 tokens=new)
    common.run_measured("benchmarks.bench_warmstart", "export", work)
    os.sync()  # The setup's writes reach the disk before either way is timed.
    print(f"wrote two {ROWS} x {DIMENSION} artifacts ({time.monotonic() - started:.1f}s)",
          file=sys.stderr)
    matrix_mb = ROWS * DIMENSION * 4 / 2**20
    rows = common.measure_growth("benchmarks.bench_warmstart", MODES, work, matrix_mb,
                                 "warmstart_embedding_matrix", "x_anchor_time")
    print(f"\nmatrix: {ROWS} x {DIMENSION} float32 = {matrix_mb:.0f} MB, 10% of tokens replaced")
    common.write_table("warmstart", rows,
                       ["name", "seconds", "peak_rss_delta_mb", "x_matrix", "x_anchor_time"],
                       {"matrix_mb": round(matrix_mb, 1)})
    project = rows[0]
    met = project["x_matrix"] <= 1.10 and project["x_anchor_time"] <= 0.35
    print(f"targets (growth <= 1.10x matrix, time <= 0.35x warmstart_embedding_matrix): "
          f"{'met' if met else 'NOT met'}")
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(work)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        measure(sys.argv[1], sys.argv[2])
    else:
        main()

"""Restore benchmark: a 2,000,000 x 300 float32 matrix (2.29 GB) into a TF variable.

    python -m benchmarks.bench_restore            # the whole comparison (make bench-restore)
    python -m benchmarks.bench_restore MODE DIR   # one way, in this process (run by the above)

Each way runs in its own process; peak RSS growth is VmHWM after minus before, from a baseline
taken once TensorFlow is loaded and warm.
"""

import json
import os
import shutil
import sys
import time

from benchmarks import common

ROWS = int(os.environ.get("BENCH_ROWS", 2_000_000))
DIMENSION = 300
SHARDS = 4
MODES = ("project_restore", "project_restore_keras3", "tf_constant", "numpy_assign",
         "keras_constant")


def measure(mode, artifact):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras

    from tfx_embeddings.components.embedding_artifact import CHECKPOINT_PREFIX, TENSOR_NAME
    from tfx_embeddings.components.embedding_trainer import restore

    prefix = os.path.join(artifact, CHECKPOINT_PREFIX)
    tf.reduce_sum(tf.zeros([8]))  # Warm TF up before the baseline.
    before, started = common.peak_rss_mb(), time.monotonic()
    if mode.startswith("project_restore"):  # The tf_keras layer, or Keras 3's.
        layer = restore.pretrained_embedding(
            artifact, keras="keras3" if mode.endswith("keras3") else "tf_keras")
        layer.build((None,))
        last = layer.partitions[-1]
        last = getattr(last, "value", last) if mode.endswith("keras3") else last
    elif mode == "tf_constant":
        last = tf.Variable(tf.constant(tf.train.load_variable(prefix, TENSOR_NAME)))
    elif mode == "numpy_assign":
        last = tf.Variable(tf.zeros([ROWS, DIMENSION]))
        last.assign(tf.train.load_variable(prefix, TENSOR_NAME))
    elif mode == "keras_constant":
        layer = tf_keras.layers.Embedding(ROWS, DIMENSION, embeddings_initializer=(
            tf_keras.initializers.Constant(tf.train.load_variable(prefix, TENSOR_NAME))))
        layer.build((None,))
        last = layer.embeddings
    # The variable is ready. A gather, as lookups read it: slicing would copy a variable whose
    # rows were updated in place (TF then reads such variables copy-on-read).
    float(tf.reduce_sum(tf.gather(last, [int(last.shape[0]) - 1])))
    print(json.dumps({"seconds": time.monotonic() - started,
                      "peak_rss_delta_mb": common.peak_rss_mb() - before}))


def main():
    artifact = os.path.join(common.WORK_DIR, "restore_artifact")
    shutil.rmtree(artifact, ignore_errors=True)
    os.makedirs(artifact)
    started = time.monotonic()
    common.write_random_artifact(artifact, ROWS, DIMENSION, SHARDS)
    print(f"wrote a {ROWS} x {DIMENSION} checkpoint in {SHARDS} shards "
          f"({time.monotonic() - started:.1f}s)", file=sys.stderr)
    matrix_mb = ROWS * DIMENSION * 4 / 2**20
    rows = common.measure_growth("benchmarks.bench_restore", MODES, artifact, matrix_mb,
                                 "tf_constant", "x_tf_constant_time")
    print(f"\nmatrix: {ROWS} x {DIMENSION} float32 = {matrix_mb:.0f} MB")
    common.write_table("restore", rows, ["name", "seconds", "peak_rss_delta_mb", "x_matrix",
                                         "x_tf_constant_time"], {"matrix_mb": round(matrix_mb, 1)})
    for project in rows[:2]:  # tf_keras, Keras 3.
        met = project["x_matrix"] <= 1.10 and project["x_tf_constant_time"] <= 0.5
        print(f"{project['name']}: targets (growth <= 1.10x matrix, time <= 0.5x tf.constant): "
              f"{'met' if met else 'NOT met'}")
    shutil.rmtree(artifact)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        measure(sys.argv[1], sys.argv[2])
    else:
        main()

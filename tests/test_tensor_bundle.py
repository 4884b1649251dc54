"""The shard writer's checkpoint format, written without TensorFlow: SaveV2's bytes exactly, and
no TensorFlow in the modules a Beam worker of EmbeddingGen loads."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfx_embeddings.components import filesystems, tensor_bundle


@pytest.mark.parametrize("name, shape, start, cuts", [
    ("embeddings", (10, 3), 2, [2, 7]),  # One slice.
    ("embeddings", (10, 3), 0, [0, 10]),  # The whole tensor: stored unsliced.
    ("embeddings", (10, 3), 0, [0, 3, 10]),
    ("embeddings", (5_000_000, 300), 4_999_990, [4_999_990, 5_000_000]),  # Long row numbers.
    ("embeddings", (70_000, 4), 8191, [8191, 8192, 20_000, 24_575]),
    ("embeddings", (120_000, 30), 0, list(range(0, 120_000, 1_000)) + [120_000]),  # 120 slices.
    ("w\x00e\xffird", (200, 7), 63, [63, 127]),  # Bytes OrderedCode escapes.
])
def test_the_same_bytes_as_save_v2(tmp_path, name, shape, start, cuts):
    _assert_save_v2_bytes(tmp_path, name, shape, start, cuts)


def test_rows_checksummed_and_written_in_pieces_give_the_same_bytes(tmp_path, monkeypatch):
    """Pieces of 3 rows (84 bytes) that slices of 50 and 1 rows start and end inside of."""
    monkeypatch.setattr(tensor_bundle, "_COPY_BYTES", 100)
    _assert_save_v2_bytes(tmp_path, "embeddings", (200, 7), 10, [10, 60, 61, 200])


def _assert_save_v2_bytes(tmp_path, name, shape, start, cuts):
    rows = np.random.default_rng(0).standard_normal((cuts[-1] - start, shape[1])).astype(
        np.float32)
    tf.raw_ops.SaveV2(prefix=str(tmp_path / "tf"), tensor_names=[name] * (len(cuts) - 1),
                      shape_and_slices=[f"{shape[0]} {shape[1]} {a},{b - a}:0,{shape[1]}"
                                        for a, b in zip(cuts, cuts[1:])],
                      tensors=[rows[a - start:b - start] for a, b in zip(cuts, cuts[1:])])
    tensor_bundle.write_row_slices(str(tmp_path / "ours"), name, shape, start, rows, cuts,
                                   filesystems.open_write)
    for suffix in (".index", ".data-00000-of-00001"):
        assert (tmp_path / f"ours{suffix}").read_bytes() == (tmp_path / f"tf{suffix}").read_bytes()
    restored = tf.raw_ops.RestoreV2(prefix=str(tmp_path / "ours"), tensor_names=[name],
                                    shape_and_slices=[f"{shape[0]} {shape[1]} {start},"
                                                      f"{len(rows)}:0,{shape[1]}"],
                                    dtypes=[tf.float32])[0]
    np.testing.assert_array_equal(restored.numpy(), rows)


def test_bad_slices_are_refused(tmp_path):
    rows = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="not a slice of"):
        tensor_bundle.write_row_slices(str(tmp_path / "x"), "e", (5, 3), 2, rows, [2, 6],
                                       filesystems.open_write)
    with pytest.raises(ValueError, match="do not split rows"):
        tensor_bundle.write_row_slices(str(tmp_path / "x"), "e", (10, 3), 2, rows, [2, 5],
                                       filesystems.open_write)


def test_a_worker_loads_no_tensorflow():
    """What EmbeddingGen's Beam workers import: importing TensorFlow would cost each seconds."""
    probe = ("import sys; import tfx_embeddings.components.embedding_gen.beam_impl; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('tensorflow', 'tf_keras', 'keras', 'tfx')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"

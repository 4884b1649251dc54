"""The embedding checkpoint: row layout, sliced writes, merge, verification and publication.

Each shard is a contiguous row range of one logical [rows, dimension] float32 tensor, written by
its own worker with SaveV2 and a slice spec into a directory of its own. MergeV2Checkpoints then
makes them one checkpoint, which `tf.train.load_variable` and RestoreV2 read as a single tensor.
The merge does not check that the slices cover the tensor, so `merge_and_verify` does, and reads
every slice back against the digest its writer computed before anything is published.
"""

import dataclasses
import hashlib
import json
import os
import uuid

import numpy as np
import tensorflow as tf

TENSOR_NAME = "embeddings"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_PREFIX = os.path.join(CHECKPOINT_DIR, TENSOR_NAME)
VOCABULARY_FILE = "vocabulary.txt"
ROW_KEYS_FILE = "row_keys.txt"  # Line i names row i (RowLayout.row_keys): the warm-start join.
HAS_VECTOR_FILE = "has_vector.bits"  # Bit i (np.packbits order) is set if row i has a vector.
MANIFEST_FILE = "manifest.json"
PROJECTOR_DIR = "projector"
FORMAT_VERSION = 1
PADDING_ROW = 0


class CheckpointError(ValueError):
    """A checkpoint that is incomplete, inconsistent or does not match its vocabulary."""


@dataclasses.dataclass(frozen=True)
class RowLayout:
    """Row i + 1 holds vocabulary token i; row 0 is padding; OOV bucket rows come last."""
    vocabulary_size: int
    num_oov_buckets: int

    @property
    def num_rows(self):
        return 1 + self.vocabulary_size + self.num_oov_buckets

    def token_row(self, index):
        return index + 1

    def row_keys(self, start, stop, tokens):
        """Per row in [start, stop): the bytes that name it, the same in every run: the token,
        or for reserved rows a name no token has (a NUL first: tokens never start with one)."""
        keys = []
        for row in range(start, stop):
            if row == PADDING_ROW:
                keys.append(b"\x00<pad>")
            elif row <= self.vocabulary_size:
                keys.append(tokens[row - 1])
            else:
                keys.append(b"\x00<oov-%d>" % (row - 1 - self.vocabulary_size))
        return keys

    def label(self, row, tokens):
        if row == PADDING_ROW:
            return "<pad>"
        if row <= self.vocabulary_size:
            return tokens[row - 1].decode("utf-8", errors="replace")
        return f"<oov-{row - 1 - self.vocabulary_size}>"

    def to_json(self):
        return {"padding_row": PADDING_ROW, "first_token_row": 1,
                "vocabulary_size": self.vocabulary_size,
                "oov_rows": [1 + self.vocabulary_size, self.num_rows]}


def num_shards_for(shape, num_shards=None, max_shard_bytes=None):
    """The shard count: as asked, or the fewest shards of at most max_shard_bytes each."""
    if max_shard_bytes:
        row_bytes = 4 * shape[1]
        if max_shard_bytes < row_bytes:
            raise CheckpointError(f"max shard size {max_shard_bytes} bytes is less than one "
                                  f"row ({row_bytes} bytes)")
        return -(-shape[0] // (max_shard_bytes // row_bytes))
    return num_shards


def shard_bounds(num_rows, num_shards):
    """Boundaries of num_shards contiguous row ranges (fewer if rows are few), in the layout of
    tf.nn.embedding_lookup's "div" strategy: the first num_rows % n ranges get one row more.

    The trainer's embedding partitions use the same layout, so by default each partition
    restores exactly one shard's slice, with no re-slicing copy.
    """
    num_shards = max(1, min(num_shards, num_rows))
    base, extra = divmod(num_rows, num_shards)
    bounds = [0]
    for i in range(num_shards):
        bounds.append(bounds[-1] + base + (i < extra))
    return bounds


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def initial_rows(keys, dimension, scale):
    """Deterministic U(-scale, scale) rows, one per key (RowLayout.row_keys).

    The values depend only on the key bytes (a counter-based splitmix64 stream seeded by the
    key's hash), never on the worker or the order, so every run and runner writes the same rows.
    """
    seeds = np.array([int.from_bytes(hashlib.blake2b(k, digest_size=8).digest(), "little")
                      for k in keys], dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = seeds[:, None] + np.arange(1, dimension + 1, dtype=np.uint64)[None, :] * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    unit = (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return ((2.0 * unit - 1.0) * scale).astype(np.float32)


def slice_spec(shape, start, stop):
    rows, dimension = shape
    return f"{rows} {dimension} {start},{stop - start}:0,{dimension}"


def write_slice(prefix, shape, start, matrix):
    """Writes rows [start, start + len(matrix)) of the logical tensor to its own checkpoint."""
    tf.io.gfile.makedirs(os.path.dirname(prefix))
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[TENSOR_NAME],
                      shape_and_slices=[slice_spec(shape, start, start + len(matrix))],
                      tensors=[matrix])
    return hashlib.sha256(matrix.tobytes()).hexdigest()


def read_slice(prefix, shape, start, stop):
    return tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[TENSOR_NAME],
                                shape_and_slices=[slice_spec(shape, start, stop)],
                                dtypes=[tf.float32])[0]


def merge_and_verify(shards, shape, destination_prefix):
    """Merges the shard checkpoints into one and checks it; shards: dicts from the writers.

    Raises CheckpointError if the shards do not cover every row exactly once or a slice does
    not read back as written.
    """
    shards = sorted(shards, key=lambda s: s["start"])
    expected = 0
    for shard in shards:
        if shard["start"] != expected:
            raise CheckpointError(f"shards do not cover the rows: a gap or overlap at row "
                                  f"{expected} (next shard starts at {shard['start']})")
        expected = shard["stop"]
    if expected != shape[0]:
        raise CheckpointError(f"shards cover rows [0, {expected}) of {shape[0]}")
    tf.io.gfile.makedirs(os.path.dirname(destination_prefix))
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=[s["prefix"] for s in shards],
                                  destination_prefix=destination_prefix, delete_old_dirs=True)
    verify(destination_prefix, shape, shards)


def verify(prefix, shape, shards):
    """Checks the checkpoint's shape and that each shard's rows read back with its digest."""
    try:
        stored = tf.train.load_checkpoint(prefix).get_variable_to_shape_map().get(TENSOR_NAME)
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(f"{prefix}: cannot read the checkpoint: {e}") from None
    if stored != list(shape):
        raise CheckpointError(f"{prefix}: tensor {TENSOR_NAME!r} has shape {stored}, "
                              f"expected {list(shape)}")
    for shard in shards:
        try:
            rows = read_slice(prefix, shape, shard["start"], shard["stop"]).numpy()
        except tf.errors.OpError as e:
            raise CheckpointError(f"{prefix}: rows [{shard['start']}, {shard['stop']}) do not "
                                  f"read back: {e.message}") from None
        if hashlib.sha256(rows.tobytes()).hexdigest() != shard["sha256"]:
            raise CheckpointError(f"{prefix}: rows [{shard['start']}, {shard['stop']}) differ "
                                  f"from what their writer wrote")


def read_has_vector(artifact_dir, num_rows):
    """The boolean per row of an artifact: True where the row came from the vector file."""
    with tf.io.gfile.GFile(os.path.join(artifact_dir, HAS_VECTOR_FILE), "rb") as f:
        return np.unpackbits(np.frombuffer(f.read(), np.uint8), count=num_rows).astype(bool)


def file_sha256(path):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def staging_dir(output_dir):
    """A fresh directory beside the published files; nothing in it is visible as the artifact.

    Staging directories left by a killed run are removed first.
    """
    for name in tf.io.gfile.listdir(output_dir):
        if name.startswith(".staging-"):
            tf.io.gfile.rmtree(os.path.join(output_dir, name))
    path = os.path.join(output_dir, f".staging-{uuid.uuid4().hex}")
    tf.io.gfile.makedirs(path)
    return path


def file_sizes(root, directory):
    """{path relative to root: size} of the files in root/directory, to detect truncation."""
    return {os.path.join(directory, name): tf.io.gfile.stat(os.path.join(root, directory,
                                                                         name)).length
            for name in sorted(tf.io.gfile.listdir(os.path.join(root, directory)))}


def unpublish(output_dir):
    """Removes a previous artifact's manifest first, so a rewrite is never taken for whole."""
    path = os.path.join(output_dir, MANIFEST_FILE)
    if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def publish(staging, output_dir, manifest):
    """Moves a verified staging directory's contents into place, the manifest last.

    A reader takes the manifest as the sign that the artifact is whole, so it is written after
    every other file is in place (atomically: write then rename). A run killed before that
    leaves an artifact without a manifest, which readers refuse and a rerun replaces.
    """
    for name in tf.io.gfile.listdir(staging):
        name = name.rstrip("/")
        destination = os.path.join(output_dir, name)
        if tf.io.gfile.isdir(destination):
            tf.io.gfile.rmtree(destination)
        tf.io.gfile.rename(os.path.join(staging, name), destination, overwrite=True)
    tf.io.gfile.rmtree(staging)
    tmp = os.path.join(output_dir, f".{MANIFEST_FILE}.tmp")
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    tf.io.gfile.rename(tmp, os.path.join(output_dir, MANIFEST_FILE), overwrite=True)


def load_manifest(artifact_dir):
    """The manifest of a published embedding artifact; CheckpointError if it is not published."""
    path = os.path.join(artifact_dir, MANIFEST_FILE)
    if not tf.io.gfile.exists(path):
        raise CheckpointError(f"{artifact_dir}: no {MANIFEST_FILE}; the embedding artifact was "
                              f"never published (an interrupted or failed EmbeddingGen run)")
    with tf.io.gfile.GFile(path) as f:
        manifest = json.load(f)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {manifest.get('format_version')} is not "
                              f"supported (expected {FORMAT_VERSION})")
    return manifest

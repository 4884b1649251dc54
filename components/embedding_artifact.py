"""The embedding artifact: the on-disk contract between EmbeddingGen and the trainer.

EmbeddingGen publishes it, a trained model exports its trained embedding in the same form (the
next run's warm start reads it), and everything that reads one goes through `EmbeddingArtifact`,
as `tft.TFTransformOutput` does for Transform's output. A directory holds:

    checkpoint/embeddings.index, .data-*   one logical [rows, dimension] float32 tensor named
                                           "embeddings", stored as contiguous row shards
    vocabulary.txt                          the vocabulary the rows follow, as Transform wrote it
    row_keys.txt                            line i names row i: its token, or a reserved name
    has_vector.bits                         bit i (np.packbits order) is set if row i holds a
                                            vector from the vector file
    projector/                              TensorBoard projector files
    manifest.json                           written last: an artifact without one was never
                                            published, and readers refuse it

Row layouts (`RowLayout`), recorded in the manifest, V tokens and K OOV buckets:

    padded  row 0 is padding (zeros, for Keras mask_zero), token i is row i + 1, OOV bucket k is
            row 1 + V + k
    tft     token i is row i, OOV bucket k is row V + k: the ids tft.compute_and_apply_vocabulary
            and tft.apply_vocabulary(num_oov_buckets=K) give

In both, E extra rows may follow the OOV buckets, up to the highest id the TransformGraph gives
(a tft `default_value` at or beyond the vocabulary's end, e.g. `default_value=top_k` with fewer
tokens than top_k): every id the model looks up has a row. An extra row holds an initializer row;
its key is its row number, the id the preprocessing_fn names, so warm start maps it by that id.
The manifest records E as `layout.num_extra_rows` and their range as `layout.extra_rows`, both
absent where E is 0 (as in every artifact written before they existed).
"""

import dataclasses
import hashlib
import json
import os
import uuid
from typing import Dict, Optional, Tuple

import numpy as np

from . import filesystems, object_storage, tensor_bundle, vocabulary_file


class _TensorFlow:
    """tensorflow, imported when first used: Beam workers use this module (names, layouts, shard
    writing) without it."""

    def __getattr__(self, name):
        import tensorflow

        return getattr(tensorflow, name)


tf = _TensorFlow()

FORMAT_VERSION = 2
TENSOR_NAME = "embeddings"
DTYPE = "float32"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_PREFIX = f"{CHECKPOINT_DIR}/{TENSOR_NAME}"
VOCABULARY_FILE = "vocabulary.txt"
ROW_KEYS_FILE = "row_keys.txt"
HAS_VECTOR_FILE = "has_vector.bits"
PROJECTOR_DIR = "projector"
MANIFEST_FILE = "manifest.json"
# A trained embedding is stored in slices of at most this size, starting at multiples of its rows:
# reading part of a stored slice reads all of it, and warm start reads one slice at a time.
SLICE_BYTES = 4 << 20
_STAGING_PREFIX = ".staging-"

PADDED, TFT = "padded", "tft"
LAYOUTS = (PADDED, TFT)


class CheckpointError(ValueError):
    """An embedding artifact that is unpublished, incomplete, damaged, or does not match the
    vocabulary or the model that uses it; or an output path no artifact can be written to."""


@dataclasses.dataclass(frozen=True)
class RowLayout:
    """Which row of the matrix holds which token (see the module's docstring).

    Args:
      name: "padded" or "tft".
      vocabulary_size: V, the number of vocabulary tokens.
      num_oov_buckets: K, rows after the vocabulary for out-of-vocabulary tokens.
      num_extra_rows: E, rows after the OOV buckets up to the highest id the TransformGraph
        gives (see `covering`).

    Raises:
      ValueError: an unknown name, no tokens, or a negative number of OOV buckets or extra rows.
    """
    name: str
    vocabulary_size: int
    num_oov_buckets: int
    num_extra_rows: int = 0

    def __post_init__(self):
        if self.name not in LAYOUTS:
            raise ValueError(f"row_layout must be one of {LAYOUTS}, got {self.name!r}")
        if self.vocabulary_size < 1:
            raise ValueError(f"the vocabulary has no tokens ({self.vocabulary_size})")
        for what in ("num_oov_buckets", "num_extra_rows"):
            if getattr(self, what) < 0:
                raise ValueError(f"{what} must be >= 0, got {getattr(self, what)}")

    @classmethod
    def covering(cls, name, vocabulary_size, num_oov_buckets, token_ids=None):
        """The layout, with the extra rows that make every id token_ids records (TokenIds: the
        unknown tokens' and the padding's) a row; ids below 0 are left to the caller."""
        layout = cls(name, vocabulary_size, num_oov_buckets)
        ids = () if token_ids is None else token_ids.reserved_ids()
        highest = max(ids, default=-1)
        if highest < layout.num_rows:
            return layout
        return cls(name, vocabulary_size, num_oov_buckets, highest + 1 - layout.num_rows)

    @property
    def padding_row(self):
        """0 for the padded layout, None for tft's."""
        return 0 if self.name == PADDED else None

    @property
    def first_token_row(self):
        return 1 if self.name == PADDED else 0

    @property
    def first_extra_row(self):
        return self.first_token_row + self.vocabulary_size + self.num_oov_buckets

    @property
    def num_rows(self):
        return self.first_extra_row + self.num_extra_rows

    def token_row(self, index):
        """The row of vocabulary token `index` (its line in the vocabulary file)."""
        return self.first_token_row + index

    def row_keys(self, start, stop, tokens):
        """Per row in [start, stop): the bytes that name it, the same in every run and layout:
        the token, or for reserved rows a name no token has (a NUL first: tokens never start
        with one). Warm start joins rows by these keys."""
        first, last = self.first_token_row, self.first_token_row + self.vocabulary_size
        extra = self.first_extra_row
        keys = [b"\x00<pad>"] if start <= 0 < stop and self.padding_row == 0 else []
        keys += tokens[max(start, first) - first:max(min(stop, last), first) - first]
        keys += [b"\x00<oov-%d>" % (row - last) for row in range(max(start, last),
                                                                  min(stop, extra))]
        keys += [b"\x00<id-%d>" % row for row in range(max(start, extra), stop)]
        return keys

    def describe_row(self, row, tokens=None):
        """What row holds, in words."""
        if row == self.padding_row:
            return "the padding row, zeros"
        index = row - self.first_token_row
        if 0 <= index < self.vocabulary_size:
            return f"the row of token {index}" + (
                f" {tokens[index].decode('utf-8', 'replace')!r}" if tokens else "")
        if row < self.first_extra_row:
            return f"OOV bucket row {index - self.vocabulary_size}"
        return f"extra row {row}, past the vocabulary, from the initializer"

    def rows_text(self):
        """What each range of rows holds, in words: "padding 0, tokens 1-9, OOV buckets 10-10"."""
        parts = [] if self.padding_row is None else [f"padding {self.padding_row}"]
        first = self.first_token_row
        parts.append(f"tokens {first}-{first + self.vocabulary_size - 1}")
        if self.num_oov_buckets:
            parts.append(f"OOV buckets {first + self.vocabulary_size}-{self.first_extra_row - 1}")
        if self.num_extra_rows:
            parts.append(f"extra rows {self.first_extra_row}-{self.num_rows - 1}")
        return ", ".join(parts)

    def to_json(self):
        value = {"name": self.name, "vocabulary_size": self.vocabulary_size,
                 "num_oov_buckets": self.num_oov_buckets, "padding_row": self.padding_row,
                 "first_token_row": self.first_token_row,
                 "oov_rows": [self.first_token_row + self.vocabulary_size, self.first_extra_row]}
        if self.num_extra_rows:  # Absent where there are none, as before they existed.
            value.update(num_extra_rows=self.num_extra_rows,
                         extra_rows=[self.first_extra_row, self.num_rows])
        return value

    @classmethod
    def from_json(cls, value):
        return cls(value["name"], value["vocabulary_size"], value["num_oov_buckets"],
                   value.get("num_extra_rows", 0))


def shard_bounds(num_rows, num_shards):
    """Boundaries of num_shards contiguous row ranges (fewer if rows are few), in the layout of
    tf.nn.embedding_lookup's "div" strategy: the first num_rows % n ranges get one row more.

    The writer's shards and the restore layer's partitions share this layout, so by default
    each partition restores exactly one shard, with no re-slicing copy.
    """
    num_shards = max(1, min(num_shards, num_rows))
    base, extra = divmod(num_rows, num_shards)
    bounds = [0]
    for i in range(num_shards):
        bounds.append(bounds[-1] + base + (i < extra))
    return bounds


@dataclasses.dataclass(frozen=True)
class Shard:
    """Rows [start, stop) of the matrix, and the sha256 of their float32 bytes (None in a trained
    export, which is written in one piece and never re-verified)."""
    start: int
    stop: int
    sha256: Optional[str] = None

    def to_json(self):
        return {"rows": [self.start, self.stop], "sha256": self.sha256}

    @classmethod
    def from_json(cls, value):
        return cls(value["rows"][0], value["rows"][1], value.get("sha256"))


@dataclasses.dataclass(frozen=True)
class Counts:
    """What EmbeddingGen counted; each name is also its Beam counter's (namespace embedding_gen)."""
    vector_rows_read: int = 0  # Rows of the vector file.
    vector_rows_matched: int = 0  # Rows whose token matched a vocabulary token (any way).
    duplicate_tokens: int = 0  # Matched rows ignored: an earlier row of that token won.
    case_folded_matches: int = 0  # Tokens that took a case-folded row (no exact one).
    invalid_utf8_replaced: int = 0  # File tokens decoded with U+FFFD replacements.
    tokens_initialized: int = 0  # Vocabulary tokens without a vector: initializer rows.
    subword_vectors: int = 0  # Tokens whose vector a fastText model computed from n-grams alone.
    shards_written: int = 0


@dataclasses.dataclass(frozen=True)
class Coverage:
    """Vocabulary tokens that found their word in the vector file (subword vectors apart)."""
    tokens_with_vector: int
    vocabulary_share: float  # Of the vocabulary's tokens.
    corpus_token_share: Optional[float] = None  # Of the corpus's tokens, when counts exist.
    tokens_with_subword_vector: int = 0  # Not counted above: computed from n-grams alone.


@dataclasses.dataclass(frozen=True)
class Source:
    """The vector file the rows came from."""
    path: str
    format: str
    dimension: int
    bytes: int
    sha256: str  # Of the header and of the body ranges' digests, in file order.
    normalization: Tuple[str, ...] = ()  # Applied to the vectors, in order: "center", "l2".
    # The Unicode form ("NFC", "NFKC") tokens were matched in, both the vocabulary's and the
    # file's; None: byte for byte.
    unicode_normalization: Optional[str] = None

    def __post_init__(self):
        object.__setattr__(self, "normalization", tuple(self.normalization))


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """Where a trained model's initial rows came from (see embedding_trainer/warmstart.py)."""
    previous_model: int
    pretrained: int
    initializer: int
    other_weights: Optional[int] = None  # Non-embedding weights taken from the previous model.


@dataclasses.dataclass(frozen=True)
class TokenIds:
    """The ids the TransformGraph gives, as EmbeddingGen found them (embedding_gen/token_ids.py):
    token i has id i + offset; unknown tokens got oov_ids; padding positions padding_id (None
    where the ids are not padded)."""
    feature: str
    offset: int
    oov_ids: Tuple[int, ...]
    padding_id: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, "oov_ids", tuple(self.oov_ids))

    def reserved_ids(self):
        """The ids that are no token's: the unknown tokens' and the padding's."""
        return self.oov_ids + (() if self.padding_id is None else (self.padding_id,))

    def describe(self, layout, tokens=None):
        """One sentence: which ids the TransformGraph gives and which rows of layout they take
        (tokens, the vocabulary's, name the rows of tokens)."""
        ids, rows = [str(i) for i in self.oov_ids], [layout.describe_row(i, tokens)
                                                     for i in self.oov_ids]
        if len(ids) > 3:  # Buckets: the first and the last seen.
            ids, rows = [ids[0], "...", ids[-1]], [rows[0], "...", rows[-1]]
        text = (f"the TransformGraph's feature {self.feature!r} gives token i id "
                f"i + {self.offset} ({layout.name} layout); unknown tokens: "
                f"id{'s' if len(self.oov_ids) > 1 else ''} {', '.join(ids)} "
                f"({'; '.join(rows)})")
        if self.padding_id is not None:
            text += (f"; padding: id {self.padding_id} "
                     f"({layout.describe_row(self.padding_id, tokens)})")
        return text


@dataclasses.dataclass(frozen=True)
class Manifest:
    """manifest.json, typed. `to_json` writes every constant a reader in another language needs."""
    shape: Tuple[int, int]
    layout: RowLayout
    vocabulary_has_counts: bool
    vocabulary_sha256: str
    shards: Tuple[Shard, ...]
    files: Dict[str, int]  # Checkpoint file -> size in bytes, to detect truncation.
    source: Optional[Source] = None
    coverage: Optional[Coverage] = None
    counts: Optional[Counts] = None
    trained_from: Optional[str] = None  # For a trained export: the artifact it started from.
    warm_start: Optional[WarmStart] = None
    token_ids: Optional[TokenIds] = None  # Absent where no TransformGraph was checked.
    format_version: int = FORMAT_VERSION

    def to_json(self):
        optional = lambda value: value and dataclasses.asdict(value)  # noqa: E731
        return {
            "format_version": self.format_version, "tensor_name": TENSOR_NAME,
            "checkpoint_prefix": CHECKPOINT_PREFIX, "dtype": DTYPE, "shape": list(self.shape),
            "layout": self.layout.to_json(), "vocabulary_file": VOCABULARY_FILE,
            "vocabulary_has_counts": self.vocabulary_has_counts,
            "vocabulary_sha256": self.vocabulary_sha256,
            "shards": [s.to_json() for s in self.shards], "files": dict(self.files),
            "source": optional(self.source), "coverage": optional(self.coverage),
            "counts": optional(self.counts), "trained_from": self.trained_from,
            "warm_start": optional(self.warm_start), "token_ids": optional(self.token_ids)}

    @classmethod
    def from_json(cls, value, where="manifest"):
        """Raises CheckpointError for another format version or a malformed manifest."""
        if value.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{where}: format_version {value.get('format_version')} is not "
                                  f"supported (expected {FORMAT_VERSION}); rerun EmbeddingGen")
        try:
            typed = lambda kind, key: value.get(key) and kind(**value[key])  # noqa: E731
            return cls(shape=tuple(value["shape"]), layout=RowLayout.from_json(value["layout"]),
                       vocabulary_has_counts=value["vocabulary_has_counts"],
                       vocabulary_sha256=value["vocabulary_sha256"],
                       shards=tuple(Shard.from_json(s) for s in value["shards"]),
                       files=value["files"], source=typed(Source, "source"),
                       coverage=typed(Coverage, "coverage"), counts=typed(Counts, "counts"),
                       trained_from=value.get("trained_from"),
                       warm_start=typed(WarmStart, "warm_start"),
                       token_ids=typed(TokenIds, "token_ids"))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(
                f"{where}: malformed manifest ({type(e).__name__}: {e})") from None


def slice_spec(shape, start, stop):
    """The shape_and_slices string of rows [start, stop) of a [rows, dimension] tensor."""
    rows, dimension = shape
    return f"{rows} {dimension} {start},{stop - start}:0,{dimension}"


def slice_rows(dimension):
    """Rows per stored slice (SLICE_BYTES)."""
    return max(1, SLICE_BYTES // (4 * dimension))


def write_rows(prefix, shape, start, rows, sliced=False):
    """Writes rows [start, start + len(rows)) of the [rows, dimension] tensor to a checkpoint of
    their own at prefix; returns their digest (rows_sha256).

    Each of a checkpoint's row ranges can be written so, by different workers; `merge` then
    makes them one checkpoint. One stored slice (a restore of exactly these rows reads them with
    no copy), or sliced: stored slices of SLICE_BYTES starting at multiples of their rows.
    Written by tensor_bundle (no TensorFlow in the process), as SaveV2 would write them.
    """
    rows = np.asarray(rows, np.float32)
    cuts = [start]
    if sliced:
        step = slice_rows(shape[1])
        cuts += range(start - start % step + step, start + len(rows), step)
    cuts.append(start + len(rows))
    tensor_bundle.write_row_slices(prefix, TENSOR_NAME, shape, start, rows, cuts,
                                   filesystems.open_write)
    return rows_sha256(rows)


def merge(prefixes, shards, shape, destination_prefix):
    """Merges the checkpoints of write_rows (prefixes[i] holds shards[i]) into one.

    MergeV2Checkpoints neither checks that the slices cover the tensor nor reads them back:
    this checks the first, and verify_shards the second, before anything is published.

    Raises:
      CheckpointError: the shards do not cover every row exactly once.
    """
    order = sorted(range(len(shards)), key=lambda i: shards[i].start)
    expected = 0
    for i in order:
        if shards[i].start != expected:
            raise CheckpointError(f"shards do not cover the rows: a gap or overlap at row "
                                  f"{expected} (next shard starts at {shards[i].start})")
        expected = shards[i].stop
    if expected != shape[0]:
        raise CheckpointError(f"shards cover rows [0, {expected}) of {shape[0]}")
    tf.io.gfile.makedirs(os.path.dirname(destination_prefix))
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=[prefixes[i] for i in order],
                                  destination_prefix=destination_prefix, delete_old_dirs=True)


def read_rows(prefix, shape, start, stop):
    """Rows [start, stop) of the checkpoint at prefix, as a tensor (RestoreV2: no numpy)."""
    return read_row_ranges(prefix, shape, [(start, stop)])[0]


def read_row_ranges(prefix, shape, ranges):
    """Rows [start, stop) for each (start, stop) in ranges, as tensors, in one RestoreV2 call
    (which reads them in parallel)."""
    return tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[TENSOR_NAME] * len(ranges),
                                shape_and_slices=[slice_spec(shape, a, b) for a, b in ranges],
                                dtypes=[tf.float32] * len(ranges))


def rows_sha256(rows):
    """The digest a shard's rows are published with: sha256 of their float32 bytes."""
    return hashlib.sha256(np.ascontiguousarray(rows, np.float32).data).hexdigest()  # No copy.


def verify_shards(prefix, shape, shards):
    """Checks the checkpoint's shape and that each shard's rows read back with its digest.

    Raises:
      CheckpointError: naming the checkpoint and the rows that do not read back as published.
    """
    try:
        stored = tf.train.load_checkpoint(prefix).get_variable_to_shape_map().get(TENSOR_NAME)
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(f"{prefix}: cannot read the checkpoint: {e}") from None
    if stored != list(shape):
        raise CheckpointError(f"{prefix}: tensor {TENSOR_NAME!r} has shape {stored}, expected "
                              f"{list(shape)}")
    for shard in shards:
        try:
            rows = read_rows(prefix, shape, shard.start, shard.stop).numpy()
        except tf.errors.OpError as e:
            raise CheckpointError(f"{prefix}: rows [{shard.start}, {shard.stop}) do not read "
                                  f"back: {e.message}") from None
        digest = rows_sha256(rows)
        del rows  # Before the next shard is read: one shard in memory at a time.
        if shard.sha256 is not None and digest != shard.sha256:
            raise CheckpointError(f"{prefix}: rows [{shard.start}, {shard.stop}) differ from "
                                  f"what their writer wrote")


def file_sha256(path):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EmbeddingArtifact:
    """A published embedding artifact: its manifest, files and rows.

    Args:
      uri: the artifact's directory: EmbeddingGen's output, or a trained model's export
        (`<model>/Format-Embedding`).

    Raises:
      CheckpointError: the artifact was never published (no manifest: an interrupted or failed
        run) or its manifest is of another format version.

    Example:
      artifact = tfx_embeddings.EmbeddingArtifact(uri)
      artifact.manifest.shape                     # (rows, dimension)
      artifact.manifest.layout.token_row(0)       # the row of the vocabulary's first token
      artifact.check_files()                      # every checkpoint file, at its published size
    """

    def __init__(self, uri):
        self.uri = uri
        object_storage.use(uri)
        path = os.path.join(uri, MANIFEST_FILE)
        if not tf.io.gfile.exists(path):
            raise CheckpointError(f"{uri}: no {MANIFEST_FILE}; the embedding artifact was never "
                                  f"published (an interrupted or failed EmbeddingGen run)")
        with tf.io.gfile.GFile(path) as f:
            self.manifest = Manifest.from_json(json.load(f), path)

    @property
    def checkpoint_prefix(self):
        return os.path.join(self.uri, CHECKPOINT_PREFIX)

    @property
    def vocabulary_path(self):
        return os.path.join(self.uri, VOCABULARY_FILE)

    @property
    def row_keys_path(self):
        return os.path.join(self.uri, ROW_KEYS_FILE)

    def tokens(self):
        """The vocabulary's tokens (bytes), in row order."""
        return vocabulary_file.read_vocabulary(self.vocabulary_path,
                                               self.manifest.vocabulary_has_counts)[0]

    def has_vector(self):
        """A bool per row: True where the row holds a vector from the vector file."""
        with tf.io.gfile.GFile(os.path.join(self.uri, HAS_VECTOR_FILE), "rb") as f:
            return np.unpackbits(np.frombuffer(f.read(), np.uint8),
                                 count=self.manifest.shape[0]).astype(bool)

    def read_rows(self, start, stop):
        """Rows [start, stop), as a tensor."""
        return read_rows(self.checkpoint_prefix, self.manifest.shape, start, stop)

    def read_row_ranges(self, ranges):
        """Rows [start, stop) for each (start, stop) in ranges, as tensors, in one read."""
        return read_row_ranges(self.checkpoint_prefix, self.manifest.shape, ranges)

    def check_files(self):
        """Raises CheckpointError if a checkpoint file is missing or not at its published size."""
        problems = []
        for name, size in sorted(self.manifest.files.items()):
            path = os.path.join(self.uri, name)
            if not tf.io.gfile.exists(path):
                problems.append(f"{name} is missing")
            elif tf.io.gfile.stat(path).length != size:
                problems.append(f"{name} has {tf.io.gfile.stat(path).length} bytes, {size} were "
                                f"published (truncated or replaced)")
        if problems:
            raise CheckpointError(f"{self.uri}: the checkpoint is damaged: " + "; ".join(problems))

    def check_vocabulary(self, vocabulary_path):
        """Raises CheckpointError unless vocabulary_path is byte for byte the artifact's
        vocabulary: otherwise its rows would not line up with the ids the model looks up."""
        object_storage.use(vocabulary_path)
        actual = file_sha256(vocabulary_path)
        expected = self.manifest.vocabulary_sha256
        if actual != expected:
            raise CheckpointError(
                f"{self.uri}: the embedding was built for another vocabulary than "
                f"{vocabulary_path} (sha256 {expected[:12]}... != {actual[:12]}...); its rows "
                f"would not line up with the token ids")

    def verify(self):
        """check_files, then every shard's rows against their published digest."""
        self.check_files()
        verify_shards(self.checkpoint_prefix, self.manifest.shape, self.manifest.shards)


def check_output(uri, timeout=20.0):
    """Raises CheckpointError, naming uri and the problem, where no artifact can be published:
    uri is a file, a file stands where one of its parent directories should be, or nothing
    can be created in it (a probe file is written there through tf.io.gfile, and removed,
    with the local directories made for it). A remote uri's check ends within timeout seconds
    (ObjectStorageError then: TensorFlow's S3 client, for one, retries a closed port for 51 s).
    """
    object_storage.use(uri)
    if not filesystems.is_local(uri):
        object_storage.run_bounded(
            lambda: _check_output(uri), uri, timeout,
            "TensorFlow's filesystem for it cannot reach the store: for s3://, tensorflow-io "
            "reads S3_ENDPOINT, S3_USE_HTTPS and the AWS_* variables, not Beam's options")
    else:
        _check_output(uri)


def _check_output(uri):
    made = []  # Local directories the probe makes, removed after it.
    if filesystems.is_local(uri):
        path = os.path.abspath(filesystems.local_path(uri))
        if os.path.exists(path) and not os.path.isdir(path):
            raise CheckpointError(f"{uri}: the output path is a file; an embedding artifact is "
                                  f"a directory: give the path of a directory (new or not)")
        parent, made = os.path.dirname(path), [path] if not os.path.exists(path) else []
        while not os.path.exists(parent):
            made.append(parent)
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise CheckpointError(f"{uri}: {parent} is a file, so no directory can be created "
                                  f"under it: give another output path")
    elif tf.io.gfile.exists(uri) and not tf.io.gfile.isdir(uri):
        raise CheckpointError(f"{uri}: the output path is an object (a file); an embedding "
                              f"artifact is a directory: give the path of a directory")
    probe = os.path.join(uri, f".write-probe-{uuid.uuid4().hex}")
    try:
        tf.io.gfile.makedirs(uri)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        reason = getattr(e, "message", None) or str(e)
        raise CheckpointError(f"{uri}: cannot be written ({type(e).__name__}: {reason}): give "
                              f"an output path this process may create files in") from None
    for directory in made:  # Innermost first.
        os.rmdir(directory)


def staging_dir(uri):
    """A fresh directory inside uri to build an artifact in; invisible as the artifact.

    The previous manifest (a rerun into the same place) and staging directories a killed run
    left are removed first, so nothing is ever taken for a whole artifact while it is rebuilt.
    """
    object_storage.use(uri)
    tf.io.gfile.makedirs(uri)
    manifest = os.path.join(uri, MANIFEST_FILE)
    if tf.io.gfile.exists(manifest):
        tf.io.gfile.remove(manifest)
    # An object store has no empty directories (makedirs may create nothing there).
    for name in tf.io.gfile.listdir(uri) if tf.io.gfile.isdir(uri) else ():
        if name.startswith(_STAGING_PREFIX):
            tf.io.gfile.rmtree(os.path.join(uri, name.rstrip("/")))
    path = os.path.join(uri, f"{_STAGING_PREFIX}{uuid.uuid4().hex}")
    tf.io.gfile.makedirs(path)
    return path


def publish(staging, uri, *, layout, vocabulary_path, vocabulary_has_counts, shards, has_vector,
            source=None, coverage=None, counts=None, trained_from=None, warm_start=None,
            token_ids=None):
    """Completes a staged artifact and publishes it in uri; returns its Manifest.

    staging (from `staging_dir`) already holds checkpoint/, verified. This writes the vocabulary
    copy, row keys, has_vector bits and projector files, then moves everything into place and
    writes the manifest last, atomically: a run killed before that leaves no manifest, which
    readers refuse and a rerun replaces. The only place a manifest is made.
    """
    tokens, _ = vocabulary_file.read_vocabulary(vocabulary_path, vocabulary_has_counts)
    if len(tokens) != layout.vocabulary_size:
        raise CheckpointError(f"{vocabulary_path}: {len(tokens)} tokens, the layout has "
                              f"{layout.vocabulary_size}")
    tf.io.gfile.copy(vocabulary_path, os.path.join(staging, VOCABULARY_FILE), overwrite=True)
    keys = layout.row_keys(0, layout.num_rows, tokens)
    with tf.io.gfile.GFile(os.path.join(staging, ROW_KEYS_FILE), "wb") as f:
        f.write(b"".join(key + b"\n" for key in keys))
    with tf.io.gfile.GFile(os.path.join(staging, HAS_VECTOR_FILE), "wb") as f:
        f.write(np.packbits(np.asarray(has_vector, bool)).tobytes())
    _write_projector(staging, keys, os.path.join(uri, CHECKPOINT_PREFIX))
    checkpoint_dir = os.path.join(staging, CHECKPOINT_DIR)
    manifest = Manifest(
        shape=_stored_shape(os.path.join(staging, CHECKPOINT_PREFIX), layout.num_rows),
        layout=layout, vocabulary_has_counts=vocabulary_has_counts,
        vocabulary_sha256=file_sha256(vocabulary_path), shards=tuple(shards),
        files={f"{CHECKPOINT_DIR}/{name}": tf.io.gfile.stat(os.path.join(checkpoint_dir,
                                                                          name)).length
               for name in sorted(tf.io.gfile.listdir(checkpoint_dir))},
        source=source, coverage=coverage, counts=counts, trained_from=trained_from,
        warm_start=warm_start, token_ids=token_ids)
    for name in tf.io.gfile.listdir(staging):
        name = name.rstrip("/")
        destination = os.path.join(uri, name)
        if tf.io.gfile.isdir(destination):
            tf.io.gfile.rmtree(destination)
        object_storage.move(os.path.join(staging, name), destination)  # Per object on s3://.
    object_storage.remove_tree(staging)
    temporary = os.path.join(uri, f".{MANIFEST_FILE}.tmp")
    with tf.io.gfile.GFile(temporary, "w") as f:
        json.dump(manifest.to_json(), f, indent=2, sort_keys=True)
    tf.io.gfile.rename(temporary, os.path.join(uri, MANIFEST_FILE), overwrite=True)
    return manifest


def _stored_shape(prefix, num_rows):
    shape = tf.train.load_checkpoint(prefix).get_variable_to_shape_map().get(TENSOR_NAME)
    if shape is None or len(shape) != 2 or shape[0] != num_rows:
        raise CheckpointError(f"{prefix}: tensor {TENSOR_NAME!r} has shape {shape}, the layout "
                              f"has {num_rows} rows")
    return tuple(shape)


def _write_projector(staging, row_keys, published_prefix):
    """TensorBoard projector files: a label per row, and a config pointing at the checkpoint
    where it will be published (TensorBoard takes that path as it is, not relative)."""
    directory = os.path.join(staging, PROJECTOR_DIR)
    tf.io.gfile.makedirs(directory)
    labels = (key[1:] if key.startswith(b"\x00") else key for key in row_keys)
    with tf.io.gfile.GFile(os.path.join(directory, "metadata.tsv"), "wb") as f:
        f.write(b"".join(label.replace(b"\t", b" ") + b"\n" for label in labels))
    with tf.io.gfile.GFile(os.path.join(directory, "projector_config.pbtxt"), "w") as f:
        f.write('model_checkpoint_path: "%s"\nembeddings {\n  tensor_name: "%s"\n'
                '  metadata_path: "metadata.tsv"\n}\n' % (published_prefix, TENSOR_NAME))

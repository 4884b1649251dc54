"""The Beam job behind EmbeddingGen: parse vector ranges in parallel, join, write row shards.

    byte ranges ─Reshuffle─> _ParseRange (vectors of vocabulary tokens only, in numpy batches,
    saved per shard their rows fall in; only the file names travel on) ─GroupByKey(shard)─>
    _WriteShard (initialize the shard's rows, lay the found vectors over them, SaveV2 the
    slice) ─> one report per shard

Matched vectors go through files in the work directory rather than through the shuffle: on
DirectRunner the shuffle holds everything it carries in the driver process, and the vectors are
the bulk of the job. The file names depend only on the range, so a retried bundle rewrites the
same files. The driver then merges and verifies the shards (checkpoint.merge_and_verify).
Nothing here depends on the runner: the same transform runs on DirectRunner, Dataflow, Flink or
Spark.
"""

import base64
import dataclasses
import hashlib
import io
import logging

import apache_beam as beam
import numpy as np
import tensorflow as tf

from components.embedding_gen import checkpoint, vectors
from components.embedding_gen.vocabulary import read_vocabulary

NAMESPACE = "embedding_gen"
# Matched vectors are saved once a range has gathered this many bytes of them.
_SAVE_BYTES = 32 << 20
RANGE_BYTES = 32 << 20


class _VocabularyDoFn(beam.DoFn):
    """Loads the vocabulary once per worker."""

    def __init__(self, vocabulary_path, has_counts):
        self._vocabulary_path = vocabulary_path
        self._has_counts = has_counts

    def setup(self):
        self._tokens, self._counts = read_vocabulary(self._vocabulary_path, self._has_counts)


class _ParseRange(_VocabularyDoFn):
    """Reads one byte range; emits (shard, file of MatchedRows), and digests as
    (start, sha256, rows read, invalid UTF-8 tokens replaced)."""

    def __init__(self, source, vocabulary_path, has_counts, layout, bounds, case_fold,
                 invalid_utf8, work_dir):
        super().__init__(vocabulary_path, has_counts)
        self._source, self._layout, self._bounds = source, layout, np.asarray(bounds)
        self._case_fold, self._invalid_utf8, self._work_dir = case_fold, invalid_utf8, work_dir
        self._rows_read = beam.metrics.Metrics.counter(NAMESPACE, "vector_rows_read")
        self._rows_matched = beam.metrics.Metrics.counter(NAMESPACE, "vector_rows_matched")
        self._replaced = beam.metrics.Metrics.counter(NAMESPACE, "invalid_utf8_replaced")

    def setup(self):
        super().setup()
        self._matcher = vectors.Matcher.for_vocabulary(
            self._tokens, self._layout.token_row, self._case_fold, self._invalid_utf8)

    def process(self, byte_range):
        start, end = byte_range
        digest = hashlib.sha256()
        pending, pending_bytes, saved, read, matched, replaced = [], 0, 0, 0, 0, 0
        for stats, rows in vectors.parse_range(self._source, start, end, self._matcher, digest):
            read += stats.rows_read
            matched += len(rows.rows)
            replaced += stats.invalid_utf8_replaced
            self._rows_read.inc(stats.rows_read)
            self._rows_matched.inc(len(rows.rows))
            self._replaced.inc(stats.invalid_utf8_replaced)
            if len(rows.rows):
                pending.append(rows)
                pending_bytes += rows.vectors.nbytes
            if pending_bytes >= _SAVE_BYTES:
                yield from self._save_by_shard(pending, f"{start:015d}-{saved:04d}")
                pending, pending_bytes, saved = [], 0, saved + 1
        yield from self._save_by_shard(pending, f"{start:015d}-{saved:04d}")
        yield beam.pvalue.TaggedOutput("digests", (start, digest.hexdigest(), read, replaced))
        logging.info("%s bytes [%d, %s): %d rows read, %d matched",
                     self._source.path, start, end if end >= 0 else "end", read, matched)

    def _save_by_shard(self, parts, name):
        if not parts:
            return
        fields = [np.concatenate([getattr(p, f.name) for p in parts])
                  for f in dataclasses.fields(vectors.MatchedRows)]
        shard_of = np.searchsorted(self._bounds, fields[0], side="right") - 1
        for shard in np.unique(shard_of):
            mask = shard_of == shard
            path = f"{self._work_dir}/matched/{name}-shard{shard:05d}.npz"
            _save_rows(path, vectors.MatchedRows(*(field[mask] for field in fields)))
            yield int(shard), path


def _save_rows(path, matched):
    buffer = io.BytesIO()
    np.savez(buffer, **dataclasses.asdict(matched))
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def _load_rows(path):
    with tf.io.gfile.GFile(path, "rb") as f:
        arrays = np.load(io.BytesIO(f.read()))
        return vectors.MatchedRows(**{name: arrays[name] for name in arrays.files})


class _WriteShard(_VocabularyDoFn):
    """Builds one shard's rows (found vectors over deterministic initial rows) and saves them."""

    def __init__(self, vocabulary_path, has_counts, layout, bounds, dimension, init_scale,
                 work_dir):
        super().__init__(vocabulary_path, has_counts)
        self._layout, self._bounds, self._dimension = layout, bounds, dimension
        self._init_scale, self._work_dir = init_scale, work_dir
        self._shards_written = beam.metrics.Metrics.counter(NAMESPACE, "shards_written")
        self._duplicates = beam.metrics.Metrics.counter(NAMESPACE, "duplicate_tokens")
        self._initialized = beam.metrics.Metrics.counter(NAMESPACE, "rows_initialized")
        self._case_folded = beam.metrics.Metrics.counter(NAMESPACE, "case_folded_matches")

    def process(self, shard_and_paths):
        shard, paths = shard_and_paths
        parts = [_load_rows(path) for path in sorted(p for p in paths if p is not None)]
        start, stop = self._bounds[shard], self._bounds[shard + 1]
        matrix = np.empty((stop - start, self._dimension), np.float32)
        found = np.zeros(0, np.int64)
        duplicates = case_folded = 0
        if parts:
            rows, offsets, folded, values = (
                np.concatenate([getattr(p, f.name) for p in parts])
                for f in dataclasses.fields(vectors.MatchedRows))
            # By row, exact before case-folded, then file order: the first one wins.
            order = np.lexsort((offsets, folded, rows))
            rows, folded, values = rows[order], folded[order], values[order]
            first = np.ones(len(rows), bool)
            first[1:] = rows[1:] != rows[:-1]
            found = rows[first]
            case_folded = int(folded[first].sum())
            duplicates = int((~folded).sum() - (len(found) - case_folded))
            matrix[found - start] = values[first]
        missing = np.setdiff1d(np.arange(start, stop), found)  # Initializer rows: those only.
        keys = self._layout.row_keys(start, stop, self._tokens)
        matrix[missing - start] = checkpoint.initial_rows(
            [keys[row - start] for row in missing], self._dimension, self._init_scale)
        if start == checkpoint.PADDING_ROW:
            matrix[0] = 0.0
        prefix = f"{self._work_dir}/shard-{shard:05d}/part"
        shape = (self._layout.num_rows, self._dimension)
        digest = checkpoint.write_slice(prefix, shape, start, matrix)
        token_rows = range(max(start, 1), min(stop, self._layout.vocabulary_size + 1))
        initialized = len(token_rows) - len(found)
        self._shards_written.inc()
        self._duplicates.inc(duplicates)
        self._initialized.inc(initialized)
        self._case_folded.inc(case_folded)
        logging.info("shard %d: rows [%d, %d) written, %d from vectors (%d case-folded), "
                     "%d initialized", shard, start, stop, len(found), case_folded, initialized)
        yield {
            "shard": shard, "start": int(start), "stop": int(stop), "prefix": prefix,
            "sha256": digest, "tokens_with_vector": int(len(found)),
            "rows_with_vector": base64.b64encode(np.packbits(
                np.isin(np.arange(start, stop), found))).decode(),
            "tokens_initialized": initialized, "duplicates": duplicates,
            "case_folded": case_folded,
            "token_count_with_vector": (
                int(sum(self._counts[r - 1] for r in found)) if self._counts else None),
        }


@beam.ptransform_fn
def WriteEmbeddingShards(pipeline, source, vocabulary_path, has_counts, layout, bounds,
                         init_scale, work_dir, case_fold=False, invalid_utf8="error"):
    """Returns (a report dict per shard written, a digest tuple per byte range).

    Byte ranges are found by a step of their own: for a binary file, that is a pass over it.
    """
    parsed = (
        pipeline
        | "Source" >> beam.Create([source])
        | "ByteRanges" >> beam.FlatMap(vectors.split_ranges, RANGE_BYTES)
        | "Distribute" >> beam.Reshuffle()
        | "ParseVectors" >> beam.ParDo(_ParseRange(
            source, vocabulary_path, has_counts, layout, bounds, case_fold, invalid_utf8,
            work_dir)).with_outputs("digests", main="matched"))
    every_shard = pipeline | "EveryShard" >> beam.Create(
        [(s, None) for s in range(len(bounds) - 1)])
    reports = (
        (parsed.matched, every_shard)
        | "WithEveryShard" >> beam.Flatten()
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(_WriteShard(
            vocabulary_path, has_counts, layout, bounds, source.dimension, init_scale,
            work_dir)))
    return reports, parsed.digests

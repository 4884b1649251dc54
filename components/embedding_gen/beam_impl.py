"""The Beam job behind EmbeddingGen: parse vector ranges in parallel, join, write row shards.

    byte ranges ─Reshuffle─> _ParseRange (vectors of vocabulary tokens only, in numpy batches,
    keyed by the shard their row falls in) ─GroupByKey(shard)─> _WriteShard (initialize the
    shard's rows, lay the found vectors over them, SaveV2 the slice) ─> one report per shard

The driver then merges and verifies the shards (checkpoint.merge_and_verify). Nothing here
depends on the runner: the same transform runs on DirectRunner, Dataflow, Flink or Spark.
"""

import base64
import hashlib
import logging

import apache_beam as beam
import numpy as np

from components.embedding_gen import checkpoint, vectors
from components.embedding_gen.vocabulary import read_vocabulary

_NAMESPACE = "embedding_gen"
# Matched vectors are sent on once a range has gathered this many bytes of them.
_EMIT_BYTES = 32 << 20
RANGE_BYTES = 32 << 20


class _VocabularyDoFn(beam.DoFn):
    """Loads the vocabulary once per worker."""

    def __init__(self, vocabulary_path, has_counts):
        self._vocabulary_path = vocabulary_path
        self._has_counts = has_counts

    def setup(self):
        self._tokens, self._counts = read_vocabulary(self._vocabulary_path, self._has_counts)


class _ParseRange(_VocabularyDoFn):
    """Reads one byte range; emits (shard, MatchedRows), and (start, sha256, rows) as digests."""

    def __init__(self, source, vocabulary_path, has_counts, layout, bounds):
        super().__init__(vocabulary_path, has_counts)
        self._source, self._layout, self._bounds = source, layout, np.asarray(bounds)
        self._rows_read = beam.metrics.Metrics.counter(_NAMESPACE, "vector_rows_read")
        self._rows_matched = beam.metrics.Metrics.counter(_NAMESPACE, "vector_rows_matched")

    def setup(self):
        super().setup()
        self._row_of = {t: self._layout.token_row(i) for i, t in enumerate(self._tokens)}

    def process(self, byte_range):
        start, end = byte_range
        digest = hashlib.sha256()
        pending, pending_bytes, read, matched = [], 0, 0, 0
        for lines, rows in vectors.parse_range(self._source, start, end, self._row_of, digest):
            read += lines
            matched += len(rows.rows)
            self._rows_read.inc(lines)
            self._rows_matched.inc(len(rows.rows))
            if len(rows.rows):
                pending.append(rows)
                pending_bytes += rows.vectors.nbytes
            if pending_bytes >= _EMIT_BYTES:
                yield from self._by_shard(pending)
                pending, pending_bytes = [], 0
        yield from self._by_shard(pending)
        yield beam.pvalue.TaggedOutput("digests", (start, digest.hexdigest(), read))
        logging.info("%s bytes [%d, %s): %d rows read, %d in the vocabulary",
                     self._source.path, start, end if end >= 0 else "end", read, matched)

    def _by_shard(self, parts):
        if not parts:
            return
        rows = np.concatenate([p.rows for p in parts])
        offsets = np.concatenate([p.offsets for p in parts])
        values = np.concatenate([p.vectors for p in parts])
        shard_of = np.searchsorted(self._bounds, rows, side="right") - 1
        for shard in np.unique(shard_of):
            mask = shard_of == shard
            yield int(shard), vectors.MatchedRows(rows[mask], offsets[mask], values[mask])


class _WriteShard(_VocabularyDoFn):
    """Builds one shard's rows (found vectors over deterministic initial rows) and saves them."""

    def __init__(self, vocabulary_path, has_counts, layout, bounds, dimension, init_scale,
                 work_dir):
        super().__init__(vocabulary_path, has_counts)
        self._layout, self._bounds, self._dimension = layout, bounds, dimension
        self._init_scale, self._work_dir = init_scale, work_dir
        self._shards_written = beam.metrics.Metrics.counter(_NAMESPACE, "shards_written")
        self._duplicates = beam.metrics.Metrics.counter(_NAMESPACE, "duplicate_tokens")
        self._initialized = beam.metrics.Metrics.counter(_NAMESPACE, "rows_initialized")

    def process(self, shard_and_parts):
        shard, parts = shard_and_parts
        parts = [p for p in parts if p is not None]
        start, stop = self._bounds[shard], self._bounds[shard + 1]
        matrix = checkpoint.initial_rows(self._layout.row_keys(start, stop, self._tokens),
                                         self._dimension, self._init_scale)
        found = np.zeros(0, np.int64)
        duplicates = 0
        if parts:
            rows = np.concatenate([p.rows for p in parts])
            offsets = np.concatenate([p.offsets for p in parts])
            values = np.concatenate([p.vectors for p in parts])
            order = np.lexsort((offsets, rows))  # By row, then file order: first one wins.
            rows, values = rows[order], values[order]
            first = np.ones(len(rows), bool)
            first[1:] = rows[1:] != rows[:-1]
            found = rows[first]
            duplicates = int(len(rows) - len(found))
            matrix[found - start] = values[first]
        prefix = f"{self._work_dir}/shard-{shard:05d}/part"
        shape = (self._layout.num_rows, self._dimension)
        digest = checkpoint.write_slice(prefix, shape, start, matrix)
        token_rows = range(max(start, 1), min(stop, self._layout.vocabulary_size + 1))
        initialized = len(token_rows) - len(found)
        self._shards_written.inc()
        self._duplicates.inc(duplicates)
        self._initialized.inc(initialized)
        logging.info("shard %d: rows [%d, %d) written, %d from vectors, %d initialized",
                     shard, start, stop, len(found), initialized)
        yield {
            "shard": shard, "start": int(start), "stop": int(stop), "prefix": prefix,
            "sha256": digest, "tokens_with_vector": int(len(found)),
            "rows_with_vector": base64.b64encode(np.packbits(
                np.isin(np.arange(start, stop), found))).decode(),
            "tokens_initialized": initialized, "duplicates": duplicates,
            "token_count_with_vector": (
                int(sum(self._counts[r - 1] for r in found)) if self._counts else None),
        }


@beam.ptransform_fn
def WriteEmbeddingShards(pipeline, source, vocabulary_path, has_counts, layout, bounds,
                         init_scale, work_dir):
    """Returns (a report dict per shard written, (start, sha256, rows read) per byte range)."""
    ranges = source.byte_ranges(RANGE_BYTES)
    parsed = (
        pipeline
        | "ByteRanges" >> beam.Create(ranges)
        | "Distribute" >> beam.Reshuffle()
        | "ParseVectors" >> beam.ParDo(
            _ParseRange(source, vocabulary_path, has_counts, layout, bounds)
        ).with_outputs("digests", main="matched"))
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

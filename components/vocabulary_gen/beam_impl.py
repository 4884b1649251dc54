"""The Beam job behind VocabularyGen: tft.vocabulary's file, counted where the documents are.

    documents ─_CountTokens─> (shard, Arrow table of distinct tokens and counts) per bundle, shard
              ─CombinePerKey(shard): sum, rank (threshold, top_k within the shard)
              ─CombineGlobally: merge the shards' ranked tables, keep top_k─> _write

tft.vocabulary sends every token occurrence through the shuffle (11M elements for 100k documents).
Here each bundle tokenizes its documents in batches and counts them in Arrow (hash aggregation in
C++, no Python object per occurrence); only distinct tokens cross the shuffle, split by a stable
hash into shards that are summed and ranked in parallel. With a `tokenizer.Tokenizer`, documents
in plain ASCII are tokenized by Arrow's kernels and the rest by its TensorFlow function; any other
tokenize_fn is TensorFlow's for all. Memory is bounded by the number of distinct tokens: a
bundle's counts, a shard's sum, and top_k entries (or the whole vocabulary without top_k) where
the ranked shards meet to be written. TensorFlow is imported only by a worker that needs it.
"""

import zlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms import window
from tfx_bsl.coders import example_coder

from tfx_embeddings.components import progress, vocabulary_file
from tfx_embeddings.components.vocabulary_gen import tokenizer

NAMESPACE = "vocabulary_gen"
NUM_SHARDS = 8
BATCH_SIZE = 1024  # Documents per tokenization call,
BATCH_BYTES = 32 << 20  # or fewer if they hold this much text.
MERGE_ROWS = 1 << 20  # Counts pending in a table list before they are summed.
_SCHEMA = pa.schema([("token", pa.binary()), ("count", pa.int64())])
_RANK_ORDER = [("count", "descending"), ("token", "descending")]  # tft's: ties by token bytes.


class _Counts:
    """Token counts as Arrow tables, summed whenever the pending rows outgrow the summed ones."""

    def __init__(self, tables=()):
        self._tables, self._rows, self._summed_rows = [], 0, 0
        for table in tables:
            self.add(table)

    def add(self, table):
        self._tables.append(table)
        self._rows += table.num_rows
        if self._rows > max(MERGE_ROWS, 2 * self._summed_rows):
            self.table()

    def table(self):
        """All counts, one row per distinct token."""
        if len(self._tables) != 1:
            summed = pa.concat_tables(self._tables or [_SCHEMA.empty_table()]).group_by(
                "token").aggregate([("count", "sum")])
            self._tables = [pa.table([summed["token"], summed["count_sum"]], schema=_SCHEMA)]
        self._rows = self._summed_rows = self._tables[0].num_rows
        return self._tables[0]


class _CountTokens(beam.DoFn):
    """Counts a bundle's tokens; emits (shard, counts) per shard when the bundle ends."""

    def __init__(self, tokenize_fn, max_tokens_per_document, num_shards, batch_size):
        self._tokenize_fn = tokenize_fn
        self._max_tokens = max_tokens_per_document
        self._num_shards, self._batch_size = num_shards, batch_size
        self._documents = beam.metrics.Metrics.counter(NAMESPACE, "documents")
        self._tensorflow_documents = beam.metrics.Metrics.counter(
            NAMESPACE, "documents_tokenized_by_tensorflow")
        self._tokens = beam.metrics.Metrics.counter(NAMESPACE, "tokens")

    def start_bundle(self):
        self._batch, self._batch_bytes, self._counts = [], 0, _Counts()
        self._bundle_documents = self._bundle_tokens = 0

    def process(self, document):
        if isinstance(document, str):
            document = document.encode()
        self._batch.append(document)
        self._batch_bytes += len(document)
        if len(self._batch) >= self._batch_size or self._batch_bytes >= BATCH_BYTES:
            self._count_batch()

    def finish_bundle(self):
        self._count_batch()
        counts = self._counts.table()
        self._counts = None
        counts = counts.filter(vocabulary_file.countable(counts["token"]))
        progress.report("a bundle of %d documents counted: %d tokens, %d distinct",
                     self._bundle_documents, self._bundle_tokens, counts.num_rows)
        shards = np.fromiter((zlib.crc32(t) for t in counts["token"].to_pylist()), np.int64,
                             counts.num_rows) % self._num_shards
        for shard in np.unique(shards):
            yield window.GlobalWindows.windowed_value(
                (int(shard), counts.filter(pa.array(shards == shard))))

    def _count_batch(self):
        documents, self._batch, self._batch_bytes = self._batch, [], 0
        if not documents:
            return
        plain, other = [], []
        if isinstance(self._tokenize_fn, tokenizer.Tokenizer):
            for document in documents:
                (plain if tokenizer.is_plain_ascii(document) else other).append(document)
        else:
            other = documents
        if plain:
            self._add(self._tokenize_fn.tokenize_ascii(_large_strings(plain), self._max_tokens))
        if other:
            self._add(_tensorflow_tokens(self._tokenize_fn, other, self._max_tokens))
            self._tensorflow_documents.inc(len(other))
        self._documents.inc(len(documents))
        self._bundle_documents += len(documents)

    def _add(self, tokens):
        self._tokens.inc(len(tokens))
        self._bundle_tokens += len(tokens)
        counted = pc.value_counts(tokens)
        self._counts.add(pa.table([counted.field(0).cast(pa.binary()), counted.field(1)],
                                  schema=_SCHEMA))


def _large_strings(documents):
    """ASCII bytes objects as an Arrow large_string array, without a copy per document."""
    offsets = np.zeros(len(documents) + 1, np.int64)
    np.cumsum([len(d) for d in documents], out=offsets[1:])
    return pa.LargeStringArray.from_buffers(
        len(documents), pa.py_buffer(offsets), pa.py_buffer(b"".join(documents)))


def _tensorflow_tokens(tokenize_fn, documents, max_tokens):
    """The tokens tokenize_fn makes of documents (a ragged batch), as an Arrow binary array."""
    import tensorflow as tf  # Only where a document needs it.
    tokens = tokenize_fn(tf.constant(documents))
    if max_tokens is not None:
        tokens = tokens[:, :max_tokens]
    return pa.array(tokens.flat_values.numpy(), pa.binary())


class _SumAndRank(beam.CombineFn):
    """A shard's counts summed, then ranked: at or over the threshold, largest first, top_k."""

    def __init__(self, top_k, frequency_threshold):
        self._top_k, self._threshold = top_k, frequency_threshold

    def create_accumulator(self):
        return _Counts()

    def add_input(self, counts, table):
        counts.add(table)
        return counts

    def merge_accumulators(self, accumulators):
        return _Counts(counts.table() for counts in accumulators)

    def extract_output(self, counts):
        table = counts.table()
        if self._threshold:
            table = table.filter(pc.greater_equal(table["count"], self._threshold))
        return _rank(table, self._top_k)


class _MergeRanked(beam.CombineFn):
    """Merges ranked tables into one, cut to top_k: tft's Top.Of, shard-wise."""

    def __init__(self, top_k):
        self._top_k = top_k

    def create_accumulator(self):
        return _SCHEMA.empty_table()

    def add_input(self, ranked, more):
        return self.merge_accumulators([ranked, more])

    def merge_accumulators(self, tables):
        return _rank(pa.concat_tables(tables), self._top_k)

    def extract_output(self, ranked):
        return ranked


def _rank(table, top_k):
    """The rows largest first (count, then token bytes), at most top_k."""
    if top_k is not None and table.num_rows > top_k:
        table = table.take(pc.select_k_unstable(table, top_k, _RANK_ORDER))
    return table.sort_by(_RANK_ORDER)


def _write(ranked, path, top_k, reserved_tokens, store_frequency):
    """Writes the file and returns its number of lines."""
    lines = vocabulary_file.vocabulary_lines(
        list(zip(ranked["count"].to_pylist(), ranked["token"].to_pylist())), top_k=top_k,
        reserved_tokens=reserved_tokens, store_frequency=store_frequency)
    temporary = f"{path}.tmp"  # Readers never see a half-written file.
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(b"".join(lines))
    FileSystems.rename([temporary], [path])
    return len(lines)


class _DecodeDocuments(beam.DoFn):
    """Batches of serialized tf.Examples to the values of their bytes feature, one per element.

    Decoded by tfx_bsl's Arrow decoder (as TFX's own TFXIO does), so no TensorFlow is needed.
    """

    def __init__(self, feature, source):
        self._feature, self._source = feature, source

    def setup(self):
        self._decoder = example_coder.ExamplesToRecordBatchDecoder()

    def process(self, records):
        batch = self._decoder.DecodeBatch(records)
        index = batch.schema.get_field_index(self._feature)
        values = batch.column(index) if index >= 0 else None
        if (values is None or values.null_count
                or not pa.types.is_large_binary(values.type.value_type)):
            raise ValueError(f"{self._source}: an example has no bytes feature {self._feature!r}")
        return values.flatten().to_pylist()


@beam.ptransform_fn
def ReadDocuments(pipeline, file_pattern, feature):
    """The documents in TFRecord files of tf.Examples: each value of their bytes feature."""
    return (pipeline
            | "ReadExamples" >> beam.io.ReadFromTFRecord(file_pattern)
            | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE)
            | "Decode" >> beam.ParDo(_DecodeDocuments(feature, file_pattern)))


@beam.ptransform_fn
def WriteVocabulary(documents, path, tokenize_fn, *, top_k=None, frequency_threshold=None,
                    reserved_tokens=None, store_frequency=False, max_tokens_per_document=None,
                    num_shards=NUM_SHARDS, batch_size=BATCH_SIZE):
    """Writes to path the file tft.vocabulary writes for the tokens of documents (str or bytes).

    tokenize_fn maps a [batch] string tensor to a ragged [batch, None] tensor of tokens (a
    `tokenizer.Tokenizer` is one, and runs without TensorFlow where it can); only the first
    max_tokens_per_document tokens of a document count, if set. The other options are
    tft.vocabulary's. Returns a PCollection of one element, the number of lines written, once
    the file is in place.
    """
    if top_k is not None and top_k <= 0:
        raise ValueError(f"top_k must be positive or None, got {top_k}")
    if frequency_threshold is not None and frequency_threshold < 0:
        raise ValueError(f"frequency_threshold must be non-negative, got {frequency_threshold}")
    if max_tokens_per_document is not None and max_tokens_per_document <= 0:
        raise ValueError(f"max_tokens_per_document must be positive or None, got "
                         f"{max_tokens_per_document}")
    return (
        documents
        | "CountTokens" >> beam.ParDo(_CountTokens(tokenize_fn, max_tokens_per_document,
                                                   num_shards, batch_size))
        | "SumAndRankPerShard" >> beam.CombinePerKey(_SumAndRank(top_k, frequency_threshold))
        | "DropShard" >> beam.Values()
        | "MergeShards" >> beam.CombineGlobally(_MergeRanked(top_k))
        | "Write" >> beam.Map(_write, path, top_k, reserved_tokens, store_frequency))

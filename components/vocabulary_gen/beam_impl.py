"""The Beam job behind VocabularyGen: tft.vocabulary's file, counted where the documents are.

    documents ─_CountTokens─> (shard, Arrow table of distinct tokens and counts) per bundle, shard
              ─CombinePerKey(shard): sum, rank (threshold, top_k within the shard)
              ─CombineGlobally: merge the shards' ranked tables, keep top_k─> _write

tft.vocabulary sends every token occurrence through the shuffle (11M elements for 100k documents).
Here each bundle tokenizes its documents in batches and counts them in compiled code (no Python
object per occurrence); only distinct tokens cross the shuffle, split by a stable hash into
shards that are summed and ranked in parallel. With a `tokenizer.Tokenizer`, documents in plain
ASCII get the rules that must see the whole text from Arrow's kernels, their words are counted in
one pass over the bytes (`_word_counter.c`), and the rules that act within a word are applied
once per distinct word when the bundle ends; the other documents go through its TensorFlow
function, as do all with any other tokenize_fn (their tokens counted by Arrow's hashing).
Memory is bounded by the number of distinct tokens: a bundle's counts, a shard's sum, and top_k
entries (or the whole vocabulary without top_k) where the ranked shards meet to be written.
TensorFlow is imported only by a worker that needs it.
"""

import struct
import zlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms import window
from isal import igzip
from tfx_bsl.coders import example_coder

from .. import filesystems, progress, vocabulary_file
from . import _example_reader, _word_counter, tokenizer

NAMESPACE = "vocabulary_gen"
NUM_SHARDS = 8
BATCH_SIZE = 4096  # Documents per tokenization call,
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
            self._tables = [_summed(pa.concat_tables(self._tables or [_SCHEMA.empty_table()]))]
        self._rows = self._summed_rows = self._tables[0].num_rows
        return self._tables[0]


def _summed(table):
    """A table of tokens and counts with one row per distinct token."""
    summed = table.group_by("token").aggregate([("count", "sum")])
    return pa.table([summed["token"], summed["count_sum"]], schema=_SCHEMA)


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
        self._batch, self._batch_bytes = [], 0
        self._counts = _Counts()  # Of tokens,
        self._words = _word_counter.WordCounter()  # and of words not yet made tokens.
        self._bundle_documents = self._bundle_tokens = 0

    def process(self, element):
        """A document (str or bytes), or a batch of them (an Arrow array or a list)."""
        if isinstance(element, pa.Array):
            self._count_batch()
            self._count_arrow(element)
            return
        for document in element if isinstance(element, list) else [element]:
            if isinstance(document, str):
                document = document.encode()
            self._batch.append(document)
            self._batch_bytes += len(document)
            if len(self._batch) >= self._batch_size or self._batch_bytes >= BATCH_BYTES:
                self._count_batch()

    def finish_bundle(self):
        self._count_batch()
        if len(self._words):
            self._add_words_as_tokens()
        counts = self._counts.table()
        self._counts = self._words = None
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
            self._count_ascii(_large_strings(plain))
        if other:
            self._add(_tensorflow_tokens(self._tokenize_fn, other, self._max_tokens))
            self._tensorflow_documents.inc(len(other))
        self._documents.inc(len(documents))
        self._bundle_documents += len(documents)

    def _count_arrow(self, documents):
        """A batch of documents as an Arrow binary array, split plain ASCII / other in C++."""
        documents = documents.cast(pa.large_binary())
        if not len(documents):
            return
        if isinstance(self._tokenize_fn, tokenizer.Tokenizer):
            plain = tokenizer.plain_ascii_mask(documents)
        else:
            plain = np.zeros(len(documents), bool)
        if plain.any():
            ascii_only = documents if plain.all() else documents.filter(pa.array(plain))
            self._count_ascii(pa.Array.from_buffers(  # ASCII, checked: strings without a cast.
                pa.large_string(), len(ascii_only), ascii_only.buffers(), offset=ascii_only.offset))
        if not plain.all():
            other = documents.filter(pa.array(~plain)).to_pylist()
            self._add(_tensorflow_tokens(self._tokenize_fn, other, self._max_tokens))
            self._tensorflow_documents.inc(len(other))
        self._documents.inc(len(documents))
        self._bundle_documents += len(documents)

    def _count_ascii(self, documents):
        """Plain ASCII documents (an Arrow large_string array) by the Tokenizer's kernels."""
        if self._max_tokens is None:  # Words now, tokens when the bundle ends.
            prepared = self._tokenize_fn.prepare_ascii(documents)
            offsets = np.frombuffer(prepared.buffers()[1], np.int64)[
                prepared.offset:prepared.offset + len(prepared) + 1]
            self._words.add(prepared.buffers()[2] or b"", offsets)
        else:  # Which tokens are a document's first needs them all made here.
            self._add(self._tokenize_fn.tokenize_ascii(documents, self._max_tokens))

    def _add_words_as_tokens(self):
        data, offsets, counts = self._words.words()
        words = pa.Array.from_buffers(pa.large_string(), len(self._words),
                                      [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        tokens = self._tokenize_fn.finish_ascii(words)
        counts = pa.array(np.frombuffer(counts, np.int64))
        self._count_tokens(pc.sum(counts.filter(pc.greater(pc.binary_length(tokens), 0)))
                           .as_py() or 0)
        self._counts.add(_summed(pa.table([tokens.cast(pa.binary()), counts],
                                          schema=_SCHEMA)))  # Words that make one token.

    def _add(self, tokens):
        self._count_tokens(len(tokens))
        self._counts.add(_value_counts(tokens))

    def _count_tokens(self, number):
        self._tokens.inc(number)
        self._bundle_tokens += number


def _value_counts(values):
    """A table of the distinct values of an Arrow array (as binary) and their counts."""
    counted = pc.value_counts(values)
    return pa.table([counted.field(0).cast(pa.binary()), counted.field(1)], schema=_SCHEMA)


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


class _ReadExampleFile(beam.DoFn):
    """A TFRecord file of tf.Examples (gzip or not) to batches of the values of their bytes
    feature (Arrow arrays, one element per batch of BATCH_SIZE examples).

    The file is read whole, by one worker, with no Beam element per record and no Python object
    per record: compiled code finds the records by their length prefixes, checks them against
    their CRC-32C (as TensorFlow's reader does) and takes the feature's values out of each batch
    of Examples. A batch it cannot read as protobuf writes it is decoded by tfx_bsl's Arrow
    decoder, whose errors stand. No TensorFlow is needed.
    """

    def __init__(self, feature):
        self._feature = feature

    def setup(self):
        self._decoder = example_coder.ExamplesToRecordBatchDecoder()

    def process(self, path):
        for buffer, bounds in _tfrecords(path, BATCH_SIZE):
            for first in range(0, len(bounds), BATCH_SIZE):
                yield self._values(buffer, bounds[first:first + BATCH_SIZE], path)

    def _values(self, buffer, bounds, path):
        read = _example_reader.bytes_feature(buffer, bounds, self._feature)
        if read is not None:
            data, offsets = read
            return pa.Array.from_buffers(pa.large_binary(), len(offsets) // 8 - 1,
                                         [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        batch = self._decoder.DecodeBatch([buffer[start:end] for start, end in bounds.tolist()])
        index = batch.schema.get_field_index(self._feature)
        values = batch.column(index) if index >= 0 else None
        if (values is None or values.null_count
                or not pa.types.is_large_binary(values.type.value_type)):
            raise ValueError(f"{path}: an example has no bytes feature {self._feature!r}")
        return values.flatten()


_READ_BYTES = 8 << 20
_HEADER = 12  # A record: its length (8 bytes), their masked CRC (4), the data, its masked CRC (4).
_LENGTH = struct.Struct("<Q")


def _tfrecords(path, batch_size):
    """The records of a TFRecord file (gzip-compressed or not, by its first bytes), checked
    against their CRCs as TensorFlow's reader does, as pieces (buffer, bounds): bounds is an
    int64 array of the [start, end) of each record's data in buffer, batch_size records or a
    multiple of them, except in the last piece."""
    with filesystems.open_read(path) as raw:
        head = raw.read(2)
        raw.seek(0)
        stream = igzip.IGzipFile(fileobj=raw, mode="rb") if head == b"\x1f\x8b" else raw
        buffer, offset, wanted = b"", 0, _READ_BYTES  # offset: of the buffer in the file.
        while True:
            more = stream.read(wanted)
            buffer += more
            bounds, framed = _framed(buffer, path, offset)
            whole = len(bounds) if not more else len(bounds) // batch_size * batch_size
            if not more and framed < len(buffer):
                raise ValueError(f"{path}: truncated TFRecord at byte {offset + framed}")
            if whole:
                yield buffer, bounds[:whole]
            if not more:
                return
            used = framed if whole == len(bounds) else int(bounds[whole, 0]) - _HEADER
            buffer, offset = buffer[used:], offset + used
            wanted, incomplete = _READ_BYTES, framed - used
            if len(buffer) - incomplete >= _HEADER:  # A record longer than what was read.
                wanted = max(wanted, incomplete + _HEADER + 4
                             + _LENGTH.unpack_from(buffer, incomplete)[0] - len(buffer))


def _framed(buffer, path, offset):
    """The bounds of the whole records at the start of buffer (which is at offset in path), as
    an int64 array of pairs, and where they end; the first record that fails its CRC named
    (an incomplete record's length is checked too)."""
    bounds, framed, bad = _example_reader.frame(buffer)
    if bad:
        raise ValueError(f"{path}: corrupt TFRecord {bad} at byte {offset + framed}")
    return np.frombuffer(bounds, np.int64).reshape(-1, 2), framed


def _matching_files(pattern):
    matched = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in matched)


@beam.ptransform_fn
def ReadDocuments(pipeline, file_pattern, feature):
    """Batches of documents (Arrow arrays of bytes) from TFRecord files of tf.Examples: each
    value of their bytes feature. The files are read in parallel, each by one worker."""
    return (pipeline
            | "Pattern" >> beam.Create([file_pattern])
            | "Files" >> beam.FlatMap(_matching_files)
            | "Distribute" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadExampleFile(feature)))


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

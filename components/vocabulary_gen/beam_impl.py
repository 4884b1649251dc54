"""The Beam job behind VocabularyGen: tft.vocabulary's file, counted where the documents are.

    documents ─_CountTokens─> (shard, {token: count}) once per bundle and shard
              ─CombinePerKey(shard): sum─> _rank (threshold, top_k within the shard)
              ─CombineGlobally: merge the shards' ranked lists, keep top_k─> _write

tft.vocabulary sends every token occurrence through the shuffle (11M elements for 100k documents).
Here each bundle tokenizes its documents in batches, with the user's TensorFlow tokenize_fn (the
same function the Transform graph runs, so tokens are identical by construction), and counts them
in one table; only distinct tokens cross the shuffle, split by a stable hash into shards that are
summed and ranked in parallel. Memory is bounded by the number of distinct tokens: a bundle's
table, a shard's sum, and top_k entries (or the whole vocabulary without top_k) where the ranked
shards meet to be written.
"""

import collections
import heapq
import itertools
import zlib

import apache_beam as beam
import tensorflow as tf
from apache_beam.transforms import window

from components.vocabulary_gen import vocabulary

NUM_SHARDS = 8
BATCH_SIZE = 1024  # Documents per tokenize_fn call.


class _CountTokens(beam.DoFn):
    """Counts a bundle's tokens; emits (shard, {token: count}) per shard when the bundle ends.

    The counts live in a TensorFlow hash table: each batch is tokenized, reduced to distinct
    tokens and added in one graph call, so no Python object is made per token occurrence.
    """

    def __init__(self, tokenize_fn, max_tokens_per_document, num_shards, batch_size):
        self._tokenize_fn = tokenize_fn
        self._max_tokens = max_tokens_per_document
        self._num_shards, self._batch_size = num_shards, batch_size

    def setup(self):
        tokenize_fn, max_tokens = self._tokenize_fn, self._max_tokens
        table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def count(documents):
            tokens = tokenize_fn(documents)
            if max_tokens is not None:
                tokens = tokens[:, :max_tokens]
            distinct, _, counts = tf.unique_with_counts(tokens.flat_values, out_idx=tf.int64)
            table.insert(distinct, table.lookup(distinct) + counts)

        self._table, self._count = table, count

    def start_bundle(self):
        self._batch = []
        self._drain()  # A retried bundle must not add to a failed attempt's counts.

    def process(self, document):
        self._batch.append(document)
        if len(self._batch) >= self._batch_size:
            self._count_batch()

    def finish_bundle(self):
        self._count_batch()
        shards = [{} for _ in range(self._num_shards)]
        for token, count in zip(*self._drain()):
            if vocabulary.is_countable(token):
                shards[zlib.crc32(token) % self._num_shards][token] = count
        for shard, shard_counts in enumerate(shards):
            if shard_counts:
                yield window.GlobalWindows.windowed_value((shard, shard_counts))

    def _drain(self):
        """Empties the table; returns its (tokens, counts) as lists."""
        tokens, counts = self._table.export()
        self._table.remove(tokens)
        return tokens.numpy().tolist(), counts.numpy().tolist()

    def _count_batch(self):
        if self._batch:
            self._count(tf.constant(self._batch))
            self._batch = []


def _sum_counts(counts):
    total = collections.Counter()
    for part in counts:
        total.update(part)
    return total


def _rank(counts, top_k, frequency_threshold):
    """(count, token) pairs at or over the threshold, largest first, at most top_k."""
    pairs = ((count, token) for token, count in counts.items() if count >= frequency_threshold)
    return heapq.nlargest(top_k, pairs) if top_k is not None else sorted(pairs, reverse=True)


class _MergeRanked(beam.CombineFn):
    """Merges lists ranked largest first into one, cut to top_k: tft's Top.Of, shard-wise."""

    def __init__(self, top_k):
        self._top_k = top_k

    def create_accumulator(self):
        return []

    def add_input(self, ranked, more):
        return self.merge_accumulators([ranked, more])

    def merge_accumulators(self, lists):
        return list(itertools.islice(heapq.merge(*lists, reverse=True), self._top_k))

    def extract_output(self, ranked):
        return ranked


def _write(ranked, path, top_k, reserved_tokens, store_frequency):
    """Writes the file and returns its number of lines."""
    lines = vocabulary.vocabulary_lines(ranked, top_k=top_k, reserved_tokens=reserved_tokens,
                                        store_frequency=store_frequency)
    temporary = f"{path}.tmp"  # Readers never see a half-written file.
    with tf.io.gfile.GFile(temporary, "wb") as f:
        f.write(b"".join(lines))
    tf.io.gfile.rename(temporary, path, overwrite=True)
    return len(lines)


@beam.ptransform_fn
def WriteVocabulary(documents, path, tokenize_fn, *, top_k=None, frequency_threshold=None,
                    reserved_tokens=None, store_frequency=False, max_tokens_per_document=None,
                    num_shards=NUM_SHARDS, batch_size=BATCH_SIZE):
    """Writes to path the file tft.vocabulary writes for the tokens of documents (str or bytes).

    tokenize_fn maps a [batch] string tensor to a ragged [batch, None] tensor of tokens; only the
    first max_tokens_per_document tokens of a document count, if set. The other options are
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
        | "SumPerShard" >> beam.CombinePerKey(_sum_counts)
        | "RankPerShard" >> beam.MapTuple(
            lambda _, counts: _rank(counts, top_k, frequency_threshold or 0))
        | "MergeShards" >> beam.CombineGlobally(_MergeRanked(top_k))
        | "Write" >> beam.Map(_write, path, top_k, reserved_tokens, store_frequency))

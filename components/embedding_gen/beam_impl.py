"""The Beam job behind EmbeddingGen, as PTransforms a Beam user can compose (`build.py` runs
them; nothing here imports TensorFlow or TFX):

    ReadVectorRanges(source)          byte ranges (a compressed file: stripes of its chunks),
                                      spread over the workers
    | MatchVectors(source, plan)      vectors of vocabulary tokens only, parsed in numpy batches,
                                      saved per shard their rows fall in (only the file names
                                      travel on); a RangeReport per range, and the
                                      coverage hints of all ranges (MergeCoverageHints)
    .files | WriteShards(plan)        per shard (GroupByKey): initializer rows, the found vectors
                                      laid over them, the checkpoint slice written; a ShardReport

WriteEmbeddingShards is that whole job (WriteSubwordShards for a fastText .bin model); a
ShardPlan says which matrix it writes.

Matched vectors go through files in the work directory rather than through the shuffle: on
DirectRunner the shuffle holds everything it carries in the driver process, and the vectors are
the bulk of the job; what the runner keeps per range until a step ends (a RangeReport, a few
file names) is a few hundred bytes, so the job's memory does not grow with the file. The file
names depend only on the range, so a retried bundle rewrites the same files. The driver then
merges and verifies the shards (embedding_artifact.merge).
Nothing here depends on the runner: the same transform runs on DirectRunner, Dataflow, Flink or
Spark.
"""

import base64
import ctypes
import dataclasses
import functools
import hashlib
import io
import json
import os
import time
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import apache_beam as beam
import numpy as np
from apache_beam.utils import shared

from .. import embedding_artifact, filesystems, progress, vocabulary_file
from . import coverage, fasttext, vectors
from .parameters import EmbeddingGenParameters

NAMESPACE = "embedding_gen"
# The Beam counters, one per field of the manifest's Counts: the same names everywhere.
COUNTERS = {field.name: beam.metrics.Metrics.counter(NAMESPACE, field.name)
            for field in dataclasses.fields(embedding_artifact.Counts)}
# Tokens named per shard in the report's case-folded and duplicate lists.
_EXAMPLES = 10
# Matched vectors are saved once a range has gathered this many bytes of them (a worker holds
# them, and a copy while saving).
_SAVE_BYTES = 8 << 20
RANGE_BYTES = 32 << 20
_MAX_STRIPES = 8


@dataclasses.dataclass(frozen=True)
class RangeReport:
    """What one byte range of the vector file held; sha256 is the digest of its bytes."""
    start: int
    sha256: str
    vector_rows_read: int
    vector_rows_matched: int
    invalid_utf8_replaced: int
    vector_sum: Optional[List[float]] = None  # The sum of every row's vector (for "center").
    seconds: Dict[str, float] = dataclasses.field(default_factory=dict)  # By vectors.STAGES.


@dataclasses.dataclass(frozen=True)
class ShardReport:
    """What one shard's writer wrote: rows [start, stop) with their digest, in its checkpoint at
    prefix. has_vector: base64 of np.packbits of a bool per row (True: from the vector file)."""
    start: int
    stop: int
    sha256: str
    prefix: str
    has_vector: str
    tokens_with_vector: int
    tokens_initialized: int
    subword_vectors: int
    duplicate_tokens: int
    case_folded_matches: int
    corpus_tokens_with_vector: Optional[int]
    case_folded_examples: List[str]  # A few tokens that took a case-folded row,
    duplicate_examples: List[str]  # and a few with several rows in the file (for the report).
    seconds: float = 0.0  # Finding and laying out the shard's rows, and writing them.

    @property
    def shard(self):
        return embedding_artifact.Shard(self.start, self.stop, self.sha256)

    def has_vector_bits(self):
        return np.unpackbits(np.frombuffer(base64.b64decode(self.has_vector), np.uint8),
                             count=self.stop - self.start).astype(bool)


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """The matrix the job writes, and where its workers put their files.

    Attributes:
      vocabulary_path: the vocabulary file (tft's format): its line i is token i.
      vocabulary_has_counts: `count token` lines (True), or tokens only.
      layout: which row holds which token, the padding and the OOV buckets (RowLayout).
      bounds: the shards' row boundaries (embedding_artifact.shard_bounds): shard k holds rows
        [bounds[k], bounds[k + 1]).
      dimension: the vectors' dimension.
      work_dir: a directory of the job's own, for the matched vectors and each shard's
        checkpoint (embedding_artifact.merge turns those into one).
    """
    vocabulary_path: str
    vocabulary_has_counts: bool
    layout: embedding_artifact.RowLayout
    bounds: Tuple[int, ...]
    dimension: int
    work_dir: str

    def __post_init__(self):
        object.__setattr__(self, "bounds", tuple(int(b) for b in self.bounds))

    @property
    def num_shards(self):
        return len(self.bounds) - 1


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def initial_rows(keys, dimension, scale):
    """Deterministic U(-scale, scale) rows, one per row key (RowLayout.row_keys).

    The values depend only on the key bytes (a counter-based splitmix64 stream seeded by the
    key's hash), never on the worker or the order, so every run and runner writes the same rows.
    Computed a few rows at a time: the 64-bit intermediates stay about a MB.
    """
    rows = np.empty((len(keys), dimension), np.float32)
    step = max(1, (1 << 17) // max(1, dimension))
    for start in range(0, len(keys), step):
        rows[start:start + step] = _initial_rows(keys[start:start + step], dimension, scale)
    return rows


def _initial_rows(keys, dimension, scale):
    seeds = np.array([int.from_bytes(hashlib.blake2b(k, digest_size=8).digest(), "little")
                      for k in keys], dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = seeds[:, None] + np.arange(1, dimension + 1, dtype=np.uint64)[None, :] * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    unit = (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return ((2.0 * unit - 1.0) * scale).astype(np.float32)


def _count(name, value):
    COUNTERS[name].inc(value)


def release_free_memory():
    """Gives the heap's free pages back to the operating system (glibc's malloc_trim; nothing
    elsewhere). Parsing frees its blocks as it goes, but glibc keeps freed memory of its
    per-thread arenas mapped; the next phase (writing shards, verifying them) would then add
    its arrays on top of it. Called between phases: a few milliseconds."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # Not glibc.
        return None


class _Loaded:
    """What a DoFn loads in its setup (the vocabulary and what is built from it)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


class _VocabularyDoFn(beam.DoFn):
    """Loads the vocabulary once per worker process: the DoFn instances of its threads (the
    runner's multi_threading mode) share one copy (apache_beam.utils.shared). Subclasses add
    what they build from it in _load."""

    def __init__(self, vocabulary_path, has_counts):
        self._vocabulary_path = vocabulary_path
        self._has_counts = has_counts
        self._shared = shared.Shared()

    def setup(self):
        self._loaded = self._shared.acquire(self._load)
        self._tokens, self._counts = self._loaded.tokens, self._loaded.counts

    def _load(self):
        tokens, counts = vocabulary_file.read_vocabulary(self._vocabulary_path, self._has_counts)
        return _Loaded(tokens=tokens, counts=counts)


class _ParseRange(_VocabularyDoFn):
    """Reads one byte range; emits (shard, file of MatchedRows), and a RangeReport on the
    "ranges" output."""

    def __init__(self, source, plan, case_fold=False, invalid_utf8="error",
                 unicode_normalization=None, sum_rows=False):
        super().__init__(plan.vocabulary_path, plan.vocabulary_has_counts)
        self._source, self._layout, self._bounds = source, plan.layout, np.asarray(plan.bounds)
        self._case_fold, self._invalid_utf8 = case_fold, invalid_utf8
        self._unicode_normalization = unicode_normalization
        self._work_dir = plan.work_dir
        self._sum_rows = sum_rows  # Every row's values parsed and summed (for "center").

    def _load(self):
        loaded = super()._load()
        loaded.matcher = vectors.Matcher.for_vocabulary(
            loaded.tokens, self._layout.token_row, self._case_fold, self._invalid_utf8,
            self._unicode_normalization)
        loaded.hints = coverage.Hints(loaded.tokens, self._unicode_normalization)
        return loaded

    def setup(self):
        super().setup()
        self._matcher, self._hints = self._loaded.matcher, self._loaded.hints

    def process(self, byte_range):
        if not isinstance(byte_range, vectors.Stripe):
            yield from self._parse(byte_range)
            return
        chunks, clock = vectors.stripe_ranges(self._source, byte_range), time.perf_counter()
        for chunk in chunks:  # Reading a chunk includes inflating the others' before it.
            yield from self._parse(chunk, time.perf_counter() - clock)
            clock = time.perf_counter()

    def _parse(self, byte_range, inflating=0.0):
        start, end, _ = byte_range
        digest = hashlib.sha256()
        pending, pending_bytes, saved, read, matched, replaced = [], 0, 0, 0, 0, 0
        seconds = {**dict.fromkeys(vectors.STAGES, 0.0), "read": inflating}
        total = np.zeros(self._source.dimension) if self._sum_rows else None
        marks, punctuation = self._hints.new_marks(), set()
        for stats, rows in vectors.parse_range(
                self._source, byte_range, self._matcher, digest, total,
                observe=lambda tokens: self._hints.mark(tokens, marks, punctuation)):
            seconds = {stage: seconds[stage] + stats.seconds[stage] for stage in seconds}
            read += stats.rows_read
            matched += len(rows.rows)
            replaced += stats.invalid_utf8_replaced
            _count("vector_rows_read", stats.rows_read)
            _count("vector_rows_matched", len(rows.rows))
            _count("invalid_utf8_replaced", stats.invalid_utf8_replaced)
            if len(rows.rows):
                pending.append(rows)
                pending_bytes += rows.vectors.nbytes
            if pending_bytes >= _SAVE_BYTES:
                yield from self._save_by_shard(pending, f"{start:015d}-{saved:04d}")
                pending, pending_bytes, saved = [], 0, saved + 1
        yield from self._save_by_shard(pending, f"{start:015d}-{saved:04d}")
        yield beam.pvalue.TaggedOutput("ranges", RangeReport(
            start, digest.hexdigest(), read, matched, replaced,
            total.tolist() if total is not None else None, seconds))
        yield beam.pvalue.TaggedOutput("hints", (marks, punctuation))
        progress.report("%s bytes [%d, %s): %d rows read, %d matched",
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


def write_reports(reports, path):
    """Writes a list of RangeReports, ShardReports (or JSON values) as JSON (in a worker: no
    TensorFlow)."""
    filesystems.write_bytes(path, json.dumps([
        dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r for r in reports]).encode())


def _save_rows(path, matched):
    buffer = io.BytesIO()
    np.savez(buffer, **dataclasses.asdict(matched))
    filesystems.write_bytes(path, buffer.getvalue())


def _load_fields(path, names):
    """The arrays of the named fields of the MatchedRows saved at path."""
    arrays = np.load(io.BytesIO(filesystems.read_bytes(path)))
    return [arrays[name] for name in names]


@dataclasses.dataclass
class _Found:
    """A shard's rows that have a vector from the file: their rows, vectors, and how found."""
    rows: np.ndarray  # int64, sorted.
    # The vectors, in parts: (positions in rows, float32 [len(positions), dimension]) pairs,
    # iterated once (a part may be read only then).
    values: Iterable
    folded: np.ndarray  # bool: matched by its case-folded token.
    subword: np.ndarray  # bool: computed by a fastText model from n-grams alone.
    duplicates: int = 0  # Matched file rows ignored: an earlier row of the token won.
    duplicate_rows: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, int))


class _WriteShard(_VocabularyDoFn):
    """Builds one shard's rows (found vectors, normalized, over deterministic initial rows) and
    saves them. Subclasses find the vectors; this one from the files _ParseRange saved."""

    def __init__(self, plan, init_scale, normalization=()):
        super().__init__(plan.vocabulary_path, plan.vocabulary_has_counts)
        self._layout, self._bounds, self._dimension = plan.layout, plan.bounds, plan.dimension
        self._init_scale, self._work_dir = init_scale, plan.work_dir
        self._normalization = tuple(normalization)

    def process(self, element, mean=None):
        release_free_memory()  # What parsing freed, before this shard's arrays are made.
        clock = time.perf_counter()
        shard = element[0]
        start, stop = self._bounds[shard], self._bounds[shard + 1]
        found = self._find(element, start, stop)
        yield from self._write(shard, start, stop, found, mean, clock)

    def _find(self, element, start, stop):
        """The winning vector of each row: the matched rows' keys are read first, then only
        the winners' vectors, one saved part at a time (a shard's vectors are held once)."""
        _, paths = element
        paths = sorted(p for p in paths if p is not None)
        keys = [_load_fields(path, ("rows", "offsets", "folded")) for path in paths]
        if not keys:
            return _Found(np.zeros(0, int), [], np.zeros(0, bool), np.zeros(0, bool))
        rows, offsets, folded = (np.concatenate(field) for field in zip(*keys))
        # By row, exact before case-folded, then file order: the first one wins.
        order = np.lexsort((offsets, folded, rows))
        rows, folded = rows[order], folded[order]
        first = np.ones(len(rows), bool)
        first[1:] = rows[1:] != rows[:-1]
        exact, times = np.unique(rows[~folded], return_counts=True)
        winners = order[first]  # Indices into the parts' rows, in turn.
        part_starts = np.cumsum([0] + [len(part_rows) for part_rows, _, _ in keys])

        def values():  # Each part's winning vectors, read when the shard is laid out.
            for path, part_start, part_stop in zip(paths, part_starts, part_starts[1:]):
                mine = np.flatnonzero((winners >= part_start) & (winners < part_stop))
                if len(mine):
                    yield mine, _load_fields(path, ("vectors",))[0][winners[mine] - part_start]

        return _Found(rows[first], values(), folded[first], np.zeros(first.sum(), bool),
                      duplicates=int((~folded).sum() - (~folded[first]).sum()),
                      duplicate_rows=exact[times > 1])

    def _write(self, shard, start, stop, found, mean, clock):
        matrix = np.empty((stop - start, self._dimension), np.float32)
        for positions, values in found.values:
            matrix[found.rows[positions] - start] = normalize(values, self._normalization, mean)
        missing = np.setdiff1d(np.arange(start, stop), found.rows)  # Initializer rows only.
        keys = self._layout.row_keys(start, stop, self._tokens)
        matrix[missing - start] = initial_rows(
            [keys[row - start] for row in missing], self._dimension, self._init_scale)
        if self._layout.padding_row is not None and start <= self._layout.padding_row < stop:
            matrix[self._layout.padding_row - start] = 0.0
        prefix = f"{self._work_dir}/shard-{shard:05d}/part"
        digest = embedding_artifact.write_rows(prefix, (self._layout.num_rows, self._dimension),
                                               start, matrix)
        first_token = self._layout.first_token_row
        token_rows = range(max(start, first_token),
                           min(stop, first_token + self._layout.vocabulary_size))
        words = found.rows[~found.subword]
        initialized = len(token_rows) - len(found.rows)
        case_folded, subword = int(found.folded.sum()), int(found.subword.sum())
        for name, value in (("shards_written", 1), ("duplicate_tokens", found.duplicates),
                            ("tokens_initialized", initialized),
                            ("case_folded_matches", case_folded), ("subword_vectors", subword)):
            _count(name, value)
        progress.report("shard %d: rows [%d, %d) written, %d from vectors (%d case-folded, %d "
                        "from subwords), %d initialized", shard, start, stop, len(found.rows),
                        case_folded, subword, initialized)
        yield ShardReport(
            start=int(start), stop=int(stop), sha256=digest, prefix=prefix,
            has_vector=base64.b64encode(np.packbits(
                np.isin(np.arange(start, stop), found.rows))).decode(),
            tokens_with_vector=int(len(words)), tokens_initialized=initialized,
            subword_vectors=subword, duplicate_tokens=found.duplicates,
            case_folded_matches=case_folded,
            corpus_tokens_with_vector=(int(sum(self._counts[r - first_token] for r in words))
                                       if self._counts else None),
            case_folded_examples=[self._token_text(r)
                                  for r in found.rows[found.folded][:_EXAMPLES]],
            duplicate_examples=[self._token_text(r) for r in found.duplicate_rows[:_EXAMPLES]],
            seconds=time.perf_counter() - clock)

    def _token_text(self, row):
        return self._tokens[row - self._layout.first_token_row].decode("utf-8", "replace")


def normalize(values, steps, mean=None):
    """The vectors after each step in order: "center" subtracts mean (the file's), "l2" scales
    each row to unit length (an all-zero row stays zero)."""
    for step in steps:
        if step == "center":
            values = values - np.asarray(mean, np.float32)
        elif step == "l2":
            norms = np.linalg.norm(values, axis=1, keepdims=True)
            values = values / np.where(norms > 0, norms, np.float32(1))
    return values.astype(np.float32, copy=False)


class _WriteSubwordShard(_WriteShard):
    """A shard from a fastText .bin model: each token's vector as fastText computes it (its word
    row and n-gram rows averaged, or its n-gram rows alone), reading only the rows it needs.
    Also emits a RangeReport (the digest of the rows read) on the "ranges" output."""

    def __init__(self, source, matches_path, plan, init_scale, normalization=(),
                 unicode_normalization=None):
        super().__init__(plan, init_scale, normalization)
        self._source, self._matches_path = source, matches_path
        self._unicode_normalization = unicode_normalization

    def _load(self):
        loaded = super()._load()
        # A token's n-grams are taken in the form it was matched in.
        loaded.normalized = vectors.normalize_vocabulary(loaded.tokens,
                                                         self._unicode_normalization)
        matches = np.load(io.BytesIO(filesystems.read_bytes(self._matches_path)))
        loaded.word_ids, loaded.folded = matches["word_ids"], matches["folded"]
        loaded.folded_words = dict(zip(matches["folded_index"].tolist(),
                                       matches["folded_words"].tolist()))
        return loaded

    def setup(self):
        super().setup()
        self._word_ids, self._folded = self._loaded.word_ids, self._loaded.folded
        self._folded_words = self._loaded.folded_words
        self._normalized = self._loaded.normalized

    def process(self, shard, mean=None):
        clock = time.perf_counter()
        vectors.check_unchanged(self._source)
        start, stop = self._bounds[shard], self._bounds[shard + 1]
        first = self._layout.first_token_row
        indices = np.arange(max(start, first),
                            min(stop, first + self._layout.vocabulary_size)) - first
        # A case-folded match takes its file word's vector: that word's n-grams.
        tokens = [self._folded_words.get(i, self._normalized[i]) for i in indices.tolist()]
        values, has_vector, subword, digest = fasttext.token_vectors(
            self._source.location.file, self._source.fasttext_model, tokens,
            self._word_ids[indices])
        found = _Found(indices[has_vector] + first,
                       [(np.arange(int(has_vector.sum())), values[has_vector])],
                       self._folded[indices][has_vector], subword[has_vector])
        yield from self._write(shard, start, stop, found, mean, clock)
        yield beam.pvalue.TaggedOutput("ranges", RangeReport(
            int(start), digest, 0, int((self._word_ids[indices] >= 0).sum()), 0))


def stripe_count(options):
    """How many workers share a compressed vector file (vectors.Stripe): the job's parallelism
    as its options give it (DirectRunner's direct_num_workers, 0 meaning every core; else
    parallelism, num_workers or max_num_workers), 2 if none does, at most _MAX_STRIPES: each
    stripe inflates the whole stream."""
    given = options.get_all_options(drop_default=True)
    if any(name in str(given.get("runner") or "DirectRunner")
           for name in ("Direct", "FnApi", "BundleBased")):
        workers = given.get("direct_num_workers", 1) or os.cpu_count()
    else:
        workers = (given.get("parallelism") or given.get("num_workers")
                   or given.get("max_num_workers") or 2)
    return max(1, min(int(workers), _MAX_STRIPES))


class MatchedVectors(NamedTuple):
    """MatchVectors' outputs."""
    files: beam.PCollection  # (shard, file of the vectors.MatchedRows for it) pairs.
    ranges: beam.PCollection  # One RangeReport per byte range read.
    hints: beam.PCollection  # One element: MergeCoverageHints' output.


class MergeCoverageHints(beam.CombineFn):
    """Joins the coverage hints' marks of every range (coverage.Hints.mark: which vocabulary
    tokens a cheap change would match) and the punctuation their tokens hold. As a combine,
    Beam folds them as they are made, in the step that parses: a job holds one set of marks
    per bundle, not one per range (each a bit per vocabulary token, per change), whatever the
    file's length. Output: {"marks": {change: coverage.pack(mask)}, "punctuation": str}."""

    def create_accumulator(self):
        return {}, set()

    def add_input(self, accumulator, element):
        marks, punctuation = accumulator
        for name, mask in element[0].items():
            if name in marks:
                marks[name] |= mask
            else:
                marks[name] = np.array(mask, bool)
        punctuation.update(element[1])
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        marks, punctuation = accumulator
        return {"marks": {name: coverage.pack(mask) for name, mask in marks.items()},
                "punctuation": bytes(sorted(punctuation)).decode("ascii")}


class EmbeddingShards(NamedTuple):
    """WriteEmbeddingShards' outputs."""
    shards: beam.PCollection  # A ShardReport per shard.
    ranges: beam.PCollection  # A RangeReport per byte range (per shard: a fastText model).
    hints: Optional[beam.PCollection]  # MergeCoverageHints' output (None: a fastText model,
    # whose dictionary the driver matches).


class ReadVectorRanges(beam.PTransform):
    """The byte ranges of a vector file's body (a compressed stream: its Stripes), spread over
    the workers.

    Finding them is a step of its own: for a binary file, one sequential pass over its records.

    Args:
      source: the file, as vectors.inspect_source found it (not a fastText .bin model).
      range_bytes: about this many bytes a range (default RANGE_BYTES).
      stripes: workers sharing a compressed stream (default: the job's parallelism,
        stripe_count).
    """

    def __init__(self, source: vectors.VectorSource, range_bytes: Optional[int] = None,
                 stripes: Optional[int] = None):
        super().__init__()
        self._source, self._range_bytes, self._stripes = source, range_bytes, stripes

    def expand(self, pbegin: beam.pvalue.PBegin
               ) -> beam.PCollection[Union[vectors.ByteRange, vectors.Stripe]]:
        stripes = self._stripes or stripe_count(pbegin.pipeline.options)
        return (pbegin
                | "Source" >> beam.Create([self._source])
                | "ByteRanges" >> beam.FlatMap(vectors.split_ranges,
                                               self._range_bytes or RANGE_BYTES, stripes)
                | "Distribute" >> beam.Reshuffle())


class MatchVectors(beam.PTransform):
    """Parses byte ranges, keeping the vectors of vocabulary tokens only, saved per shard in
    plan.work_dir (only the file names travel on).

    Args:
      source: the vector file (vectors.inspect_source).
      plan: the matrix (its vocabulary, layout and shards).
      case_fold: a token without an exact match takes a case-folded one (marked as such).
      invalid_utf8: "error" or "replace" (EmbeddingGenParameters.invalid_utf8).
      unicode_normalization: None, "NFC" or "NFKC": the form both sides' tokens are matched
        in.
      sum_rows: every row's values parsed, and summed in each RangeReport (for "center").

    Returns:
      MatchedVectors: (shard, file) pairs, a RangeReport per range, and the coverage hints of
      them all (MergeCoverageHints).
    """

    def __init__(self, source: vectors.VectorSource, plan: ShardPlan, *, case_fold: bool = False,
                 invalid_utf8: str = "error", unicode_normalization: Optional[str] = None,
                 sum_rows: bool = False):
        super().__init__()
        self._parse = _ParseRange(source, plan, case_fold, invalid_utf8, unicode_normalization,
                                  sum_rows)

    # Returns MatchedVectors: Beam's type hints only describe one PCollection's elements.
    def expand(self, ranges: beam.PCollection[Union[vectors.ByteRange, vectors.Stripe]]):
        parsed = ranges | "ParseVectors" >> beam.ParDo(self._parse).with_outputs(
            "ranges", "hints", main="files")
        hints = parsed.hints | "MergeHints" >> beam.CombineGlobally(MergeCoverageHints())
        return MatchedVectors(parsed.files, parsed.ranges, hints)


class MeanVector(beam.PTransform):
    """The mean of every row of the file, from MatchVectors(sum_rows=True)'s RangeReports: a
    one-element PCollection (use it as beam.pvalue.AsSingleton)."""

    def __init__(self, dimension: int):
        super().__init__()
        self._dimension = dimension

    def expand(self, ranges: beam.PCollection[RangeReport]) -> beam.PCollection[np.ndarray]:
        dimension = self._dimension
        return (ranges
                | "RowSums" >> beam.Map(lambda r: (np.asarray(r.vector_sum),
                                                   r.vector_rows_read))
                | "SumRows" >> beam.CombineGlobally(lambda sums: (
                    sum((s for s, _ in sums), np.zeros(dimension)), sum(n for _, n in sums)))
                | "Mean" >> beam.MapTuple(lambda total, n: total / max(n, 1)))


class WriteShards(beam.PTransform):
    """Writes every shard of the plan: its rows from the matched vectors (the first in the file
    wins, an exact match before a case-folded one), the rest deterministic initializer rows,
    saved as the shard's checkpoint slice in plan.work_dir. A shard no file names is written
    too.

    Args:
      plan: the matrix.
      init_scale: initializer rows are U(-init_scale, init_scale), seeded by their row key.
      normalization: steps applied to the file's vectors ("center", "l2"), in order.
      mean: with "center": MeanVector's output.

    Returns:
      A ShardReport per shard.
    """

    def __init__(self, plan: ShardPlan, *, init_scale: float = 0.05,
                 normalization: Sequence[str] = (),
                 mean: Optional[beam.PCollection[np.ndarray]] = None):
        super().__init__()
        self._plan, self._init_scale = plan, init_scale
        self._normalization, self._mean = tuple(normalization), mean

    def expand(self, files: beam.PCollection[Tuple[int, str]]
               ) -> beam.PCollection[ShardReport]:
        every_shard = files.pipeline | "EveryShard" >> beam.Create(
            [(shard, None) for shard in range(self._plan.num_shards)])
        mean = beam.pvalue.AsSingleton(self._mean) if self._mean is not None else None
        return ((files, every_shard)
                | "WithEveryShard" >> beam.Flatten()
                | "GroupByShard" >> beam.GroupByKey()
                | "WriteShards" >> beam.ParDo(_WriteShard(self._plan, self._init_scale,
                                                          self._normalization), mean=mean))


class WriteSubwordShards(beam.PTransform):
    """Writes every shard from a fastText .bin model: each token's vector as fastText computes
    it (its word, or its character n-grams alone), each shard's writer reading only the rows it
    needs.

    Args:
      source: the model (vectors.inspect_source).
      plan: the matrix.
      matches_path: the vocabulary's word ids in the model's dictionary, matched once by the
        driver (build's _Job._match_fasttext).
      init_scale, normalization: as WriteShards'.
      unicode_normalization: the form the driver matched tokens in (their n-grams are taken
        in it).

    Returns:
      (a ShardReport per shard, a RangeReport per shard: the digest of the rows it read).
    """

    def __init__(self, source: vectors.VectorSource, plan: ShardPlan, matches_path: str, *,
                 init_scale: float = 0.05, normalization: Sequence[str] = (),
                 unicode_normalization: Optional[str] = None):
        super().__init__()
        self._write = _WriteSubwordShard(source, matches_path, plan, init_scale,
                                         tuple(normalization), unicode_normalization)
        self._num_shards = plan.num_shards

    def expand(self, pbegin: beam.pvalue.PBegin):  # (ShardReports, RangeReports)
        written = (pbegin
                   | "Shards" >> beam.Create(list(range(self._num_shards)))
                   | "Distribute" >> beam.Reshuffle()
                   | "WriteShards" >> beam.ParDo(self._write).with_outputs("ranges",
                                                                          main="shards"))
        return written.shards, written.ranges


class WriteEmbeddingShards(beam.PTransform):
    """EmbeddingGen's Beam job: ReadVectorRanges | MatchVectors | WriteShards (MeanVector in
    between for "center"), or WriteSubwordShards for a fastText .bin model.

    Args:
      source: the vector file (vectors.inspect_source).
      plan: the matrix.
      parameters: EmbeddingGenParameters (init_scale, case_fold_fallback, invalid_utf8,
        unicode_normalization, normalization).
      fasttext_matches: for a fastText .bin model, WriteSubwordShards' matches_path.

    Returns:
      EmbeddingShards: a ShardReport per shard, a RangeReport per byte range, the coverage
      hints.
    """

    def __init__(self, source: vectors.VectorSource, plan: ShardPlan,
                 parameters: EmbeddingGenParameters, *, fasttext_matches: Optional[str] = None):
        super().__init__()
        self._source, self._plan, self._parameters = source, plan, parameters
        self._fasttext_matches = fasttext_matches

    def expand(self, pbegin: beam.pvalue.PBegin):  # EmbeddingShards
        source, plan, parameters = self._source, self._plan, self._parameters
        writing = dict(init_scale=parameters.init_scale, normalization=parameters.normalization)
        if source.fasttext_model is not None:
            shards, ranges = pbegin | "SubwordShards" >> WriteSubwordShards(
                source, plan, self._fasttext_matches,
                unicode_normalization=parameters.unicode_normalization, **writing)
            return EmbeddingShards(shards, ranges, None)
        center = "center" in parameters.normalization
        matched = (pbegin
                   | "ReadRanges" >> ReadVectorRanges(source)
                   | "Match" >> MatchVectors(
                       source, plan, case_fold=parameters.case_fold_fallback,
                       invalid_utf8=parameters.invalid_utf8,
                       unicode_normalization=parameters.unicode_normalization,
                       sum_rows=center))
        mean = matched.ranges | "Mean" >> MeanVector(plan.dimension) if center else None
        shards = matched.files | "Write" >> WriteShards(plan, mean=mean, **writing)
        return EmbeddingShards(shards, matched.ranges, matched.hints)

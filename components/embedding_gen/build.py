"""`build_embedding`: EmbeddingGen's job without TFX (the component's executor calls it).

The driver's part, around the Beam job (beam_impl): inspect the vector file, plan the shards,
run WriteEmbeddingShards on the runner make_pipeline gives, merge the shards into one
checkpoint, verify it, publish the artifact (embedding_artifact). Nothing here imports TFX.
"""

import dataclasses
import io
import json
import logging
import os
import time
from typing import Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf

from .. import beam_pipelines, embedding_artifact, object_storage, progress, vocabulary_file
from ..embedding_artifact import CheckpointError
from . import beam_impl, vectors
from . import coverage as coverage_lib
from . import report as report_lib
from .parameters import EmbeddingGenParameters, ParameterError


def build_embedding(vocabulary_path, vectors_path, output_dir, *, make_pipeline=None,
                    token_ids=None, row_layout="tft", **parameters):
    """Joins a vocabulary with a vector file into a published embedding artifact, with Beam.

    What EmbeddingGen runs, callable without TFX (any Beam runner, through make_pipeline).
    Before anything is read, remote paths are checked once with a short timeout
    (object_storage.check_reachable) and the output path is checked
    (embedding_artifact.check_output).

    Args:
      vocabulary_path: the vocabulary file (tft's format); its line i is token id i.
      vectors_path: the pretrained vector file; see EmbeddingGen.
      output_dir: where the artifact is published (embedding_artifact.EmbeddingArtifact).
      make_pipeline: a callable returning the beam.Pipeline to run the job in, called once
        before anything is read (its options reach remote paths); by default Beam's
        FnApiRunner, in this process.
      token_ids: the embedding_artifact.TokenIds EmbeddingGen found in the TransformGraph,
        recorded in the manifest (None without one); the layout gets extra rows up to the
        highest id they give unknown tokens or padding (RowLayout.covering).
      row_layout: "tft" by default: token i is row i and OOV bucket k row V + k (V tokens),
        the ids tft.compute_and_apply_vocabulary gives (with num_oov_buckets, here 1 by
        default); "padded": row 0 is padding (Keras mask_zero), token i is row i + 1. ("auto"
        is EmbeddingGen's: found from its TransformGraph's ids.)
      **parameters: the other EmbeddingGenParameters, with their defaults.

    Returns:
      The published embedding_artifact.Manifest.

    Raises:
      ParameterError: a parameter out of its range, named.
      ObjectStorageError: a remote path that cannot be reached (or whose filesystem is not
        installed), named with the likely cause, within 30 s.
      VectorFileError, VocabularyFileError: naming the file, the line and the problem; also
        when less than min_coverage of the vocabulary (or of the corpus's tokens) has a vector.
      CheckpointError: an output path that cannot be written, or a checkpoint that did not
        verify.
      In every case nothing is published.

    Example:
      manifest = build_embedding("vocab.txt", "glove.6B.300d.txt", "/tmp/embedding")
      manifest.coverage.vocabulary_share
    """
    parameters = EmbeddingGenParameters(row_layout=row_layout, **parameters)
    if parameters.row_layout == "auto":
        raise ParameterError("row_layout", "'auto' is found from a TransformGraph's ids "
                             "(EmbeddingGen); without one, give 'padded' or 'tft'")
    started = time.time()
    pipeline = (make_pipeline or (lambda: beam.Pipeline(runner="FnApiRunner")))()
    with beam_pipelines.local_directory_removed(pipeline):  # Also when refused before it runs.
        return _build(pipeline, vocabulary_path, vectors_path, output_dir, token_ids,
                      parameters, started)


def _build(pipeline, vocabulary_path, vectors_path, output_dir, token_ids, parameters,
           started):
    object_storage.use(vocabulary_path, vectors_path, output_dir)
    object_storage.check_reachable([vectors_path, vocabulary_path], [output_dir],
                                   pipeline.options)
    embedding_artifact.check_output(output_dir, max(5.0, 28.0 - (time.time() - started)))
    source = vectors.inspect_source(vectors_path, parameters.vector_format,
                                    parameters.max_line_bytes, parameters.max_dimension)
    if source.fasttext_model is not None and "center" in parameters.normalization:
        raise ValueError(f"{vectors_path}: normalization 'center' needs the mean of every "
                         f"vector a fastText .bin model defines (each dictionary word's n-gram "
                         f"average); center its .vec export instead ('l2' works on the .bin)")
    tokens, counts = vocabulary_file.read_vocabulary(vocabulary_path,
                                                     parameters.vocabulary_has_counts)
    layout = embedding_artifact.RowLayout.covering(parameters.row_layout, len(tokens),
                                                   parameters.num_oov_buckets, token_ids)
    shape = (layout.num_rows, source.dimension)
    bounds = embedding_artifact.shard_bounds(
        layout.num_rows, _num_shards(shape, parameters.num_shards, parameters.max_shard_mb))
    logging.info("EmbeddingGen: %d tokens + %d reserved rows (%s layout) x %d from %s (%s), "
                 "%d shards", len(tokens), layout.num_rows - len(tokens), layout.name,
                 source.dimension, vectors_path, source.format, len(bounds) - 1)
    staging = embedding_artifact.staging_dir(output_dir)
    plan = beam_impl.ShardPlan(vocabulary_path, parameters.vocabulary_has_counts, layout,
                               bounds, source.dimension, os.path.join(staging, "work"))
    job = _Job(staging, output_dir, source, plan, tokens, counts, parameters, token_ids)
    seconds = {"inspect": time.time() - started}
    try:
        manifest = job.run(pipeline, seconds)
    except BaseException:
        object_storage.remove_tree(staging)  # Nothing half-written stays behind.
        raise
    coverage_lib.warn(job.coverage_report, parameters.coverage_warning)
    logging.info("EmbeddingGen: published %s in %.1fs", output_dir, time.time() - started)
    STAGE_LOGGER.info("EmbeddingGen seconds by stage: %s", _stage_text(seconds),
                      extra={"stage_seconds": seconds})
    progress.report("%d shards published; %s", len(manifest.shards), job.coverage_report.line())
    return manifest


# Its records carry `stage_seconds`: {stage: seconds} (what benchmarks read).
STAGE_LOGGER = logging.getLogger("tfx_embeddings.embedding_gen.stages")


def _stage_text(seconds):
    inside = ", ".join(f"{stage} {seconds[stage]:.2f}" for stage in vectors.STAGES + ("write",))
    return (f"inspect {seconds['inspect']:.2f}, beam_job {seconds['beam_job']:.2f} (in the "
            f"workers, summed: {inside}), merge {seconds['merge']:.2f}, verify "
            f"{seconds['verify']:.2f}, publish {seconds['publish']:.2f}")


def _num_shards(shape, num_shards, max_shard_mb):
    """As asked, or the fewest shards of at most max_shard_mb MiB each."""
    if max_shard_mb:
        row_bytes, max_bytes = 4 * shape[1], int(max_shard_mb * 2**20)
        if max_bytes < row_bytes:
            raise ParameterError("max_shard_mb", f"{max_shard_mb} is less than one row "
                                                 f"({row_bytes} bytes)")
        return -(-shape[0] // (max_bytes // row_bytes))
    return num_shards


@dataclasses.dataclass
class _Job:
    """One EmbeddingGen run, from its inputs to the published artifact (in staging first)."""
    staging: str
    output_dir: str
    source: vectors.VectorSource
    plan: beam_impl.ShardPlan
    tokens: list
    counts: Optional[list]
    parameters: EmbeddingGenParameters
    token_ids: Optional[embedding_artifact.TokenIds]

    @property
    def layout(self):
        return self.plan.layout

    def run(self, pipeline, seconds):
        """Runs the Beam job in pipeline, merges and verifies into staging, publishes; returns the
        manifest. Fills seconds with the time of each stage."""
        clock = time.perf_counter()
        work = self.plan.work_dir
        tf.io.gfile.makedirs(work)
        matches, word_found, hint_marks = None, None, None
        if self.source.fasttext_model is not None:  # Its dictionary is matched here, once.
            matches, word_found, hint_marks = self._match_fasttext(
                os.path.join(work, "matches.npz"))
        seconds["inspect"] += time.perf_counter() - clock
        clock = time.perf_counter()
        try:
            with pipeline:
                outputs = pipeline | "EmbeddingShards" >> beam_impl.WriteEmbeddingShards(
                    self.source, self.plan, self.parameters, fasttext_matches=matches)
                for name, reports in (("shards", outputs.shards), ("ranges", outputs.ranges),
                                      ("hints", outputs.hints)):
                    if reports is None:
                        continue
                    _ = (reports
                         | f"Collect{name.title()}" >> beam.combiners.ToList()
                         | f"Write{name.title()}" >> beam.Map(
                             beam_impl.write_reports, os.path.join(work, f"{name}.json")))
        except Exception as e:  # Beam wraps a worker's error; surface ours as it was raised.
            _reraise_own_error(e)
            raise
        logging.info("EmbeddingGen Beam counters: %s", _beam_counters(pipeline))
        shards = sorted((beam_impl.ShardReport(**r)
                         for r in _read_json(os.path.join(work, "shards.json"))),
                        key=lambda s: s.start)
        ranges = sorted((beam_impl.RangeReport(**r)
                         for r in _read_json(os.path.join(work, "ranges.json"))),
                        key=lambda r: r.start)
        if hint_marks is None:  # The workers' marks, joined by MergeCoverageHints.
            [joined] = _read_json(os.path.join(work, "hints.json"))
            hint_marks = self._unpack_hints(joined)
        seconds["beam_job"] = time.perf_counter() - clock
        for stage in vectors.STAGES:  # Inside the job, summed over the workers.
            seconds[stage] = sum(r.seconds.get(stage, 0.0) for r in ranges)
        seconds["write"] = sum(s.seconds for s in shards)
        clock = time.perf_counter()
        vectors.check_unchanged(self.source)
        rows_read = (self.source.fasttext_model.nwords if self.source.fasttext_model
                     else sum(r.vector_rows_read for r in ranges))
        if self.source.header_rows >= 0 and self.source.header_rows != rows_read:
            raise vectors.VectorFileError(
                f"{self.source.path} line 1: the header announces {self.source.header_rows} "
                f"rows, the file has {rows_read}")
        shape = (self.layout.num_rows, self.source.dimension)
        prefix = os.path.join(self.staging, embedding_artifact.CHECKPOINT_PREFIX)
        embedding_artifact.merge([s.prefix for s in shards], [s.shard for s in shards], shape,
                                 prefix)
        tf.io.gfile.rmtree(work)
        seconds["merge"], clock = time.perf_counter() - clock, time.perf_counter()
        beam_impl.release_free_memory()  # What the job freed, before the shards are read.
        embedding_artifact.verify_shards(prefix, shape, [s.shard for s in shards])
        seconds["verify"], clock = time.perf_counter() - clock, time.perf_counter()
        manifest = self._publish(shards, ranges, rows_read, word_found, hint_marks)
        seconds["publish"] = time.perf_counter() - clock
        return manifest

    def _publish(self, shards, ranges, rows_read, word_found, hint_marks=None):
        source, layout, counts = self.source, self.layout, self.counts
        with_vector = sum(s.tokens_with_vector for s in shards)
        has_vector = np.concatenate([s.has_vector_bits() for s in shards])
        first = layout.first_token_row
        if word_found is None:  # Only a fastText model gives vectors to tokens without a word.
            word_found = has_vector[first:first + layout.vocabulary_size]
        described = embedding_artifact.Source(
            path=source.path, format=source.format, dimension=source.dimension,
            bytes=source.size, sha256=vectors.fingerprint(source, [r.sha256 for r in ranges]),
            normalization=self.parameters.normalization,
            unicode_normalization=self.parameters.unicode_normalization)
        coverage = embedding_artifact.Coverage(
            tokens_with_vector=with_vector, vocabulary_share=with_vector / layout.vocabulary_size,
            corpus_token_share=(sum(s.corpus_tokens_with_vector for s in shards)
                                / max(1, sum(counts)) if counts else None),
            tokens_with_subword_vector=sum(s.subword_vectors for s in shards))
        totals = embedding_artifact.Counts(
            vector_rows_read=rows_read,
            vector_rows_matched=sum(r.vector_rows_matched for r in ranges),
            duplicate_tokens=sum(s.duplicate_tokens for s in shards),
            case_folded_matches=sum(s.case_folded_matches for s in shards),
            invalid_utf8_replaced=sum(r.invalid_utf8_replaced for r in ranges),
            tokens_initialized=sum(s.tokens_initialized for s in shards),
            subword_vectors=sum(s.subword_vectors for s in shards),
            shards_written=len(shards))
        self.coverage_report = self._coverage_report(ranges, word_found, coverage, hint_marks)
        coverage_lib.check(source, self.coverage_report, self.parameters.min_coverage,
                           self.tokens, word_found)
        with tf.io.gfile.GFile(os.path.join(self.staging, report_lib.REPORT_FILE), "w") as f:
            f.write(report_lib.render(
                self.tokens, counts, word_found, source=described, coverage=coverage,
                counts_summary=totals,
                case_folded=[t for s in shards for t in s.case_folded_examples][:20],
                duplicates=[t for s in shards for t in s.duplicate_examples][:20]))
        return embedding_artifact.publish(
            self.staging, self.output_dir, layout=layout,
            vocabulary_path=self.plan.vocabulary_path,
            vocabulary_has_counts=self.parameters.vocabulary_has_counts,
            shards=[s.shard for s in shards], has_vector=has_vector, source=described,
            coverage=coverage, counts=totals, token_ids=self.token_ids)

    def _unpack_hints(self, joined):
        """(marks, punctuation) of MergeCoverageHints' output."""
        marks = coverage_lib.Hints(self.tokens, self.parameters.unicode_normalization
                                   ).new_marks()
        for name, packed in joined["marks"].items():
            marks[name] |= coverage_lib.unpack(packed, len(marks[name]))
        return marks, set(joined["punctuation"].encode("ascii"))

    def _coverage_report(self, ranges, word_found, coverage, hint_marks):
        """The coverage line's figures: the hints the workers marked (or the driver, for a
        fastText model's dictionary)."""
        hints = coverage_lib.Hints(self.tokens, self.parameters.unicode_normalization)
        marks, punctuation = hint_marks
        return coverage_lib.report(
            self.tokens, word_found, self.counts,
            coverage.corpus_token_share * sum(self.counts) if self.counts else None,
            hints.reachable(marks), punctuation, self.parameters.case_fold_fallback,
            subwords=coverage.tokens_with_subword_vector)

    def _match_fasttext(self, path):
        """Matches the vocabulary with a fastText model's dictionary (exactly, then case-folded
        when asked; both in unicode_normalization's form if set); saves the word id of each
        token (-1: none) for the shard writers. Returns (that file, a bool per token: found its
        word, the coverage hints' marks and punctuation of the dictionary)."""
        source = self.source
        words, _ = vectors.fasttext_dictionary(source.location.file, source.size,
                                               source.modified)
        if self.parameters.invalid_utf8 == "error":  # With "replace", bytes still match bytes.
            for index, word in enumerate(words):
                if not word.isascii():
                    try:
                        word.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise vectors.VectorFileError(
                            f"{source.path}: dictionary word {index} {word[:80]!r} is not "
                            f"valid UTF-8 ({e.reason}); set invalid_utf8 to 'replace' to "
                            f"accept it") from None
        form = self.parameters.unicode_normalization
        keys, tokens = (vectors.normalize_vocabulary(words, form),
                        vectors.normalize_vocabulary(self.tokens, form))
        ids = {}
        for index, key in enumerate(keys):
            ids.setdefault(key, index)
        word_ids = np.array([ids.get(t, -1) for t in tokens], np.int64)
        folded = np.zeros(len(self.tokens), bool)
        folded_index, folded_words = [], []
        if self.parameters.case_fold_fallback:
            by_fold = {}
            for index, key in enumerate(keys):
                by_fold.setdefault(vectors.casefold(key), index)
            for i in np.flatnonzero(word_ids < 0):
                index = by_fold.get(vectors.casefold(tokens[i]), -1)
                if index >= 0:
                    word_ids[i], folded[i] = index, True
                    folded_index.append(int(i))
                    folded_words.append(words[index])
        buffer = io.BytesIO()
        np.savez(buffer, word_ids=word_ids, folded=folded,
                 folded_index=np.array(folded_index, np.int64),
                 folded_words=np.array(folded_words or [b""][:0], dtype=bytes))
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(buffer.getvalue())
        hints = coverage_lib.Hints(self.tokens, form)
        marks, punctuation = hints.new_marks(), set()
        hints.mark(pa.array(keys, pa.binary()), marks, punctuation)
        return path, word_ids >= 0, (marks, punctuation)


def _beam_counters(pipeline):
    """The job's counters as the runner reports them (names: embedding_artifact.Counts)."""
    result = getattr(pipeline, "result", None)
    if result is None:
        return {}
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(
        beam_impl.NAMESPACE))
    return {c.key.metric.name: c.committed for c in sorted(
        query["counters"], key=lambda c: c.key.metric.name)}


def _read_json(path):
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _reraise_own_error(error):
    """Beam runners wrap a DoFn's exception; raise the project's own error class instead."""
    text = str(error)
    for cls in (vectors.VectorFileError, vocabulary_file.VocabularyFileError, CheckpointError):
        if isinstance(error, cls):  # Raised as is, with the step's name appended.
            raise cls(text.split(" [while running")[0]) from None
        marker = f"{cls.__name__}: "
        if marker in text:
            message = text.split(marker, 1)[1].split("\n")[0].split(" [while running")[0]
            raise cls(message) from None

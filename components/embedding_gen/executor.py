"""EmbeddingGen's executor, and `build_embedding`: the same job without TFX."""

import dataclasses
import json
import logging
import os
import time

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from tfx_embeddings.components import embedding_artifact, progress, vocabulary_file
from tfx_embeddings.components.embedding_artifact import CheckpointError
from tfx_embeddings.components.embedding_gen import beam_impl, vectors
from tfx_embeddings.components.embedding_gen import report as report_lib

TRANSFORM_GRAPH_KEY = "transform_graph"
EMBEDDING_KEY = "embedding"
REPORT_KEY = "report"


class Executor(base_beam_executor.BaseBeamExecutor):
    """Runs the Beam job on the runner given by the pipeline's beam_pipeline_args."""

    def Do(self, input_dict, output_dict, exec_properties):
        transform_output = tft.TFTransformOutput(
            artifact_utils.get_single_uri(input_dict[TRANSFORM_GRAPH_KEY]))
        embedding = artifact_utils.get_single_instance(output_dict[EMBEDDING_KEY])
        manifest = build_embedding(
            vocabulary_path=transform_output.vocabulary_file_by_name(
                exec_properties["vocabulary_name"]),
            vocabulary_has_counts=bool(exec_properties["vocabulary_has_counts"]),
            vectors_path=exec_properties["vectors_path"],
            output_dir=embedding.uri,
            vector_format=exec_properties["vector_format"],
            row_layout=exec_properties["row_layout"],
            num_oov_buckets=exec_properties["num_oov_buckets"],
            num_shards=exec_properties["num_shards"],
            max_shard_bytes=exec_properties.get("max_shard_bytes") or None,
            init_scale=exec_properties["init_scale"],
            case_fold_fallback=bool(exec_properties["case_fold_fallback"]),
            invalid_utf8=exec_properties["invalid_utf8"],
            min_coverage=exec_properties["min_coverage"],
            make_pipeline=self._make_beam_pipeline)
        embedding.set_int_custom_property("vocabulary_size", manifest.layout.vocabulary_size)
        embedding.set_int_custom_property("dimension", manifest.shape[1])
        embedding.set_int_custom_property("num_shards", len(manifest.shards))
        embedding.set_string_custom_property("row_layout", manifest.layout.name)
        embedding.set_float_custom_property("vocabulary_coverage",
                                            manifest.coverage.vocabulary_share)
        for report in output_dict.get(REPORT_KEY, []):  # For Kubeflow's UI.
            with tf.io.gfile.GFile(os.path.join(embedding.uri, report_lib.REPORT_FILE)) as f:
                report.write(f.read())


def build_embedding(vocabulary_path, vectors_path, output_dir, *, vocabulary_has_counts=True,
                    vector_format="auto", row_layout=embedding_artifact.PADDED, num_oov_buckets=1,
                    num_shards=4, max_shard_bytes=None, init_scale=0.05,
                    case_fold_fallback=False, invalid_utf8="error", min_coverage=0.25,
                    make_pipeline=None):
    """Joins a vocabulary with a vector file into a published embedding artifact, with Beam.

    What EmbeddingGen runs, callable without TFX (any Beam runner, through make_pipeline).

    Args:
      vocabulary_path: the vocabulary file (tft's format); its line i is token id i.
      vectors_path: the pretrained vector file; see EmbeddingGen.
      output_dir: where the artifact is published (embedding_artifact.EmbeddingArtifact).
      vocabulary_has_counts, vector_format, row_layout, num_oov_buckets, num_shards,
        max_shard_bytes, init_scale, case_fold_fallback, invalid_utf8, min_coverage: see
        EmbeddingGen.
      make_pipeline: a callable returning the beam.Pipeline to run the job in; by default
        Beam's FnApiRunner, in this process.

    Returns:
      The published embedding_artifact.Manifest.

    Raises:
      ValueError: an argument out of its range, named.
      VectorFileError, VocabularyFileError: naming the file, the line and the problem; also
        when less than min_coverage of the vocabulary (or of the corpus's tokens) has a vector.
      CheckpointError: the checkpoint did not verify.
      In every case nothing is published.

    Example:
      manifest = build_embedding("vocab.txt", "glove.6B.300d.txt", "/tmp/embedding",
                                 row_layout="tft", num_oov_buckets=1)
      manifest.coverage.vocabulary_share
    """
    check_arguments(vector_format=vector_format, row_layout=row_layout,
                    num_oov_buckets=num_oov_buckets, num_shards=num_shards,
                    max_shard_bytes=max_shard_bytes, init_scale=init_scale,
                    invalid_utf8=invalid_utf8, min_coverage=min_coverage)
    started = time.time()
    make_pipeline = make_pipeline or (lambda: beam.Pipeline(runner="FnApiRunner"))
    source = vectors.inspect_source(vectors_path, vector_format)
    tokens, counts = vocabulary_file.read_vocabulary(vocabulary_path, vocabulary_has_counts)
    layout = embedding_artifact.RowLayout(row_layout, len(tokens), num_oov_buckets)
    shape = (layout.num_rows, source.dimension)
    bounds = embedding_artifact.shard_bounds(
        layout.num_rows, _num_shards(shape, num_shards, max_shard_bytes))
    logging.info("EmbeddingGen: %d tokens + %d reserved rows (%s layout) x %d from %s (%s), "
                 "%d shards", len(tokens), layout.num_rows - len(tokens), layout.name,
                 source.dimension, vectors_path, source.format, len(bounds) - 1)
    staging = embedding_artifact.staging_dir(output_dir)
    try:
        manifest = _build_in(staging, output_dir, source, vocabulary_path,
                             vocabulary_has_counts, tokens, counts, layout, bounds, init_scale,
                             make_pipeline, case_fold_fallback, invalid_utf8, min_coverage)
    except BaseException:
        tf.io.gfile.rmtree(staging)  # Nothing half-written stays behind.
        raise
    logging.info("EmbeddingGen: published %s in %.1fs", output_dir, time.time() - started)
    progress.report("%d of %d tokens have a vector (%.1f%%), %d shards published",
                    manifest.coverage.tokens_with_vector, len(tokens),
                    100 * manifest.coverage.vocabulary_share, len(manifest.shards))
    return manifest


def check_arguments(*, vector_format, row_layout, num_oov_buckets, num_shards, max_shard_bytes,
                    init_scale, invalid_utf8, min_coverage):
    """Raises ValueError naming the first argument out of its range."""
    problems = [
        (vector_format not in vectors.FORMATS + ("auto",),
         f"vector_format must be 'auto' or one of {vectors.FORMATS}, got {vector_format!r}"),
        (row_layout not in embedding_artifact.LAYOUTS,
         f"row_layout must be one of {embedding_artifact.LAYOUTS}, got {row_layout!r}"),
        (not isinstance(num_oov_buckets, int) or num_oov_buckets < 0,
         f"num_oov_buckets must be an int >= 0, got {num_oov_buckets!r}"),
        (not isinstance(num_shards, int) or num_shards < 1,
         f"num_shards must be an int >= 1, got {num_shards!r}"),
        (max_shard_bytes is not None and (not isinstance(max_shard_bytes, int)
                                          or max_shard_bytes < 1),
         f"max_shard_bytes must be None or an int >= 1, got {max_shard_bytes!r}"),
        (not isinstance(init_scale, (int, float)) or not init_scale > 0
         or not np.isfinite(init_scale),
         f"init_scale must be a finite number > 0, got {init_scale!r}"),
        (invalid_utf8 not in vectors.INVALID_UTF8_POLICIES,
         f"invalid_utf8 must be one of {vectors.INVALID_UTF8_POLICIES}, got {invalid_utf8!r}"),
        (not isinstance(min_coverage, (int, float)) or not 0 <= min_coverage <= 1,
         f"min_coverage must be a number in [0, 1], got {min_coverage!r}"),
    ]
    for failed, message in problems:
        if failed:
            raise ValueError(message)


def _num_shards(shape, num_shards, max_shard_bytes):
    """As asked, or the fewest shards of at most max_shard_bytes each."""
    if max_shard_bytes:
        row_bytes = 4 * shape[1]
        if max_shard_bytes < row_bytes:
            raise ValueError(f"max_shard_bytes {max_shard_bytes} is less than one row "
                             f"({row_bytes} bytes)")
        return -(-shape[0] // (max_shard_bytes // row_bytes))
    return num_shards


def _build_in(staging, output_dir, source, vocabulary_path, has_counts, tokens, counts, layout,
              bounds, init_scale, make_pipeline, case_fold, invalid_utf8, min_coverage):
    """Runs the Beam job, merges and verifies into staging, publishes; returns the manifest."""
    shape = (layout.num_rows, source.dimension)
    work = os.path.join(staging, "work")
    tf.io.gfile.makedirs(work)
    try:
        with make_pipeline() as pipeline:
            shards, ranges = pipeline | "EmbeddingShards" >> beam_impl.WriteEmbeddingShards(
                source, vocabulary_path, has_counts, layout, bounds, init_scale, work,
                case_fold, invalid_utf8)
            for name, reports in (("shards", shards), ("ranges", ranges)):
                _ = (reports
                     | f"Collect{name.title()}" >> beam.combiners.ToList()
                     | f"Write{name.title()}" >> beam.Map(_write_reports,
                                                          os.path.join(work, f"{name}.json")))
    except Exception as e:  # Beam wraps a worker's error; surface ours as it was raised.
        _reraise_own_error(e)
        raise
    logging.info("EmbeddingGen Beam counters: %s", _beam_counters(pipeline))
    shards = [beam_impl.ShardReport(**r) for r in _read_json(os.path.join(work, "shards.json"))]
    ranges = [beam_impl.RangeReport(**r) for r in _read_json(os.path.join(work, "ranges.json"))]
    shards.sort(key=lambda s: s.start)
    ranges.sort(key=lambda r: r.start)
    vectors.check_unchanged(source)
    rows_read = sum(r.vector_rows_read for r in ranges)
    if source.header_rows >= 0 and source.header_rows != rows_read:
        raise vectors.VectorFileError(f"{source.path} line 1: the header announces "
                                      f"{source.header_rows} rows, the file has {rows_read}")
    embedding_artifact.merge([s.prefix for s in shards], [s.shard for s in shards], shape,
                             os.path.join(staging, embedding_artifact.CHECKPOINT_PREFIX))
    tf.io.gfile.rmtree(work)
    with_vector = sum(s.tokens_with_vector for s in shards)
    has_vector = np.concatenate([s.has_vector_bits() for s in shards])
    described = embedding_artifact.Source(
        path=source.path, format=source.format, dimension=source.dimension, bytes=source.size,
        sha256=vectors.fingerprint(source, [r.sha256 for r in ranges]))
    coverage = embedding_artifact.Coverage(
        tokens_with_vector=with_vector, vocabulary_share=with_vector / layout.vocabulary_size,
        corpus_token_share=(sum(s.corpus_tokens_with_vector for s in shards)
                            / max(1, sum(counts)) if counts else None))
    totals = embedding_artifact.Counts(
        vector_rows_read=rows_read,
        vector_rows_matched=sum(r.vector_rows_matched for r in ranges),
        duplicate_tokens=sum(s.duplicate_tokens for s in shards),
        case_folded_matches=sum(s.case_folded_matches for s in shards),
        invalid_utf8_replaced=sum(r.invalid_utf8_replaced for r in ranges),
        tokens_initialized=sum(s.tokens_initialized for s in shards),
        shards_written=len(shards))
    first = layout.first_token_row
    token_has_vector = has_vector[first:first + layout.vocabulary_size]
    _check_coverage(source, coverage, min_coverage, tokens, token_has_vector)
    with tf.io.gfile.GFile(os.path.join(staging, report_lib.REPORT_FILE), "w") as f:
        f.write(report_lib.render(
            tokens, counts, token_has_vector, source=described,
            coverage=coverage, counts_summary=totals,
            case_folded=[t for s in shards for t in s.case_folded_examples][:20],
            duplicates=[t for s in shards for t in s.duplicate_examples][:20]))
    return embedding_artifact.publish(
        staging, output_dir, layout=layout, vocabulary_path=vocabulary_path,
        vocabulary_has_counts=has_counts, shards=[s.shard for s in shards],
        has_vector=has_vector, source=described, coverage=coverage, counts=totals)


def _check_coverage(source, coverage, min_coverage, tokens, has_vector):
    """Fails the job, with what a person needs to see the cause at once, when too few tokens
    found a vector: a wrong file, or a right one read wrongly, must not train silently."""
    shares = [coverage.vocabulary_share]
    if coverage.corpus_token_share is not None:
        shares.append(coverage.corpus_token_share)
    if min(shares) >= min_coverage:
        return
    missing = [t.decode("utf-8", "replace") for t, found in zip(tokens, has_vector)
               if not found][:5]
    corpus = (f" ({100 * coverage.corpus_token_share:.1f}% of the corpus's tokens)"
              if coverage.corpus_token_share is not None else "")
    raise vectors.VectorFileError(
        f"{source.path}: only {100 * coverage.vocabulary_share:.1f}% of the vocabulary's "
        f"{len(tokens)} tokens have a vector{corpus}, below min_coverage "
        f"{100 * min_coverage:.0f}%. Is it the right file, read in the right format? It was "
        f"read as {source.format} of dimension {source.dimension}. Vocabulary tokens without a "
        f"vector: {missing}; the file's first tokens: {vectors.head_tokens(source)}. Nothing "
        f"was published (lower min_coverage to accept the file).")


def _beam_counters(pipeline):
    """The job's counters as the runner reports them (names: embedding_artifact.Counts)."""
    result = getattr(pipeline, "result", None)
    if result is None:
        return {}
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(
        beam_impl.NAMESPACE))
    return {c.key.metric.name: c.committed for c in sorted(
        query["counters"], key=lambda c: c.key.metric.name)}


def _write_reports(reports, path):
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump([dataclasses.asdict(r) for r in reports], f)


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

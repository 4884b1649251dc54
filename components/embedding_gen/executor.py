"""EmbeddingGen's executor: from a TransformGraph's vocabulary and a vector file to a published
embedding artifact (sharded checkpoint + vocabulary + projector files + manifest)."""

import base64
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

from components.embedding_gen import beam_impl, checkpoint, vectors
from components.embedding_gen.vocabulary import read_vocabulary

TRANSFORM_GRAPH_KEY = "transform_graph"
EMBEDDING_KEY = "embedding"


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
            num_shards=exec_properties["num_shards"],
            max_shard_bytes=exec_properties.get("max_shard_bytes") or None,
            num_oov_buckets=exec_properties["num_oov_buckets"],
            init_scale=exec_properties["init_scale"],
            case_fold_fallback=bool(exec_properties["case_fold_fallback"]),
            invalid_utf8=exec_properties["invalid_utf8"],
            make_pipeline=self._make_beam_pipeline)
        embedding.set_int_custom_property("vocabulary_size", manifest["vocabulary_size"])
        embedding.set_int_custom_property("dimension", manifest["shape"][1])
        embedding.set_int_custom_property("num_shards", len(manifest["shards"]))
        embedding.set_float_custom_property(
            "vocabulary_coverage", manifest["coverage"]["vocabulary_share"])


def build_embedding(vocabulary_path, vectors_path, output_dir, *, vocabulary_has_counts=True,
                    vector_format="auto", num_shards=4, max_shard_bytes=None,
                    num_oov_buckets=1, init_scale=0.05, case_fold_fallback=False,
                    invalid_utf8="error", make_pipeline=beam.Pipeline):
    """Builds and publishes the embedding artifact in output_dir; returns its manifest.

    The checkpoint has num_shards row shards, or with max_shard_bytes, as many as keep each
    shard within that size. case_fold_fallback: a token without an exact match takes the vector
    of the first row (by file offset) whose token case-folds like it. invalid_utf8: "error", or
    "replace" to decode a token that is not UTF-8 with U+FFFD replacements before matching it;
    both are counted.

    Raises vectors.VectorFileError or checkpoint.CheckpointError, naming the file and the
    problem, with nothing published.
    """
    started = time.time()
    if invalid_utf8 not in vectors.INVALID_UTF8_POLICIES:
        raise ValueError(f"invalid_utf8 must be one of {vectors.INVALID_UTF8_POLICIES}")
    source = vectors.inspect_source(vectors_path, vector_format)
    tokens, counts = read_vocabulary(vocabulary_path, vocabulary_has_counts)
    layout = checkpoint.RowLayout(len(tokens), num_oov_buckets)
    shape = (layout.num_rows, source.dimension)
    bounds = checkpoint.shard_bounds(
        layout.num_rows, checkpoint.num_shards_for(shape, num_shards, max_shard_bytes))
    logging.info("EmbeddingGen: %d tokens + %d reserved rows x %d from %s (%s), %d shards",
                 len(tokens), layout.num_rows - len(tokens), source.dimension, vectors_path,
                 source.format, len(bounds) - 1)

    tf.io.gfile.makedirs(output_dir)
    checkpoint.unpublish(output_dir)
    staging = checkpoint.staging_dir(output_dir)
    try:
        manifest = _build_in(staging, source, vocabulary_path, vocabulary_has_counts, tokens,
                             counts, layout, bounds, init_scale, make_pipeline,
                             case_fold_fallback, invalid_utf8)
    except BaseException:
        tf.io.gfile.rmtree(staging)  # Nothing half-written stays behind.
        raise
    checkpoint.publish(staging, output_dir, manifest)
    logging.info("EmbeddingGen: published %s in %.1fs: %d of %d tokens have a vector (%.1f%%)",
                 output_dir, time.time() - started, manifest["coverage"]["tokens_with_vector"],
                 len(tokens), 100 * manifest["coverage"]["vocabulary_share"])
    return manifest


def _build_in(staging, source, vocabulary_path, has_counts, tokens, counts, layout, bounds,
              init_scale, make_pipeline, case_fold, invalid_utf8):
    """Runs the Beam job, merges and verifies into staging; returns the manifest to publish."""
    shape = (layout.num_rows, source.dimension)
    reports_path = os.path.join(staging, "shard_reports.json")
    try:
        with make_pipeline() as pipeline:
            reports, digests = pipeline | "EmbeddingShards" >> beam_impl.WriteEmbeddingShards(
                source, vocabulary_path, has_counts, layout, bounds, init_scale,
                os.path.join(staging, "shards"), case_fold, invalid_utf8)
            _ = ((reports, digests)
                 | "Collect" >> beam.Flatten()
                 | beam.combiners.ToList()
                 | beam.Map(_write_json, reports_path))
    except Exception as e:  # Beam wraps a worker's error; surface ours as it was raised.
        _reraise_own_error(e)
        raise
    counters = _beam_counters(pipeline)
    logging.info("EmbeddingGen Beam counters: %s", counters)
    results = _read_json(reports_path)
    shard_reports = [r for r in results if isinstance(r, dict)]
    ranges = sorted(tuple(r) for r in results if not isinstance(r, dict))
    rows_read = sum(r[2] for r in ranges)  # (start, sha256, rows read, UTF-8 replaced) each
    if source.header_rows >= 0 and source.header_rows != rows_read:
        raise vectors.VectorFileError(f"{source.path} line 1: the header announces "
                                      f"{source.header_rows} rows, the file has {rows_read}")

    checkpoint.merge_and_verify(shard_reports, shape,
                                os.path.join(staging, checkpoint.CHECKPOINT_PREFIX))
    tf.io.gfile.rmtree(os.path.join(staging, "shards"))
    tf.io.gfile.remove(reports_path)
    tf.io.gfile.copy(vocabulary_path, os.path.join(staging, checkpoint.VOCABULARY_FILE))
    _write_has_vector(staging, shard_reports)
    with tf.io.gfile.GFile(os.path.join(staging, checkpoint.ROW_KEYS_FILE), "wb") as f:
        f.write(b"".join(k + b"\n" for k in layout.row_keys(0, layout.num_rows, tokens)))
    _write_projector(staging, layout, tokens,
                     os.path.join(os.path.dirname(staging), checkpoint.CHECKPOINT_PREFIX))
    return _manifest(source, vocabulary_path, has_counts, layout, shape, shard_reports, ranges,
                     rows_read, counts, counters,
                     checkpoint.file_sizes(staging, checkpoint.CHECKPOINT_DIR))


def _manifest(source, vocabulary_path, has_counts, layout, shape, shards, ranges, rows_read,
              counts, beam_counters, files):
    with_vector = sum(s["tokens_with_vector"] for s in shards)
    coverage = {"tokens_with_vector": with_vector,
                "vocabulary_share": with_vector / layout.vocabulary_size}
    if counts:
        coverage["corpus_token_share"] = (
            sum(s["token_count_with_vector"] for s in shards) / max(1, sum(counts)))
    return {
        "format_version": checkpoint.FORMAT_VERSION,
        "tensor_name": checkpoint.TENSOR_NAME,
        "checkpoint_prefix": checkpoint.CHECKPOINT_PREFIX,
        "vocabulary_file": checkpoint.VOCABULARY_FILE,
        "vocabulary_has_counts": has_counts,
        "shape": list(shape),
        "dtype": "float32",
        "vocabulary_size": layout.vocabulary_size,
        "reserved_rows": layout.to_json(),
        "shards": [{"rows": [s["start"], s["stop"]], "sha256": s["sha256"]}
                   for s in sorted(shards, key=lambda s: s["start"])],
        "coverage": coverage,
        "counts": {
            "vector_rows_read": rows_read,
            "duplicate_tokens": sum(s["duplicates"] for s in shards),
            "case_folded_matches": sum(s["case_folded"] for s in shards),
            "invalid_utf8_tokens_replaced": sum(r[3] for r in ranges),
            "initialized_token_rows": sum(s["tokens_initialized"] for s in shards),
        },
        "fingerprints": {
            "vocabulary_sha256": checkpoint.file_sha256(vocabulary_path),
            "vectors_sha256": vectors.fingerprint(source, [r[1] for r in ranges]),
        },
        "source": {"path": source.path, "format": source.format,
                   "dimension": source.dimension, "bytes": source.size},
        "files": files,
        "beam_counters": beam_counters,
    }


def _write_has_vector(staging, shards):
    bits = np.concatenate([
        np.unpackbits(np.frombuffer(base64.b64decode(s["rows_with_vector"]), np.uint8),
                      count=s["stop"] - s["start"])
        for s in sorted(shards, key=lambda s: s["start"])])
    with tf.io.gfile.GFile(os.path.join(staging, checkpoint.HAS_VECTOR_FILE), "wb") as f:
        f.write(np.packbits(bits).tobytes())


def _write_projector(staging, layout, tokens, published_prefix):
    """TensorBoard projector files: a label per row and a config pointing at the checkpoint
    where it will be published (TensorBoard reads that path as it is, not relative)."""
    directory = os.path.join(staging, checkpoint.PROJECTOR_DIR)
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, "metadata.tsv"), "w") as f:
        for row in range(layout.num_rows):
            f.write(layout.label(row, tokens).replace("\t", " ") + "\n")
    with tf.io.gfile.GFile(os.path.join(directory, "projector_config.pbtxt"), "w") as f:
        f.write('model_checkpoint_path: "%s"\nembeddings {\n  tensor_name: "%s"\n'
                '  metadata_path: "metadata.tsv"\n}\n' % (published_prefix, checkpoint.TENSOR_NAME))


def _beam_counters(pipeline):
    """The job's counters (rows read, matched, shards written...) as the runner reports them."""
    result = getattr(pipeline, "result", None)
    if result is None:
        return {}
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(
        beam_impl.NAMESPACE))
    return {c.key.metric.name: c.committed for c in sorted(
        query["counters"], key=lambda c: c.key.metric.name)}


def _write_json(value, path):
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(value, f)


def _read_json(path):
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _reraise_own_error(error):
    """Beam runners wrap a DoFn's exception; raise the project's own error class instead."""
    text = str(error)
    for cls in (vectors.VectorFileError, checkpoint.CheckpointError):
        if isinstance(error, cls):  # Raised as is, with the step's name appended.
            raise cls(text.split(" [while running")[0]) from None
        marker = f"{cls.__name__}: "
        if marker in text:
            message = text.split(marker, 1)[1].split("\n")[0].split(" [while running")[0]
            raise cls(message) from None

"""EmbeddingGen's Beam job on the real DirectRunner: alignment, shards, determinism, failures."""

import html.parser
import json
import os
import pickle
import re

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from google.protobuf import text_format
from tensorboard.plugins import projector

from tests.conftest import write_vocabulary
from tfx_embeddings.components import embedding_artifact, vocabulary_file
from tfx_embeddings.components.beam_pipelines import local_directory_removed
from tfx_embeddings.components.embedding_gen import beam_impl, coverage, vectors
from tfx_embeddings.components.embedding_gen.build import build_embedding

# Vocabulary: tokens with a vector (w*) interleaved with tokens the file lacks (x*).
TOKENS = [f"w{i}" if i % 4 else f"x{i}" for i in range(30)]


def _build(tmp_path, vectors_path, name="out", **kwargs):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", TOKENS)
    out = str(tmp_path / name)
    manifest = build_embedding(str(vocabulary), vectors_path, out,
                               **{"row_layout": "padded", **kwargs})
    return out, manifest


def _matrix(out):
    return tf.train.load_variable(os.path.join(out, embedding_artifact.CHECKPOINT_PREFIX),
                                  embedding_artifact.TENSOR_NAME)


def test_rows_follow_the_vocabulary(tmp_path, small_vectors):
    path, expected = small_vectors
    out, manifest = _build(tmp_path, path, num_shards=3, num_oov_buckets=2)
    matrix = _matrix(out)  # tf.train.load_variable reads the shards as one tensor.
    assert matrix.shape == (1 + len(TOKENS) + 2, 6) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], np.zeros(6))  # Padding.
    for i, token in enumerate(TOKENS):
        if token in expected:
            np.testing.assert_array_equal(matrix[i + 1], expected[token])
        else:
            assert 0 < np.abs(matrix[i + 1]).max() <= 0.05
    assert manifest.coverage.tokens_with_vector == sum(t in expected for t in TOKENS)
    assert manifest.counts.tokens_initialized == sum(t not in expected for t in TOKENS)
    assert manifest.counts.vector_rows_read == 40
    assert manifest.layout.to_json()["oov_rows"] == [31, 33]
    has_vector = embedding_artifact.EmbeddingArtifact(out).has_vector()
    assert has_vector.tolist() == [False] + [t in expected for t in TOKENS] + [False, False]
    with open(os.path.join(out, embedding_artifact.VOCABULARY_FILE)) as f:
        assert [line.split()[1] for line in f] == TOKENS
    with open(os.path.join(out, "projector", "metadata.tsv")) as f:
        labels = f.read().splitlines()
    assert labels[0] == "<pad>" and labels[1:31] == TOKENS and labels[31] == "<oov-0>"
    with open(os.path.join(out, "projector", "projector_config.pbtxt")) as f:
        config = text_format.Parse(f.read(), projector.ProjectorConfig())
    assert config.model_checkpoint_path == os.path.join(out, embedding_artifact.CHECKPOINT_PREFIX)
    assert config.embeddings[0].tensor_name == embedding_artifact.TENSOR_NAME


@pytest.mark.parametrize("num_shards", [1, 3, 7])
def test_number_of_shards(tmp_path, small_vectors, num_shards):
    out, manifest = _build(tmp_path, small_vectors[0], num_shards=num_shards)
    files = sorted(os.listdir(os.path.join(out, embedding_artifact.CHECKPOINT_DIR)))
    assert files == [f"embeddings.data-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)] \
        + ["embeddings.index"]
    assert len(manifest.shards) == num_shards
    bounds = [[s.start, s.stop] for s in manifest.shards]
    assert bounds[0][0] == 0 and bounds[-1][1] == 32
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


def test_max_shard_size_sets_the_shard_count(tmp_path, small_vectors):
    _, manifest = _build(tmp_path, small_vectors[0], max_shard_mb=8 * 6 * 4 / 2**20)  # 8 rows.
    assert [[s.start, s.stop] for s in manifest.shards] == [[0, 8], [8, 16], [16, 24], [24, 32]]
    with pytest.raises(ValueError, match="less than one row"):
        _build(tmp_path, small_vectors[0], "small", max_shard_mb=10 / 2**20)


def _files(directory):
    return {name: open(os.path.join(directory, name), "rb").read()
            for name in sorted(os.listdir(directory))}


def test_same_bytes_on_a_rerun_and_with_two_workers(tmp_path, small_vectors):
    """Missing rows are seeded by the token, duplicates resolved by file offset: the checkpoint
    does not depend on the run, the worker count or the order in which workers finish."""
    out_a, manifest_a = _build(tmp_path, small_vectors[0], "a", num_shards=4)
    out_b, manifest_b = _build(tmp_path, small_vectors[0], "b", num_shards=4)
    out_c, manifest_c = _build(
        tmp_path, small_vectors[0], "c", num_shards=4,
        make_pipeline=lambda: beam.Pipeline(options=PipelineOptions(
            ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
             "--direct_num_workers=2"])))
    out_e, manifest_e = _build(  # Two worker threads, sharing the vocabulary.
        tmp_path, small_vectors[0], "e", num_shards=4,
        make_pipeline=lambda: beam.Pipeline(options=PipelineOptions(
            ["--runner=FnApiRunner", "--direct_running_mode=multi_threading",
             "--direct_num_workers=2"])))
    checkpoint_a = _files(os.path.join(out_a, embedding_artifact.CHECKPOINT_DIR))
    assert len(checkpoint_a) == 5
    for out in (out_b, out_c, out_e):
        assert checkpoint_a == _files(os.path.join(out, embedding_artifact.CHECKPOINT_DIR))
    assert manifest_a == manifest_b == manifest_c == manifest_e
    out_d, _ = _build(tmp_path, small_vectors[0], "d", num_shards=5)
    np.testing.assert_array_equal(_matrix(out_a), _matrix(out_d))


def test_a_worker_process_loads_the_vocabulary_once(tmp_path, monkeypatch):
    """DoFn instances unpickled from one DoFn (a worker's threads) share one loaded vocabulary;
    another DoFn loads its own."""
    vocabulary = str(write_vocabulary(tmp_path / "vocab.txt", TOKENS))
    reads = []
    read = vocabulary_file.read_vocabulary
    monkeypatch.setattr(vocabulary_file, "read_vocabulary",
                        lambda *args: reads.append(args) or read(*args))
    do_fn = beam_impl._VocabularyDoFn(vocabulary, True)
    first, second = (pickle.loads(pickle.dumps(do_fn)) for _ in range(2))
    first.setup()
    second.setup()
    assert len(reads) == 1 and second._tokens is first._tokens
    assert second._tokens[:2] == [b"x0", b"w1"]
    other = pickle.loads(pickle.dumps(beam_impl._VocabularyDoFn(vocabulary, True)))
    other.setup()
    assert len(reads) == 2 and other._tokens is not first._tokens


def test_duplicate_tokens_first_wins(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("w1 1 1\nw2 2 2\nw1 3 3\n")
    out, manifest = _build(tmp_path, str(path), num_shards=1, min_coverage=0)
    np.testing.assert_array_equal(_matrix(out)[2], [1, 1])  # w1 is token 1, row 2.
    assert manifest.counts.duplicate_tokens == 1


def test_manifest_fingerprints(tmp_path, small_vectors):
    _, manifest = _build(tmp_path, small_vectors[0])
    assert manifest.vocabulary_sha256 == embedding_artifact.file_sha256(
        str(tmp_path / "vocab.txt"))
    assert (manifest.source.path, manifest.source.format, manifest.source.dimension,
            manifest.source.bytes) == (small_vectors[0], "glove", 6,
                                       os.path.getsize(small_vectors[0]))
    with open(tmp_path / "out" / "manifest.json") as f:
        assert embedding_artifact.Manifest.from_json(json.load(f)) == manifest


def test_tft_layout_puts_token_i_at_row_i(tmp_path, small_vectors):
    """tft.compute_and_apply_vocabulary's ids: token i at row i, OOV buckets after, no padding."""
    path, expected = small_vectors
    out, manifest = _build(tmp_path, path, row_layout="tft", num_shards=2, num_oov_buckets=2)
    matrix = _matrix(out)
    assert matrix.shape == (len(TOKENS) + 2, 6)
    for i, token in enumerate(TOKENS):
        if token in expected:
            np.testing.assert_array_equal(matrix[i], expected[token])
    assert manifest.layout.to_json() == {
        "name": "tft", "vocabulary_size": 30, "num_oov_buckets": 2, "padding_row": None,
        "first_token_row": 0, "oov_rows": [30, 32]}
    padded, _ = _build(tmp_path, path, "padded", num_shards=3, num_oov_buckets=2)
    # The same token has the same initializer row in both layouts (seeded by the token).
    np.testing.assert_array_equal(matrix[:30], _matrix(padded)[1:31])
    keys = open(os.path.join(out, embedding_artifact.ROW_KEYS_FILE), "rb").read().split(b"\n")
    assert keys[:30] == [t.encode() for t in TOKENS] and keys[30:32] == [b"\0<oov-0>",
                                                                          b"\0<oov-1>"]


@pytest.mark.parametrize("argument, value, error", [
    ("row_layout", "shifted",
     "row_layout must be one of ('auto', 'padded', 'tft'), got 'shifted'"),
    ("num_oov_buckets", -1, "num_oov_buckets must be an int >= 0, got -1"),
    ("init_scale", 0.0, "init_scale must be a finite number > 0, got 0.0"),
    ("num_shards", 0, "num_shards must be an int >= 1, got 0"),
    ("vector_format", "fasttext", "vector_format must be one of ('auto', 'glove', "),
    ("min_coverage", 1.5, "min_coverage must be a finite number in [0, 1], got 1.5"),
    ("case_fold_fallback", "yes", "case_fold_fallback must be True or False, got 'yes'"),
    ("invalid_utf8", "ignore", "invalid_utf8 must be one of ('error', 'replace')"),
])
def test_arguments_are_checked_by_the_library_and_the_component(tmp_path, small_vectors,
                                                                  argument, value, error):
    from tfx.types import channel_utils, standard_artifacts

    from tfx_embeddings.components.embedding_gen.component import EmbeddingGen

    with pytest.raises(ValueError, match=re.escape(error)):
        _build(tmp_path, small_vectors[0], **{argument: value})
    assert not (tmp_path / "out").exists()
    graph = channel_utils.as_channel([standard_artifacts.TransformGraph()])
    with pytest.raises(ValueError, match=re.escape(error)):
        EmbeddingGen(graph, small_vectors[0], "tokens", **{argument: value})


class _Page(html.parser.HTMLParser):
    """What a browser would need of the page: its pictures (inline SVG) and its text."""

    def __init__(self):
        super().__init__()
        self.svgs, self.lines, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.svgs.append(dict(attrs))
        if tag == "polyline":
            self.lines.append([tuple(map(float, point.split(",")))
                               for point in dict(attrs)["points"].split()])

    def handle_data(self, data):
        self.text.append(data)


def test_the_coverage_report_renders(tmp_path):
    """A page with a decodable plot, coverage by rank, the most frequent tokens without a
    vector (by count), and the case-folded and duplicate tokens by name."""
    path = tmp_path / "vectors.txt"
    path.write_text("w1 1 1\nParis 2 2\nw1 3 3\nw3 4 4\n")
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["w1", "zz_missing", "paris", "w3",
                                                          "rare_missing"], [50, 40, 30, 20, 10])
    build_embedding(str(vocabulary), str(path), str(tmp_path / "out"), case_fold_fallback=True,
                    row_layout="padded")
    page = _Page()
    with open(tmp_path / "out" / "report.html") as f:
        page.feed(f.read())
    [svg] = page.svgs
    assert int(svg["width"]) > 300 and int(svg["height"]) > 200
    tokens_line, corpus_line = page.lines  # Two curves, each point inside the picture.
    for line in page.lines:
        assert all(0 <= x <= 700 and 0 <= y <= 360 for x, y in line)
    # 3 of 5 tokens have a vector: the tokens curve ends at 60%, below its start (w1 has one).
    assert tokens_line[-1][1] > tokens_line[0][1]
    text = " ".join(" ".join(page.text).split())
    assert "3 of 5 vocabulary tokens have a pretrained vector (60.0%)" in text
    assert text.index("zz_missing 40") < text.index("rare_missing 10")  # By count.
    assert "case-folds like theirs (1): paris" in text
    assert "the first one taken (1 rows ignored): w1" in text


def test_build_embedding_and_its_beam_job_need_no_tfx():
    """build_embedding (the public name) and the Beam transforms load without TFX or
    tensorflow-transform: a Beam user's pipeline does not pay for them."""
    import subprocess
    import sys

    code = ("import sys, tfx_embeddings; tfx_embeddings.build_embedding; "
            "from tfx_embeddings.components.embedding_gen import beam_impl; "
            "print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('tfx', 'tensorflow_transform', 'tfx_bsl')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert run.stdout.strip() == "[]"


def test_the_beam_transforms_composed_by_hand_give_build_embeddings_matrix(tmp_path,
                                                                          small_vectors):
    """ReadVectorRanges | MatchVectors | WriteShards, then embedding_artifact.merge: the matrix
    build_embedding publishes, row for row."""
    path, _ = small_vectors
    vocabulary = str(write_vocabulary(tmp_path / "vocab.txt", TOKENS))
    source = vectors.inspect_source(path)
    layout = embedding_artifact.RowLayout("tft", len(TOKENS), 1)
    plan = beam_impl.ShardPlan(vocabulary, True, layout,
                               embedding_artifact.shard_bounds(layout.num_rows, 3),
                               source.dimension, str(tmp_path / "work"))
    reports = str(tmp_path / "work" / "shards.json")
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        matched = (pipeline
                   | beam_impl.ReadVectorRanges(source, range_bytes=97)
                   | beam_impl.MatchVectors(source, plan))
        _ = (matched.files
             | beam_impl.WriteShards(plan)
             | beam.combiners.ToList()
             | beam.Map(beam_impl.write_reports, reports))
    with open(reports) as f:
        shards = sorted((beam_impl.ShardReport(**r) for r in json.load(f)), key=lambda s: s.start)
    prefix = str(tmp_path / "merged" / "embeddings")
    embedding_artifact.merge([s.prefix for s in shards], [s.shard for s in shards],
                             (layout.num_rows, source.dimension), prefix)
    out, _ = _build(tmp_path, path, row_layout="tft", num_shards=2)
    np.testing.assert_array_equal(tf.train.load_variable(prefix, embedding_artifact.TENSOR_NAME),
                                  _matrix(out))


def test_the_beam_transforms_are_typed(tmp_path, small_vectors):
    """Beam checks their inputs when the pipeline is built."""
    from apache_beam.typehints.decorators import TypeCheckError

    source = vectors.inspect_source(small_vectors[0])
    layout = embedding_artifact.RowLayout("tft", 2, 0)
    plan = beam_impl.ShardPlan(str(tmp_path / "vocab.txt"), True, layout, (0, 2), 6,
                               str(tmp_path / "work"))
    for transform, expected in ((beam_impl.MatchVectors(source, plan), "ByteRange"),
                                (beam_impl.WriteShards(plan), "Tuple[<class 'int'>, <class")):
        pipeline = beam.Pipeline(runner="FnApiRunner")
        with local_directory_removed(pipeline), pytest.raises(TypeCheckError,
                                                              match=re.escape(expected)):
            _ = pipeline | beam.Create(["a"]) | transform


def test_build_embedding_with_its_defaults_lays_rows_out_as_tfts_ids(tmp_path, small_vectors):
    """No TransformGraph, no layout given: token i at row i, the OOV bucket after, as
    tft.compute_and_apply_vocabulary(num_oov_buckets=1) numbers them."""
    import tfx_embeddings

    path, expected = small_vectors
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", TOKENS)
    out = str(tmp_path / "out")
    manifest = tfx_embeddings.build_embedding(str(vocabulary), path, out)
    assert manifest.layout.to_json() == {
        "name": "tft", "vocabulary_size": 30, "num_oov_buckets": 1, "padding_row": None,
        "first_token_row": 0, "oov_rows": [30, 31]}
    matrix = _matrix(out)
    assert matrix.shape == (31, 6)
    for i, token in enumerate(TOKENS):
        if token in expected:
            np.testing.assert_array_equal(matrix[i], expected[token])


def test_what_the_runner_holds_per_range_does_not_grow_with_the_vocabulary(tmp_path,
                                                                          small_vectors):
    """Per byte range the runner keeps a RangeReport (a few numbers) until the step ends; the
    coverage marks (a bit per vocabulary token, per change) are joined as they are made, one
    element in all. Before, every range's report carried its marks: the ingest job's memory
    grew with the file's length (the 2x file's job at 1,087 MB against 949)."""
    path, _ = small_vectors
    tokens = [f"w{i}" for i in range(30_000)]
    vocabulary = str(write_vocabulary(tmp_path / "vocab.txt", tokens))
    source = vectors.inspect_source(path)
    layout = embedding_artifact.RowLayout("tft", len(tokens), 1)
    plan = beam_impl.ShardPlan(vocabulary, True, layout, (0, layout.num_rows), source.dimension,
                               str(tmp_path / "work"))
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        matched = (pipeline
                   | beam_impl.ReadVectorRanges(source, range_bytes=97)
                   | beam_impl.MatchVectors(source, plan))
        for name in ("ranges", "hints"):
            _ = (getattr(matched, name)
                 | f"List{name}" >> beam.combiners.ToList()
                 | f"Write{name}" >> beam.Map(beam_impl.write_reports,
                                              str(tmp_path / f"{name}.json")))
    with open(tmp_path / "ranges.json") as f:
        ranges = json.load(f)
    with open(tmp_path / "hints.json") as f:
        [hints] = json.load(f)
    assert len(ranges) == len(vectors.split_ranges(source, 97)) > 20
    sizes = [len(json.dumps({k: v for k, v in r.items() if k != "seconds"})) for r in ranges]
    assert max(sizes) < 300, max(sizes)
    joined = coverage.Hints([t.encode() for t in tokens])
    marks = joined.new_marks()
    for name, packed in hints["marks"].items():
        marks[name] |= coverage.unpack(packed, len(marks[name]))
    assert joined.reachable(marks)["case_folded"].sum() == 40  # w0..w39: every range's marks.

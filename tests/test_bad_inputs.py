"""Bad input, in one table: each case gets an error that names the file (or the config key) and
the problem, and publishes nothing."""

import bz2
import gzip
import os
import struct
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import write_vocabulary
from tfx_embeddings.components import embedding_artifact
from tfx_embeddings.components.embedding_gen import vectors
from tfx_embeddings.components.embedding_gen.build import build_embedding
from tfx_embeddings.components.embedding_gen.vectors import VectorFileError
from tfx_embeddings.components.embedding_trainer import restore
from tfx_embeddings.components.vocabulary_file import VocabularyFileError
from tfx_embeddings.pipeline.demo.config import ConfigError, load_config
from tfx_embeddings.pipeline.demo.pipeline import create_pipeline

CONFIG = ("pipeline_name: p\npipeline_root: {root}\nserving_dir: s\n"
          "data: {{examples: e, vectors: v}}\n")


def _vectors(tmp_path, content, name="vectors.txt"):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return str(path)


def _binary(rows, dim, records):
    return f"{rows} {dim}\n".encode() + b"".join(
        token + b" " + struct.pack(f"<{len(values)}f", *values) for token, values in records)


def _gzip_cut_short():
    whole = gzip.compress(b"".join(b"w%d 0.5 0.25\n" % i for i in range(5000)))
    return whole[:len(whole) // 2]


def _bz2_corrupt():
    whole = bytearray(bz2.compress(b"".join(b"w%d 0.5 0.25\n" % i for i in range(5000))))
    whole[len(whole) // 2:len(whole) // 2 + 64] = bytes(64)
    return bytes(whole)


# name, vector file content (None: no file; a dict: {"name": file name, "data": content}),
# vocabulary tokens, expected error (after the path)
VECTOR_CASES = [
    ("rows of different dimensions", "a 1 2 3\nb 1 2\n", None,
     "line 2 (byte offset 8): expected 3 values after the token, found 2"),
    ("a non-numeric value", "a 1 2 3\nb 1 two 3\n", None,
     "line 2 (byte offset 8): value 'two' is not a number"),
    ("NaN", "a 1 2 3\nb nan 2 3\n", None, "line 2 (byte offset 8): value 'nan' is not a finite"),
    ("Inf", "a 1 2 3\nb 1 inf 3\n", None, "line 2 (byte offset 8): value 'inf' is not a finite"),
    ("an empty file", "", None, "the vector file is empty"),
    ("a missing file", None, None, "pretrained vector file not found"),
    ("a header with more rows than the body", "3 2\na 1 2\nb 1 2\n", None,
     "line 1: the header announces 3 rows, the file has 2"),
    ("a truncated binary file", _binary(2, 2, [(b"a", [1, 2]), (b"b", [3, 4])])[:-3], None,
     "truncated record"),
    ("invalid UTF-8 in a token", b"a 1 2\n\xff\xfe 1 2\n", ["a", "b"], "not valid UTF-8"),
    ("a header with a negative dimension", "3 -5\na 1 2 3 4 5\n", None,
     "line 1: the header b'3 -5' announces 3 rows of dimension -5; a word2vec header is 'N D'"),
    ("a header with a negative row count", "-3 2\na 1 2\n", None,
     "line 1: the header b'-3 2' announces -3 rows"),
    ("a header of an absurd dimension", "3 99999999\na 1 2\n", None,
     "announces 3 rows of dimension 99999999"),
    ("a .gz cut short", {"name": "vectors.txt.gz", "data": _gzip_cut_short()}, ["w1", "w2"],
     "the compressed file is cut short or corrupt after"),
    ("a corrupt .bz2", {"name": "vectors.txt.bz2", "data": _bz2_corrupt()}, ["w1", "w2"],
     "the compressed file is cut short or corrupt after"),
    ("a directory", {"name": "a_directory", "data": None}, None,
     ": is a directory, not a vector file"),
    ("UTF-16", "a 1 2\nb 3 4\n".encode("utf-16"), None, "is UTF-16 or UTF-32 encoded text"),
    ("tab-separated fields", "a\t1\t2\nb\t3\t4\n", None,
     "expected 2 values after the token, found 0 (its fields are separated by tabs"),
    ("a vector file of other words", "x 1 2\ny 3 4\n", None,
     ": only 0.0% of the vocabulary's 2 tokens have a vector (0.0% of the corpus's tokens), "
     "below min_coverage 25%. Is it the right file, read in the right format? It was read as "
     "glove of dimension 2. Vocabulary tokens without a vector: ['a', 'b']; the file's first "
     "tokens: ['x', 'y']. Nothing was published"),
]


@pytest.mark.parametrize("name, content, tokens, error", VECTOR_CASES,
                         ids=[c[0] for c in VECTOR_CASES])
def test_bad_vector_files(tmp_path, name, content, tokens, error, monkeypatch):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    if isinstance(content, dict):
        path = str(tmp_path / content["name"])
        os.mkdir(path) if content["data"] is None else open(path, "wb").write(content["data"])
    else:
        path = str(tmp_path / "missing.txt") if content is None else _vectors(tmp_path, content)
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", tokens or ["a", "b"])
    out = tmp_path / "out"
    with pytest.raises(ValueError) as raised:
        build_embedding(str(vocabulary), path, str(out), row_layout="padded")
    assert str(raised.value).startswith(path) and error in str(raised.value)
    assert not out.exists() or os.listdir(out) == []
    assert os.listdir(temporary) == []  # Beam's local directory too, refused before it ran.


def test_a_malformed_vocabulary_file(tmp_path, small_vectors):
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("3 w1\nw2\n")
    with pytest.raises(ValueError, match=f"{vocabulary} line 2: expected .count token."):
        build_embedding(str(vocabulary), small_vectors[0], str(tmp_path / "out"),
                        row_layout="padded")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("output, error", [
    ("{tmp}/a_file/out", "{tmp}/a_file is a file, so no directory can be created under it"),
    ("{tmp}/a_file", "the output path is a file; an embedding artifact is a directory"),
    # sysfs takes no new directory, whoever asks (root included, whom file modes let through).
    ("/sys/tfx-embeddings-test/out", "cannot be written (PermissionDeniedError: "
                                     "/sys/tfx-embeddings-test; Operation not permitted)"),
], ids=["under a file", "a file", "unwritable"])
def test_an_output_path_that_cannot_be_written(tmp_path, small_vectors, output, error):
    """The project's error, naming the path and the problem, before the vector file is read
    (before: TensorFlow's own exception types)."""
    (tmp_path / "a_file").write_text("")
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["w1"])
    output = output.format(tmp=tmp_path)
    with pytest.raises(embedding_artifact.CheckpointError) as raised:
        build_embedding(str(vocabulary), small_vectors[0], output, row_layout="padded")
    assert str(raised.value).startswith(f"{output}: {error.format(tmp=tmp_path)}")
    assert sorted(os.listdir(tmp_path)) == ["a_file", "vectors.txt", "vocab.txt"]


@pytest.fixture
def artifact(tmp_path, small_vectors):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["w1", "w2", "w3"])
    out = str(tmp_path / "artifact")
    build_embedding(str(vocabulary), small_vectors[0], out, num_shards=2, row_layout="padded")
    return out


def test_a_vocabulary_that_does_not_match_the_checkpoint(tmp_path, artifact):
    other = write_vocabulary(tmp_path / "other.txt", ["w2", "w1", "w3"])

    class TransformOutput:  # The one method of tft.TFTransformOutput the check uses.
        def vocabulary_file_by_name(self, name):
            return str(other)

    with pytest.raises(embedding_artifact.CheckpointError, match="built for another vocabulary"):
        restore.pretrained_embedding(artifact, transform_output=TransformOutput(),
                                     vocabulary_name="tokens")


def test_a_truncated_checkpoint(artifact):
    data = os.path.join(artifact, "checkpoint", "embeddings.data-00000-of-00002")
    with open(data, "r+b") as f:
        f.truncate(10)
    with pytest.raises(embedding_artifact.CheckpointError,
                       match="data-00000-of-00002 has 10 bytes"):
        restore.pretrained_embedding(artifact)


@pytest.mark.parametrize("extra, error", [
    ("embedding: {num_shards: -1}\n", "embedding.num_shards: must be an int >= 1, got -1"),
    ("text: {max_tokens: many}\n", "text.max_tokens: Input should be a valid integer"),
    ("trainer: {epoch: 3}\n", "trainer.epoch: unknown key"),
    ("beam_pipeline_args: --runner=DirectRunner\n",
     "beam_pipeline_args: Input should be a valid list"),
])
def test_bad_configs(tmp_path, extra, error):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(root="r") + extra)
    with pytest.raises(ConfigError, match=f"^{path}: {error}"):
        load_config(str(path))


def test_a_remote_root_without_a_local_metadata_store(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(root="gs://bucket/root"))
    with pytest.raises(ValueError, match="a local run needs a local metadata_path"):
        create_pipeline(load_config(str(path)))


@pytest.mark.parametrize("content, has_counts, error", [
    (b"3 w1\r\n2 w2\r\n", True, r"line 1: the token b'w1\\r' holds a carriage return \(CRLF"),
    (b"w1\r\nw2\r\n", False, r"line 1: the token b'w1\\r' holds a carriage return"),
    (b"3 w1\n2 w2\n1 w1\n", True, r"line 3: the token b'w1' is also on line 1"),
    (b"w1\n\nw2\n", False, r"line 2: empty token"),
    (b"w1\nw2\n", True, r"line 1: expected 'count token', got b'w1'; is it a file of tokens"),
    (b"", True, r"the vocabulary is empty"),
])
def test_a_vocabulary_tft_would_not_write(tmp_path, small_vectors, content, has_counts, error):
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_bytes(content)
    with pytest.raises(VocabularyFileError, match=f"^{vocabulary}:? {error}"):
        build_embedding(str(vocabulary), small_vectors[0], str(tmp_path / "out"),
                        vocabulary_has_counts=has_counts, row_layout="padded")
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("name, content", [
    ("a UTF-8 byte order mark", b"\xef\xbb\xbfa 1 2\nb 3 4\n"),
    ("CRLF line endings", b"a 1 2\r\nb 3 4\r\n"),
    ("a header and a byte order mark", b"\xef\xbb\xbf2 2\na 1 2\nb 3 4\n"),
])
def test_files_from_other_tools_that_are_valid(tmp_path, name, content):
    """Read as gensim users would expect: the byte order mark marks the encoding (it is not part
    of the first token), a carriage return ends a line."""
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["a", "b"])
    manifest = build_embedding(str(vocabulary), _vectors(tmp_path, content), str(tmp_path / "o"),
                               num_oov_buckets=0, row_layout="padded")
    matrix = tf.train.load_variable(str(tmp_path / "o" / "checkpoint" / "embeddings"),
                                    "embeddings")
    np.testing.assert_array_equal(matrix[1:], [[1, 2], [3, 4]])
    assert manifest.coverage.tokens_with_vector == 2


def test_a_vector_file_replaced_while_the_job_reads_it(tmp_path, small_vectors):
    """The file changes after EmbeddingGen inspected it: the job fails rather than mix files."""
    import apache_beam as beam

    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["w1", "w2"])
    path = small_vectors[0]

    class RewriteThenRun(beam.Pipeline):  # Run once the job is built: after the inspection.
        def run(self, *args, **kwargs):
            with open(path, "a") as f:
                f.write("late 1 2 3 4 5 6\n")
            return super().run(*args, **kwargs)

    with pytest.raises(ValueError, match=f"^{path}: the file changed while the job read it"):
        build_embedding(str(vocabulary), path, str(tmp_path / "out"),
                        make_pipeline=lambda: RewriteThenRun(runner="FnApiRunner"),
                        row_layout="padded")
    assert os.listdir(tmp_path / "out") == []


def test_the_coverage_guard_can_be_lowered(tmp_path):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["a", "b", "c", "d", "e"])
    path = _vectors(tmp_path, "a 1 2\nzz 3 4\n")
    with pytest.raises(ValueError, match="only 20.0% of the vocabulary's 5 tokens"):
        build_embedding(str(vocabulary), path, str(tmp_path / "out"), row_layout="padded")
    manifest = build_embedding(str(vocabulary), path, str(tmp_path / "out"), min_coverage=0.1,
                               row_layout="padded")
    assert manifest.coverage.tokens_with_vector == 1


LONG_LINES = [
    ("a 16 MB line of a 4M-value 'vector'", b"the" + b" 0.1" * (4 << 20) + b"\n", ["the"],
     "line 1 (byte offset 0): longer than max_line_bytes (1048576 bytes) without a line end: "
     "not a vector file's line"),
    ("CR-only line ends", b"a 1 2\rb 3 4\r", ["a", "b"],
     "line 1 (byte offset 0): its lines end in CR only (a carriage return at byte 5, no line "
     "feed; classic Mac OS line ends)"),
    ("70,000 values in a row", b"the" + b" 0" * 70000 + b"\n", ["the"],
     "line 1 (byte offset 0): 70000 values after the token, more than max_dimension (65536)"),
    ("a 1.2 MB line after the first", b"a 1 2\nb" + b" 1" * 600_000 + b"\n", ["a", "b"],
     "line 2 (byte offset 6): a line longer than max_line_bytes (1048576 bytes); raise "
     "max_line_bytes"),
    ("CR-only line ends after an LF", b"a 1 2\n" + b"b 3 4\r" * 300_000, ["a", "b"],
     "line 2 (byte offset 6): a line longer than max_line_bytes (1048576 bytes) (it holds a "
     "carriage return: lines that end in CR only"),
]


@pytest.mark.parametrize("name, content, tokens, error", LONG_LINES,
                         ids=[c[0] for c in LONG_LINES])
def test_long_lines_are_refused_in_seconds(tmp_path, name, content, tokens, error):
    """A line past max_line_bytes, a row past max_dimension, CR-only line ends: refused with
    the file, the byte offset and the parameter that raises the limit, having read no more
    than the limit of the line (before: a 16 MB line was published as a 4M-dimension vector,
    a 64 MB one took 34 s to inspect)."""
    import time

    path = _vectors(tmp_path, content)
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", tokens)
    started = time.perf_counter()
    with pytest.raises(VectorFileError) as raised:
        build_embedding(str(vocabulary), path, str(tmp_path / "out"), row_layout="tft")
    assert time.perf_counter() - started < 20
    assert str(raised.value).startswith(f"{path} {error}")
    assert os.listdir(tmp_path / "out") == [] if (tmp_path / "out").exists() else True


def test_a_long_line_is_read_in_linear_time_when_allowed(tmp_path):
    """With max_line_bytes raised, a line of a 48 MB token is read in one pass (the format
    sniffing appended 64 KB steps to bytes: quadratic, 34 s for 64 MB) and the job reads the
    rest of the file."""
    import time

    path = _vectors(tmp_path, b"x" * (48 << 20) + b" 0.5 0.25\nw1 1 2\n")
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["w1"])
    started = time.perf_counter()
    source = vectors.inspect_source(path, max_line_bytes=64 << 20)
    assert time.perf_counter() - started < 5
    assert (source.format, source.dimension) == ("glove", 2)
    build_embedding(str(vocabulary), path, str(tmp_path / "out"), max_line_bytes=64 << 20,
                    num_oov_buckets=0, row_layout="tft")
    matrix = tf.train.load_variable(str(tmp_path / "out" / "checkpoint" / "embeddings"),
                                    "embeddings")
    np.testing.assert_array_equal(matrix, [[1, 2]])


def test_a_long_line_across_ranges_is_refused_where_it_starts(tmp_path, monkeypatch):
    """The ranges a long line runs into skip it (at most max_line_bytes read); the range that
    holds its start refuses it with its line and byte offset."""
    from tfx_embeddings.components.embedding_gen import beam_impl

    monkeypatch.setattr(beam_impl, "RANGE_BYTES", 97)  # The line spans three ranges.
    path = _vectors(tmp_path, b"a 1 2\nb" + b" 1" * 150 + b"\nc 1 2\n")
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", ["a", "b", "c"])
    with pytest.raises(VectorFileError) as raised:
        build_embedding(str(vocabulary), path, str(tmp_path / "out"), row_layout="tft",
                        max_line_bytes=200)
    assert str(raised.value) == (f"{path} line 2 (byte offset 6): a line longer than "
                                 f"max_line_bytes (200 bytes); raise max_line_bytes if the "
                                 f"file's lines really are that long")

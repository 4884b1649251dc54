"""Vector files as people keep them: zip archives as downloaded (stored or deflated, one member
or several), compression recognised by its magic number, the old fastText format recognised by
its header, a file of no known format refused with what was checked, and a named pipe refused
at once."""

import gzip
import os
import struct
import threading
import time
import zipfile

import numpy as np
import pytest

from tests.conftest import write_vocabulary
from tfx_embeddings.components.embedding_gen import vectors
from tfx_embeddings.components.embedding_gen.build import build_embedding
from tfx_embeddings.components.embedding_gen.sources import VectorFileError

TOKENS = [f"w{i}" for i in range(0, 40, 3)]


def _matrix(out):
    import tensorflow as tf
    return tf.train.load_variable(os.path.join(out, "checkpoint", "embeddings"), "embeddings")


def _build(tmp_path, path, name, **parameters):
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", TOKENS)
    out = str(tmp_path / name)
    manifest = build_embedding(str(vocabulary), path, out, row_layout="padded", num_shards=2,
                               **parameters)
    return _matrix(out), manifest


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                                         zipfile.ZIP_BZIP2])
def test_a_zip_member_gives_the_rows_of_the_plain_file(tmp_path, small_vectors, compression):
    path, _ = small_vectors
    plain, _ = _build(tmp_path, path, "plain")
    archive = tmp_path / "glove.zip"
    with zipfile.ZipFile(archive, "w", compression) as z:
        z.write(path, "glove.6d.txt")
    zipped, manifest = _build(tmp_path, str(archive), "zipped")
    assert zipped.tobytes() == plain.tobytes()
    assert manifest.source.path == f"{archive}#glove.6d.txt"
    assert manifest.counts.vector_rows_read == 40


def test_a_deflated_member_is_read_by_two_workers_in_stripes(tmp_path, small_vectors,
                                                            monkeypatch):
    """Two worker processes each inflate the member and parse every other chunk: the matrix
    and the manifest's counts are the plain file's, the fingerprint the one-worker read's."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_embeddings.components.embedding_gen import beam_impl

    path, _ = small_vectors
    archive = tmp_path / "glove.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(path, "glove.6d.txt")
    monkeypatch.setattr(beam_impl, "RANGE_BYTES", 97)  # Read when the job is built.
    plain, plain_manifest = _build(tmp_path, path, "plain")
    one, one_manifest = _build(tmp_path, str(archive), "one")
    two, two_manifest = _build(
        tmp_path, str(archive), "two", make_pipeline=lambda: beam.Pipeline(
            options=PipelineOptions(["--runner=FnApiRunner", "--direct_num_workers=2",
                                     "--direct_running_mode=multi_processing"])))
    assert two.tobytes() == one.tobytes() == plain.tobytes()
    assert two_manifest.counts == one_manifest.counts == plain_manifest.counts
    assert two_manifest.source == one_manifest.source


@pytest.mark.parametrize("args, stripes", [
    ([], 1),  # DirectRunner's default: one worker.
    (["--direct_num_workers=2"], 2),
    (["--direct_num_workers=0"], os.cpu_count()),  # Every core.
    (["--runner=FlinkRunner", "--parallelism=4"], 4),
    (["--runner=FlinkRunner"], 2),
    (["--runner=DataflowRunner", "--max_num_workers=100"], 8),
])
def test_stripes_follow_the_jobs_parallelism(args, stripes):
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_embeddings.components.embedding_gen import beam_impl

    assert beam_impl.stripe_count(PipelineOptions(args)) == min(stripes, 8)


def test_a_stored_member_is_read_in_parallel_ranges(tmp_path, small_vectors):
    path, expected = small_vectors
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.writestr("README", "other files come first")
        z.write(path, "vectors.txt")
    source = vectors.inspect_source(f"{archive}#vectors.txt")
    assert not source.compressed and source.location.data_start > 0
    ranges = vectors.split_ranges(source, 97)
    assert len(ranges) > 10 and all(r.chunk is None for r in ranges)  # No inflating.
    matcher = vectors.Matcher.for_vocabulary([b"w7", b"w39"], lambda i: i)
    found = {}
    import hashlib
    for byte_range in ranges:
        for _, matched in vectors.parse_range(source, byte_range, matcher, hashlib.sha256()):
            found.update(zip(matched.rows.tolist(), matched.vectors))
    assert found[0].tobytes() == expected["w7"].tobytes()
    assert found[1].tobytes() == expected["w39"].tobytes()


def test_a_zip_of_several_members_needs_one_named(tmp_path, small_vectors):
    archive = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for dim in (50, 100):
            z.write(small_vectors[0], f"glove.6B.{dim}d.txt")
    with pytest.raises(VectorFileError, match=r"a zip archive of 2 files; name the vector file "
                                              r"as .*glove.6B.zip#MEMBER, one of "
                                              r"\['glove.6B.50d.txt', 'glove.6B.100d.txt'\]"):
        vectors.inspect_source(str(archive))
    with pytest.raises(VectorFileError, match=r"has no member 'glove.6B.300d.txt'; it has"):
        vectors.inspect_source(f"{archive}#glove.6B.300d.txt")
    assert vectors.inspect_source(f"{archive}#glove.6B.100d.txt").dimension == 6


def test_compression_is_recognised_by_its_content(tmp_path, small_vectors):
    path, _ = small_vectors
    plain, _ = _build(tmp_path, path, "plain")
    text = open(path, "rb").read()
    disguised = tmp_path / "downloaded.txt"  # gzip data, named as text.
    disguised.write_bytes(gzip.compress(text))
    matrix, _ = _build(tmp_path, str(disguised), "gz")
    assert matrix.tobytes() == plain.tobytes()
    liar = tmp_path / "vectors.txt.gz"  # Named gzip, plain text inside.
    liar.write_bytes(text)
    with pytest.raises(VectorFileError, match="named as gzip but its first bytes .* are not "
                                              "gzip data"):
        vectors.inspect_source(str(liar))


def _old_fasttext(path, words, dim=4, bucket=8, seed=0):
    """A fastText model in the 2016 format (no magic number): args, dictionary, matrix."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<2i", dim, 5))  # dim, ws
        f.write(struct.pack("<10id", 5, 1, 5, 1, 2, 1, bucket, 3, 6, 100, 1e-4))
        f.write(struct.pack("<3iq", len(words), len(words), 0, 100))
        for word in words:
            f.write(word.encode() + b"\0" + struct.pack("<qb", 10, 0))
        f.write(struct.pack("<2q", len(words) + bucket, dim))
        f.write(rng.uniform(-1, 1, (len(words) + bucket, dim)).astype("<f4").tobytes())
    return path


def test_auto_recognises_an_old_fasttext_model(tmp_path):
    path = _old_fasttext(tmp_path / "wiki.xx.bin", TOKENS[:5] + ["other"])
    source = vectors.inspect_source(str(path))
    assert source.format == "fasttext_bin" and not source.fasttext_model.new_format
    assert source.dimension == 4
    _, manifest = _build(tmp_path, str(path), "old")
    assert manifest.coverage.tokens_with_vector == 5


def test_a_file_of_no_known_format_is_refused_with_what_was_checked(tmp_path):
    path = tmp_path / "vectors.tar"
    path.write_bytes(b"\x00\x13\x7f\x45" * 64 + os.urandom(300))
    with pytest.raises(VectorFileError) as raised:
        vectors.inspect_source(str(path))
    message = str(raised.value)
    assert "not a vector file this reader knows" in message and "UTF-16" not in message
    for checked in ("not text", "not a fastText model (no magic number 793712314",
                    "not gzip, bzip2 or zip data"):
        assert checked in message, checked


def test_a_named_pipe_is_refused_at_once(tmp_path):
    pipe = tmp_path / "vectors.txt"
    os.mkfifo(pipe)
    started = time.monotonic()
    outcome = {}

    def attempt():
        try:
            vectors.inspect_source(str(pipe))
        except VectorFileError as e:
            outcome["error"] = str(e)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=5)
    if thread.is_alive():  # Unblock the reader before failing: open a writer.
        with open(pipe, "wb"):
            pass
        pytest.fail("reading a named pipe hung")
    assert time.monotonic() - started < 1
    assert "is not a regular file (a named pipe, a socket or a device)" in outcome["error"]
    assert "write the stream to a file first" in outcome["error"]


def test_utf16_without_a_byte_order_mark_is_named(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes("a 1 2\nb 3 4\n".encode("utf-16-le"))
    with pytest.raises(VectorFileError, match="is UTF-16 or UTF-32 encoded text"):
        vectors.inspect_source(str(path))

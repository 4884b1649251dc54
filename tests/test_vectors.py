"""Parsing vector files: byte ranges, exact float32 values, formats, and errors naming the line."""

import gzip
import hashlib

import numpy as np
import pytest

from tfx_embeddings.components.embedding_gen import vectors


def _ranges(source, range_bytes, stripes=2):
    """The ByteRanges a job's workers parse: a compressed stream's stripes' chunks in order."""
    ranges = []
    for part in vectors.split_ranges(source, range_bytes, stripes):
        ranges += (vectors.stripe_ranges(source, part) if isinstance(part, vectors.Stripe)
                   else [part])
    return sorted(ranges)


def _parse_all(source, vocabulary, range_bytes, stripes=2):
    rows, offsets, values = [], [], []
    tokens = list(vocabulary)
    matcher = vectors.Matcher.for_vocabulary(tokens, lambda i: vocabulary[tokens[i]])
    for byte_range in _ranges(source, range_bytes, stripes):
        for _, matched in vectors.parse_range(source, byte_range, matcher, hashlib.sha256()):
            rows += list(matched.rows)
            offsets += list(matched.offsets)
            values += list(matched.vectors)
    return rows, offsets, values


@pytest.mark.parametrize("range_bytes", [1 << 20, 97, 13])
def test_ranges_partition_the_rows_and_values_are_exact(small_vectors, range_bytes):
    path, expected = small_vectors
    source = vectors.inspect_source(path)
    assert (source.format, source.dimension, source.body_start) == ("glove", 6, 0)
    vocabulary = {f"w{i}".encode(): i for i in range(0, 40, 3)}
    rows, offsets, values = _parse_all(source, vocabulary, range_bytes)
    assert sorted(rows) == sorted(vocabulary.values())  # Each row exactly once.
    for row, value in zip(rows, values):
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, expected[f"w{row}"])
    with open(path, "rb") as f:
        text = f.read()
    for row, offset in zip(rows, offsets):
        assert text[offset:].startswith(f"w{row} ".encode())


def test_word2vec_text_header_and_trailing_spaces(tmp_path):
    path = tmp_path / "vectors.vec"
    path.write_text("2 3\nhello 1 2 3 \nworld 4 5 6 \n")  # fastText .vec style.
    source = vectors.inspect_source(str(path))
    assert (source.format, source.dimension, source.header_rows) == ("word2vec_text", 3, 2)
    rows, _, values = _parse_all(source, {b"world": 7}, 5)
    assert rows == [7]
    np.testing.assert_array_equal(values[0], [4, 5, 6])


def test_glove_token_with_spaces(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("a 1 2\nat name@domain.com 3 4\nb 5 6\n")
    source = vectors.inspect_source(str(path))
    rows, _, values = _parse_all(source, {b"at name@domain.com": 1, b"b": 2}, 1 << 20)
    assert rows == [1, 2]
    np.testing.assert_array_equal(values[0], [3, 4])


def test_lines_of_more_than_65535_spaces_are_counted_exactly(tmp_path):
    """Spaces are counted per line in 16 bits; a longer line is counted again, whole."""
    path = tmp_path / "wide.vec"
    path.write_text("2 65536\na " + " ".join(["1"] * 65536) + "\nb " + " ".join(["2"] * 65536)
                    + "\n")
    source = vectors.inspect_source(str(path))
    rows, _, values = _parse_all(source, {b"b": 1}, 1 << 20)
    assert rows == [1] and values[0].shape == (65536,) and (values[0] == 2).all()
    path = tmp_path / "long.vec"  # 65539 spaces: 3 in 16 bits, the dimension.
    path.write_text("2 3\na 1 2 3\nb " + " ".join(["1"] * 65539) + "\n")
    with pytest.raises(vectors.VectorFileError, match="line 3 .*expected 3 values after the "
                                                      "token, found 65539"):
        _parse_all(vectors.inspect_source(str(path)), {b"a": 1}, 1 << 20)


@pytest.mark.parametrize("stripes", [1, 2, 3])
def test_gzip_is_read_in_stripes_of_chunks_of_whole_lines(small_vectors, tmp_path, stripes):
    """A compressed stream cannot be cut into ranges: each of the stripes inflates it all and
    keeps every stripes-th chunk of whole rows; together they hold every byte once."""
    path, expected = small_vectors
    gz = tmp_path / "vectors.txt.gz"
    with open(path, "rb") as f, gzip.open(gz, "wb") as out:
        text = f.read()
        out.write(text)
    source = vectors.inspect_source(str(gz))
    assert vectors.split_ranges(source, 100, stripes) == [
        vectors.Stripe(i, stripes, 100) for i in range(stripes)]
    for i in range(stripes):  # Every stripes-th chunk, from the i-th.
        starts = [r.start for r in vectors.stripe_ranges(source, vectors.Stripe(i, stripes, 100))]
        assert starts == [r.start for r in _ranges(source, 100, 1)][i::stripes]
    ranges = _ranges(source, 100, stripes)
    assert len(ranges) > 3 and ranges[0].start == 0 and ranges[-1].end == len(text)
    assert all(a.end == b.start for a, b in zip(ranges, ranges[1:]))
    for byte_range in ranges:  # Each chunk: the stream's bytes of whole lines, where they were.
        assert byte_range.chunk == text[byte_range.start:byte_range.end]
        assert byte_range.chunk.endswith(b"\n")
        assert text[byte_range.start - 1:byte_range.start] in (b"", b"\n")
    assert all(len(r.chunk) >= 100 for r in ranges[:-1])
    rows, offsets, values = _parse_all(source, {b"w5": 5, b"w33": 33}, 100, stripes)
    assert rows == [5, 33] and text[offsets[1]:].startswith(b"w33 ")
    np.testing.assert_array_equal(values[0], expected["w5"])


@pytest.mark.parametrize("content, message", [
    ("a 1 2 3\nb 1 2\nc 1 2 3\n",
     "line 2 (byte offset 8): expected 3 values after the token, found 2"),
    ("a 1 2 3\nb 1 2 3\nc 1 x 3\n", "line 3 (byte offset 16): value 'x' is not a number"),
    ("a 1 2 3\nb 1 nan 3\n", "line 2 (byte offset 8): value 'nan' is not a finite float32"),
    ("a 1 2 3\nb 1 2 1e39\n", "line 2 (byte offset 8): value '1e39' is not a finite float32"),
    ("a 1 2 3\n\nb 1 2 3\n", "line 2 (byte offset 8): empty line"),
])
def test_bad_rows_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    source = vectors.inspect_source(str(path))
    with pytest.raises(vectors.VectorFileError) as error:
        _parse_all(source, {b"a": 1, b"b": 2, b"c": 3}, 4)
    assert str(error.value) == f"{path} {message}"


def test_unusable_files(tmp_path):
    with pytest.raises(vectors.VectorFileError, match="nope.txt: pretrained vector file not found"):
        vectors.inspect_source(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(vectors.VectorFileError, match="empty.txt: the vector file is empty"):
        vectors.inspect_source(str(tmp_path / "empty.txt"))
    (tmp_path / "noheader.txt").write_text("a 1 2\n")
    with pytest.raises(vectors.VectorFileError, match="line 1: expected a header 'N D'"):
        vectors.inspect_source(str(tmp_path / "noheader.txt"), "word2vec_text")


def test_values_are_python_floats_whatever_parser_reads_them(tmp_path):
    """Arrow's parser reads the usual values; any it refuses, Python reads: a value is always
    float(text) rounded to float32, as gensim reads it, and text Python refuses is an error."""
    rng = np.random.default_rng(5)
    tokens = ["a", "b", "c", "d"]
    values = [["+1.5", "1_0", ".5", "5."], ["1e-45", "-0", "3.4028234e38", "0.1234567890123456789"],
              [repr(x) for x in rng.uniform(-1e3, 1e3, 4)], ["1E-3", "2e+2", "-7", "0"]]
    path = tmp_path / "v.txt"
    path.write_text("".join(f"{t} {' '.join(v)}\n" for t, v in zip(tokens, values)))
    source = vectors.inspect_source(str(path))
    vocabulary = {t.encode(): i for i, t in enumerate(tokens)}
    rows, _, parsed = _parse_all(source, vocabulary, 1 << 20)
    for row, vector in zip(rows, parsed):
        expected = np.array([float(v) for v in values[row]]).astype(np.float32)
        assert vector.tobytes() == expected.tobytes()
    path.write_text("a 1 2 3 4\nb 1 2 x 4\n")
    with pytest.raises(vectors.VectorFileError, match="line 2 .*value 'x' is not a number"):
        _parse_all(vectors.inspect_source(str(path)), vocabulary, 1 << 20)

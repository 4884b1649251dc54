"""Pretrained vector files: format detection and parsing of byte ranges in batches.

A text vector file (GloVe without a header, word2vec text and fastText .vec with an `N D` header)
is split into byte ranges that Beam workers read independently: a line belongs to the range that
holds its first byte. Only rows whose token is in the vocabulary are parsed to floats, all of a
block's rows in one numpy call; the others are only checked for their number of fields.
Compressed files (.gz, .bz2) cannot be split and are read as one range.
"""

import bz2
import dataclasses
import gzip
import hashlib
import warnings

import numpy as np
import tensorflow as tf

FORMATS = ("glove", "word2vec_text")
_BLOCK_BYTES = 8 << 20
_COMPRESSORS = {".gz": gzip.GzipFile, ".bz2": bz2.BZ2File}


class VectorFileError(ValueError):
    """A vector file that cannot be used; the message names the file, the line and the problem."""


@dataclasses.dataclass(frozen=True)
class VectorSource:
    """What the workers need to know about a vector file, found once by the driver."""
    path: str
    format: str
    dimension: int
    size: int
    body_start: int  # Byte offset of the first vector row (after the header, if any).
    header_rows: int = -1  # Row count the header announces; -1 when there is no header.

    @property
    def compressed(self):
        return any(self.path.endswith(ext) for ext in _COMPRESSORS)

    def byte_ranges(self, range_bytes):
        """Half-open [start, end) byte ranges covering the body; one range if compressed."""
        if self.compressed:
            return [(self.body_start, -1)]
        starts = list(range(self.body_start, self.size, range_bytes))
        return [(s, min(s + range_bytes, self.size)) for s in starts]


def open_vector_file(path):
    """Opens a (possibly compressed) vector file for binary reading through tf.io.gfile."""
    raw = tf.io.gfile.GFile(path, "rb")
    for ext, opener in _COMPRESSORS.items():
        if path.endswith(ext):
            return opener(fileobj=raw, mode="rb")
    return raw


def inspect_source(path, fmt="auto"):
    """Detects the format and dimension from the first line; raises VectorFileError."""
    if not tf.io.gfile.exists(path):
        raise VectorFileError(f"{path}: pretrained vector file not found")
    size = tf.io.gfile.stat(path).length
    with open_vector_file(path) as f:
        first = f.readline()
    if not first.strip():
        raise VectorFileError(f"{path}: the vector file is empty" if size == 0 or not first
                              else f"{path} line 1: empty first line, expected a vector row")
    fields = first.split()
    has_header = len(fields) == 2 and all(x.isdigit() for x in fields)
    if fmt == "auto":
        fmt = "word2vec_text" if has_header else "glove"
    if fmt == "word2vec_text":
        if not has_header:
            raise VectorFileError(f"{path} line 1: expected a header 'N D' for word2vec text, "
                                  f"got {first[:80]!r}")
        rows, dim = int(fields[0]), int(fields[1])
        if dim == 0:
            raise VectorFileError(f"{path} line 1: header announces dimension 0")
        return VectorSource(path, fmt, dim, size, body_start=len(first), header_rows=rows)
    if fmt != "glove":
        raise VectorFileError(f"{path}: unknown vector format {fmt!r}; one of {FORMATS}")
    if len(fields) < 2:
        raise VectorFileError(f"{path} line 1: expected a token and its values, got {first[:80]!r}")
    return VectorSource(path, fmt, len(fields) - 1, size, body_start=0)


@dataclasses.dataclass
class MatchedRows:
    """Vectors of vocabulary tokens found in one part of the file, in file order."""
    rows: np.ndarray  # int64 row of the checkpoint for each vector.
    offsets: np.ndarray  # int64 byte offset of the vector's line: the first occurrence wins.
    vectors: np.ndarray  # float32 [n, dimension].


def _lines_in_range(source, start, end):
    """Yields (offset of the block's first line, lines) for the lines that start in [start, end)."""
    with open_vector_file(source.path) as f:
        if end < 0:  # Compressed: not seekable cheaply, read from the top.
            if source.body_start:
                f.readline()
        elif start > source.body_start:
            f.seek(start - 1)
            start += len(f.readline()) - 1  # Skip the line that began in the previous range.
        else:
            f.seek(start)
        offset, carry = start, b""
        while end < 0 or offset < end:
            block = f.read(_BLOCK_BYTES)
            if not block:
                if carry:
                    yield offset, [carry]
                return
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            if end >= 0:  # Keep only lines that start before the end of the range.
                position, keep = offset, 0
                while keep < len(lines) and position < end:
                    position += len(lines[keep]) + 1
                    keep += 1
                if keep < len(lines):
                    yield offset, lines[:keep]
                    return
            yield offset, lines
            offset += sum(len(line) + 1 for line in lines)


def fingerprint(source, range_digests):
    """sha256 of the header and of the body ranges' digests, in file order."""
    digest = hashlib.sha256()
    with open_vector_file(source.path) as f:
        digest.update(f.read(source.body_start))
    for range_digest in range_digests:
        digest.update(range_digest.encode())
    return digest.hexdigest()


def line_number(path, offset):
    """The 1-based line number of the line at a byte offset, for error messages."""
    with open_vector_file(path) as f:
        return f.read(offset).count(b"\n") + 1


def _fail(source, offset, problem):
    raise VectorFileError(
        f"{source.path} line {line_number(source.path, offset)} (byte offset {offset}): {problem}")


def parse_range(source, start, end, vocabulary, digest):
    """Yields (lines read, MatchedRows) for each block of the rows starting in [start, end).

    vocabulary maps token bytes to checkpoint rows. digest (a hashlib object) is updated with the
    bytes read, so the digests of all ranges, in order, fingerprint the file's body.
    """
    dim = source.dimension
    for block_offset, lines in _lines_in_range(source, start, end):
        position = block_offset
        rows, offsets, values = [], [], []
        for line in lines:
            digest.update(line + b"\n")
            line_offset, position = position, position + len(line) + 1
            if line[-1:] in (b" ", b"\r", b"\t"):
                line = line.rstrip()
            if not line:
                _fail(source, line_offset, "empty line")
            n_fields = line.count(b" ")
            if n_fields < dim or (n_fields > dim and source.format != "glove"):
                _fail(source, line_offset, f"expected {dim} values after the token, found {n_fields}")
            if n_fields == dim:
                token, rest = line.split(b" ", 1)
            else:  # A GloVe token with spaces in it: the vector is the last dim fields.
                token, rest = line.rsplit(b" ", dim)[0], line.split(b" ", n_fields - dim + 1)[-1]
            row = vocabulary.get(token)
            if row is not None:
                rows.append(row)
                offsets.append(line_offset)
                values.append(rest)
        vectors = np.zeros((0, dim), np.float32)
        if rows:
            with warnings.catch_warnings():  # A short parse is detected below, by its size.
                warnings.simplefilter("ignore", DeprecationWarning)
                vectors = np.fromstring(b" ".join(values), dtype=np.float32, sep=" ")
            if vectors.size != len(rows) * dim or not np.isfinite(vectors).all():
                _find_bad_value(source, offsets, values)
            vectors = vectors.reshape(-1, dim)
        yield len(lines), MatchedRows(np.asarray(rows, np.int64), np.asarray(offsets, np.int64),
                                      vectors)


def _find_bad_value(source, offsets, values):
    """Slow path: finds the row whose values are not dimension finite numbers, and fails."""
    for offset, text in zip(offsets, values):
        fields = text.split()
        for field in fields:
            try:
                with np.errstate(over="ignore"):
                    value = np.float32(float(field))
            except ValueError:
                _fail(source, offset, f"value {field.decode(errors='replace')!r} is not a number")
            if not np.isfinite(value):
                _fail(source, offset, f"value {field.decode()!r} is not a finite float32")
    raise AssertionError("a block failed to parse but no row is wrong")

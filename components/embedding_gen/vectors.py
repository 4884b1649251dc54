"""Pretrained vector files: format detection and parsing of byte ranges in batches.

Formats (plain, .gz or .bz2; any path tf.io.gfile opens):
- glove: text without a header; a token may contain spaces (GloVe 840B): the vector is the last
  D fields of the line.
- word2vec_text: text with an `N D` header line; fastText .vec is this format (it ends each row
  with a space).
- word2vec_binary: the word2vec C tool's format: an `N D` header line, then per row the token, a
  space and D little-endian float32. Newlines before a token are skipped, as gensim does: the C
  tool writes one after each vector, gensim's writer does not.

Detection ("auto"): no `N D` header means glove. After a header, a first row that is a token and
D numbers means word2vec_text; a first record whose 4*D vector bytes are not text means
word2vec_binary (float32 values hold bytes that text cannot: >= 0x80 for any negative value,
control bytes, ...). Anything else is refused with the line it stopped at. A wrong guess could
not produce a matrix anyway: every row is then checked against the format and the header counts.

Parallel reading. Text files are cut into byte ranges anywhere: a line belongs to the range that
holds its first byte. A binary record may contain any byte, so a range cannot find its first
record on its own: `split_ranges` makes one sequential pass that hops from record to record (a
find() for the space after the token, then a jump of 4*D bytes; nothing is parsed) and cuts the
body at record boundaries; workers then read whole records. Compressed files are one range.

Only rows whose token is in the vocabulary (exactly, or case-folded when that fallback is on) are
parsed to floats, a block's rows at once; the others are only checked for their number of fields
(text) or their length (binary). Text values are parsed as float64 then rounded to float32, as
gensim does (np.float32(str)), so the vectors are bit-identical to gensim's.
"""

import bz2
import dataclasses
import functools
import gzip
import hashlib
import warnings
import zlib
from typing import Optional

import numpy as np
import tensorflow as tf

from tfx_embeddings.components.embedding_gen import fasttext, parameters

GLOVE, WORD2VEC_TEXT, WORD2VEC_BINARY = "glove", "word2vec_text", "word2vec_binary"
FASTTEXT_BIN = fasttext.FORMAT
FORMATS = parameters.VECTOR_FORMATS  # GLOVE, WORD2VEC_TEXT, WORD2VEC_BINARY, FASTTEXT_BIN
_BLOCK_BYTES = 8 << 20
_MAX_TOKEN_BYTES = 1 << 16  # A binary "token" longer than this means the file is not binary.
_MAX_DIMENSION = 1 << 16  # A header announcing more is not a vector file's.
_COMPRESSORS = {".gz": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
                ".bz2": lambda f: bz2.BZ2File(f, mode="rb")}
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


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
    modified: int = 0  # The file's modification time (ns) when it was inspected.
    fasttext_model: Optional[fasttext.FastTextModel] = None  # Of a fastText .bin file.

    @property
    def compressed(self):
        return any(self.path.endswith(ext) for ext in _COMPRESSORS)

    @property
    def binary(self):
        return self.format == WORD2VEC_BINARY


def open_vector_file(path):
    """Opens a (possibly compressed) vector file for binary reading through tf.io.gfile.

    A compressed stream that is cut short or corrupt raises VectorFileError naming the file.
    """
    raw = tf.io.gfile.GFile(path, "rb")
    for ext, opener in _COMPRESSORS.items():
        if path.endswith(ext):
            return _CheckedStream(opener(raw), path)
    return raw


class _CheckedStream:
    """A decompressing stream whose read errors name the file and how far it got."""

    def __init__(self, stream, path):
        self._stream, self._path, self._read = stream, path, 0

    def _call(self, method, *args):
        try:
            data = method(*args)
        except (EOFError, OSError, zlib.error) as e:
            raise VectorFileError(
                f"{self._path}: the compressed file is cut short or corrupt after "
                f"{self._read} bytes of data ({type(e).__name__}: {e})") from None
        self._read += len(data)
        return data

    def read(self, size=-1):
        return self._call(self._stream.read, size)

    def readline(self):
        return self._call(self._stream.readline)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stream.close()


def check_unchanged(source):
    """Raises VectorFileError if the file is not the one inspected (replaced or rewritten while
    the job read it): a matrix would mix rows of two files."""
    stat = tf.io.gfile.stat(source.path)
    if stat.length != source.size or stat.mtime_nsec != source.modified:
        raise VectorFileError(
            f"{source.path}: the file changed while the job read it ({source.size} bytes when "
            f"it started, {stat.length} now); nothing was published, run again")


def inspect_source(path, fmt="auto"):
    """Detects the format and dimension from the first rows; raises VectorFileError."""
    if fmt not in FORMATS + ("auto",):
        raise VectorFileError(f"{path}: unknown vector format {fmt!r}; one of {FORMATS}")
    if not tf.io.gfile.exists(path):
        raise VectorFileError(f"{path}: pretrained vector file not found")
    if tf.io.gfile.isdir(path):
        raise VectorFileError(f"{path}: is a directory, not a vector file")
    stat = tf.io.gfile.stat(path)
    described = dict(size=stat.length, modified=stat.mtime_nsec)
    with open_vector_file(path) as f:
        magic = fasttext.looks_like_fasttext(f.read(8))
    if fmt == FASTTEXT_BIN or (fmt == "auto" and magic):
        _, model = fasttext_dictionary(path, **described)
        return VectorSource(path, FASTTEXT_BIN, model.dimension, body_start=model.matrix_start,
                            fasttext_model=model, **described)
    with open_vector_file(path) as f:
        first = f.readline()
        bom = _byte_order_mark(path, first)
        if not first[bom:].strip():
            raise VectorFileError(f"{path}: the vector file is empty" if not first.strip(b"\n")
                                  else f"{path} line 1: empty first line, expected a vector row")
        fields = first[bom:].split()
        if len(fields) == 2 and all(_is_integer(x) for x in fields):
            rows, dim = int(fields[0]), int(fields[1])
            if rows < 0 or not 0 < dim <= _MAX_DIMENSION:
                raise VectorFileError(
                    f"{path} line 1: the header {first[bom:].strip()[:80]!r} announces "
                    f"{rows} rows of dimension {dim}; a word2vec header is 'N D' with N >= 0 "
                    f"and 0 < D <= {_MAX_DIMENSION}")
            head = f.read(4 * dim + _MAX_TOKEN_BYTES)
        elif fmt not in ("auto", GLOVE):
            raise VectorFileError(f"{path} line 1: expected a header 'N D' for {fmt}, got "
                                  f"{first[:80]!r}")
        elif len(fields) < 2:
            raise VectorFileError(
                f"{path} line 1: expected a token and its values, got {first[:80]!r}")
        else:
            return VectorSource(path, GLOVE, len(fields) - 1, body_start=bom, **described)
    if fmt == GLOVE:
        raise VectorFileError(f"{path} line 1: GloVe has no header, found {first[:80]!r}")
    if fmt == "auto" and head:
        fmt = _guess_body(path, head, dim)
    return VectorSource(path, fmt, dim, body_start=len(first), header_rows=rows, **described)


@functools.lru_cache(maxsize=1)
def fasttext_dictionary(path, size, modified):
    """(the words, the FastTextModel) of a .bin model, parsed once per process and file."""
    if any(path.endswith(ext) for ext in _COMPRESSORS):
        raise VectorFileError(f"{path}: a fastText .bin model is read by seeking to the rows "
                              f"it needs; decompress it first")
    with tf.io.gfile.GFile(path, "rb") as f:
        try:
            return fasttext.read_header(path, f, size)
        except fasttext.FastTextError as e:
            raise VectorFileError(str(e)) from None


def _is_integer(field):
    return field.lstrip(b"+-").isdigit()


def _byte_order_mark(path, first):
    """The length of a UTF-8 byte order mark at the start of the file (skipped: it marks the
    encoding, it is not part of the first token), 0 without one. UTF-16 and UTF-32 files are
    refused: the formats are UTF-8."""
    if first.startswith(b"\xef\xbb\xbf"):
        return 3
    if first.startswith((b"\xff\xfe", b"\xfe\xff")) or first[:200].count(b"\0") > 10:
        raise VectorFileError(f"{path}: the file looks UTF-16 or UTF-32 encoded (a byte order "
                              f"mark or NUL bytes in line 1); vector files are UTF-8: re-encode "
                              f"it (iconv -f UTF-16 -t UTF-8)")
    return 0


def _guess_body(path, head, dim):
    line = head.split(b"\n", 1)[0].rstrip()
    values = line.split(b" ")[1:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if len(values) == dim and np.fromstring(b" ".join(values), sep=" ").size == dim:
            return WORD2VEC_TEXT
    token_end = head.lstrip(b"\n").find(b" ")
    vector = head.lstrip(b"\n")[token_end + 1:token_end + 1 + 4 * dim]
    if token_end > 0 and len(vector) == 4 * dim and not set(vector) <= _TEXT_BYTES:
        return WORD2VEC_BINARY
    raise VectorFileError(
        f"{path} line 2: neither a text row of a token and {dim} values (found "
        f"{len(values)}) nor a binary record; set the format explicitly")


def split_ranges(source, range_bytes):
    """Half-open [start, end) byte ranges covering the body; one range if compressed.

    Text ranges are cut anywhere. Binary ranges are cut at record boundaries, found by one
    sequential pass over the records (only the token ends are searched for).
    """
    if source.compressed:
        return [(source.body_start, -1)]
    if not source.binary:
        starts = range(source.body_start, source.size, range_bytes)
        return [(s, min(s + range_bytes, source.size)) for s in starts]
    cuts = [source.body_start]
    for _, offsets, _, _ in _binary_blocks(source, source.body_start, -1):
        for offset in offsets:
            if offset >= cuts[-1] + range_bytes:
                cuts.append(offset)
    return list(zip(cuts, cuts[1:] + [source.size])) if source.body_start < source.size else []


@dataclasses.dataclass
class MatchedRows:
    """Vectors of vocabulary tokens found in one part of the file, in file order."""
    rows: np.ndarray  # int64 row of the checkpoint for each vector.
    offsets: np.ndarray  # int64 byte offset of the vector's row: the first occurrence wins.
    folded: np.ndarray  # bool: matched by the case-folded token only; an exact match beats it.
    vectors: np.ndarray  # float32 [n, dimension].


@dataclasses.dataclass
class Matcher:
    """Which file tokens go to which checkpoint rows.

    exact maps token bytes to a row. folded, when the case-folded fallback is on, maps a
    case-folded token to the rows of the vocabulary tokens that fold to it. invalid_utf8 is
    "error" or "replace" (the token is decoded with U+FFFD replacements before matching).
    """
    exact: dict
    folded: dict = None
    invalid_utf8: str = "error"

    @classmethod
    def for_vocabulary(cls, tokens, row_of_index, case_fold=False, invalid_utf8="error"):
        exact = {t: row_of_index(i) for i, t in enumerate(tokens)}
        folded = None
        if case_fold:
            folded = {}
            for i, t in enumerate(tokens):
                folded.setdefault(casefold(t), []).append(row_of_index(i))
        return cls(exact, folded, invalid_utf8)


def casefold(token):
    return token.decode("utf-8", "replace").casefold().encode("utf-8")


@dataclasses.dataclass
class BlockStats:
    rows_read: int = 0
    invalid_utf8_replaced: int = 0


def parse_range(source, start, end, matcher, digest, total=None):
    """Yields (BlockStats, MatchedRows) for each block of the rows starting in [start, end).

    digest (a hashlib object) is updated with the bytes read, so the digests of all ranges, in
    order, fingerprint the file's body. With total (a float64 array of the dimension), every
    row's values are parsed and checked too, and added to it.
    """
    check_unchanged(source)
    blocks = _binary_blocks if source.binary else _text_blocks
    for tokens, offsets, buf_offset, items in blocks(source, start, end, digest):
        stats = BlockStats(rows_read=len(tokens))
        if not b"".join(tokens).isascii():
            stats.invalid_utf8_replaced = _check_utf8(source, tokens, offsets, matcher.invalid_utf8)
        picks, rows, folded = _match(tokens, matcher)
        vectors = np.zeros((0, source.dimension), np.float32)
        parse = _binary_vectors if source.binary else _text_vectors
        if total is not None and tokens:
            total += parse(source, items, offsets).sum(axis=0, dtype=np.float64)
        if picks:
            vectors = parse(source, [items[i] for i in picks], [offsets[i] for i in picks])
        yield stats, MatchedRows(np.asarray(rows, np.int64),
                                 np.asarray([offsets[i] for i in picks], np.int64),
                                 np.asarray(folded, bool), vectors)


def _match(tokens, matcher):
    """Indices of the tokens that have a row, with that row and whether it was case-folded."""
    exact = list(map(matcher.exact.get, tokens))
    if matcher.folded is None:
        picks = [i for i, row in enumerate(exact) if row is not None]
        return picks, [exact[i] for i in picks], [False] * len(picks)
    picks, rows, folded = [], [], []
    for i, (token, row) in enumerate(zip(tokens, exact)):
        if row is not None:
            picks.append(i), rows.append(row), folded.append(False)
        for other in matcher.folded.get(casefold(token), ()):
            if other != row:  # Another vocabulary token that folds the same way.
                picks.append(i), rows.append(other), folded.append(True)
    return picks, rows, folded


def _check_utf8(source, tokens, offsets, policy):
    """Fails on a token that is not UTF-8, or replaces it in tokens; returns the replacements."""
    replaced = 0
    for i, token in enumerate(tokens):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError as e:
            if policy != "replace":
                _fail(source, offsets[i], f"token {token[:80]!r} is not valid UTF-8 ({e.reason} "
                      f"at byte {e.start}); set invalid_utf8 to 'replace' to accept it")
            tokens[i] = token.decode("utf-8", "replace").encode("utf-8")
            replaced += 1
    return replaced


def _text_blocks(source, start, end, digest):
    """Yields (tokens, line offsets, 0, (line, start of its values) each) per block of lines."""
    dim, glove = source.dimension, source.format == GLOVE
    for offset, lines in _lines_in_range(source, start, end):
        digest.update(b"\n".join(lines) + b"\n")
        tokens, offsets, values = [], [], []
        for line in lines:
            offsets.append(offset)
            offset += len(line) + 1
            if line[-1:] in b" \r\t":
                line = line.rstrip()
            if not line:
                _fail(source, offsets[-1], "empty line")
            spaces = line.count(b" ")
            if spaces == dim:
                cut = line.index(b" ")
            elif spaces > dim and glove:  # A token with spaces in it: the last dim fields.
                cut = len(line.rsplit(b" ", dim)[0])
            else:
                hint = (" (its fields are separated by tabs; the formats use spaces)"
                        if b"\t" in line else "")
                _fail(source, offsets[-1],
                      f"expected {dim} values after the token, found {spaces}{hint}")
            tokens.append(line[:cut])
            values.append((line, cut + 1))
        yield tokens, offsets, 0, values


def _lines_in_range(source, start, end):
    """Yields (offset of the block's first line, lines) for the lines that start in [start, end)."""
    with open_vector_file(source.path) as f:
        if end < 0:  # Compressed: not seekable cheaply, read from the top.
            f.read(source.body_start)
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
            consumed = sum(map(len, lines)) + len(lines)
            if 0 <= end < offset + consumed:  # Keep only lines that start before the end.
                position, keep = offset, 0
                while position < end:
                    position += len(lines[keep]) + 1
                    keep += 1
                yield offset, lines[:keep]
                return
            yield offset, lines
            offset += consumed


def _text_vectors(source, items, offsets):
    """Parses the values of (line, start of values) items: float64, then float32 as gensim."""
    text = b" ".join(line[cut:] for line, cut in items)
    try:  # TensorFlow's parser is correctly rounded, like Python's float(), and twice as fast.
        vectors = tf.strings.to_number(tf.strings.split(text), tf.float64).numpy()
    except tf.errors.InvalidArgumentError:  # Some value it refuses: numpy decides.
        with warnings.catch_warnings():  # A short parse is detected below, by its size.
            warnings.simplefilter("ignore", DeprecationWarning)
            vectors = np.fromstring(text, dtype=np.float64, sep=" ")
    with np.errstate(over="ignore"):
        vectors = vectors.astype(np.float32)
    if vectors.size != len(items) * source.dimension or not np.isfinite(vectors).all():
        _find_bad_value(source, offsets, [line[cut:] for line, cut in items])
    return vectors.reshape(-1, source.dimension)


def _find_bad_value(source, offsets, values):
    """Slow path: finds the row whose values are not dimension finite numbers, and fails."""
    for offset, text in zip(offsets, values):
        for field in text.split():
            try:
                with np.errstate(over="ignore"):
                    value = np.float32(float(field))
            except ValueError:
                _fail(source, offset, f"value {field.decode(errors='replace')!r} is not a number")
            if not np.isfinite(value):
                _fail(source, offset, f"value {field.decode()!r} is not a finite float32")
    raise AssertionError("a block failed to parse but no row is wrong")


def _binary_blocks(source, start, end, digest=None):
    """Yields (tokens, record offsets, offset of buf, [(record start in buf, buf, vector start)])
    per block of whole records starting in [start, end) (end -1: to the end of the file)."""
    record = 4 * source.dimension
    with open_vector_file(source.path) as f:
        if end < 0:
            f.read(source.body_start)
        else:
            f.seek(start)
        base, buf = start, b""
        while True:
            chunk = f.read(_BLOCK_BYTES)
            buf += chunk
            pos, tokens, offsets, items = 0, [], [], []
            while end < 0 or base + pos < end:
                space = buf.find(b" ", pos, pos + _MAX_TOKEN_BYTES)
                if space < 0 or space + 1 + record > len(buf):
                    if chunk and (space >= 0 or len(buf) - pos < _MAX_TOKEN_BYTES):
                        break  # The record continues in the next chunk.
                    rest = buf[pos:].lstrip(b"\n")
                    if not rest:  # The newline after the last vector, if any.
                        pos = len(buf)
                        break
                    problem = (f"no space after a token within {_MAX_TOKEN_BYTES} bytes"
                               if chunk else f"truncated record: {rest[:80]!r} ends the file"
                               if space < 0 else
                               f"truncated record: token {buf[pos:space].strip()[:80]!r} needs "
                               f"{record} bytes of vector, the file has {len(buf) - space - 1}")
                    _fail(source, base + pos, problem)
                tokens.append(buf[pos:space].lstrip(b"\n"))
                offsets.append(base + pos)
                items.append((pos, buf, space + 1))
                pos = space + 1 + record
            if digest is not None:
                digest.update(buf[:pos])
            yield tokens, offsets, base, items
            buf, base = buf[pos:], base + pos
            if not chunk or 0 <= end <= base:
                if end >= 0 and base != end:
                    _fail(source, base, f"a record crosses the range end {end}")
                return


def _binary_vectors(source, items, offsets):
    record = 4 * source.dimension
    vectors = np.frombuffer(b"".join(buf[at:at + record] for _, buf, at in items), "<f4")
    vectors = vectors.astype(np.float32).reshape(-1, source.dimension)
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        _fail(source, offsets[int(np.argmin(finite))], "a value is not a finite float32")
    return vectors


def head_tokens(source, count=5):
    """The first tokens of the file (for messages about what the file holds)."""
    if source.fasttext_model:
        words, _ = fasttext_dictionary(source.path, source.size, source.modified)
        return [w.decode("utf-8", "replace") for w in words[:count]]
    blocks = _binary_blocks if source.binary else _text_blocks
    end = -1 if source.compressed else source.size
    for tokens, _, _, _ in blocks(source, source.body_start, end, hashlib.sha256()):
        return [t.decode("utf-8", "replace") for t in tokens[:count]]
    return []


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
    where = (f"byte offset {offset}" if source.binary else
             f"line {line_number(source.path, offset)} (byte offset {offset})")
    raise VectorFileError(f"{source.path} {where}: {problem}")

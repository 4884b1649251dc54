"""Pretrained vector files: format detection and parsing of byte ranges in batches.

Formats (plain, .gz or .bz2; local, or any path Beam's filesystems open: components.filesystems):
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
body at record boundaries; workers then read whole records. A compressed stream is read by
stripes: each worker inflates all of it and parses every n-th chunk of whole rows.

Only rows whose token is in the vocabulary (exactly, or case-folded when that fallback is on) are
parsed to floats, a block's rows at once; the others are only checked for their number of fields
(text) or their length (binary). Text values are parsed as float64 then rounded to float32, as
gensim does (np.float32(str)), so the vectors are bit-identical to gensim's.
"""

import dataclasses
import functools
import hashlib
import io
import time
import typing
import unicodedata
import warnings
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import filesystems
from . import fasttext, parameters, sources
from .sources import VectorFileError

GLOVE, WORD2VEC_TEXT, WORD2VEC_BINARY = "glove", "word2vec_text", "word2vec_binary"
FASTTEXT_BIN = fasttext.FORMAT
FORMATS = parameters.VECTOR_FORMATS  # GLOVE, WORD2VEC_TEXT, WORD2VEC_BINARY, FASTTEXT_BIN
_BLOCK_BYTES = 4 << 20
_MAX_TOKEN_BYTES = 1 << 16  # A binary "token" longer than this means the file is not binary.
# The limits' defaults (EmbeddingGenParameters.max_line_bytes, max_dimension).
MAX_LINE_BYTES = parameters.EmbeddingGenParameters.max_line_bytes
MAX_DIMENSION = parameters.EmbeddingGenParameters.max_dimension
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


@dataclasses.dataclass(frozen=True)
class VectorSource:
    """What the workers need to know about a vector file, found once by the driver."""
    location: sources.Location
    format: str
    dimension: int
    body_start: int  # Byte offset of the first vector row in the data (after the header).
    header_rows: int = -1  # Row count the header announces; -1 when there is no header.
    fasttext_model: Optional[fasttext.FastTextModel] = None  # Of a fastText .bin file.
    max_line_bytes: int = MAX_LINE_BYTES  # A longer text line is refused.

    @property
    def path(self):
        return self.location.path

    @property
    def size(self):
        """The file's size in bytes."""
        return self.location.size

    @property
    def modified(self):
        return self.location.modified

    @property
    def compressed(self):
        return self.location.compressed

    @property
    def binary(self):
        return self.format == WORD2VEC_BINARY


def check_unchanged(source):
    """Raises VectorFileError if the file is not the one inspected: see sources."""
    sources.check_unchanged(source.location)


def inspect_source(path, fmt="auto", max_line_bytes=MAX_LINE_BYTES, max_dimension=MAX_DIMENSION):
    """Detects the format and dimension from the first rows; raises VectorFileError.

    "auto" recognises every format: a fastText model by its magic number (the new format) or
    by a header of plausible arguments (the old one, from 2016); else text: no `N D` header is
    GloVe, after a header a row of a token and D numbers is word2vec text, a record whose vector
    bytes are not text word2vec binary. A file none of these fits is refused with what was
    checked. At most max_line_bytes of the first line are read: a longer line, CR-only line
    ends, or a dimension above max_dimension are refused.
    """
    if fmt not in FORMATS + ("auto",):
        raise VectorFileError(f"{path}: unknown vector format {fmt!r}; one of {FORMATS}")
    location = sources.locate(path)
    path = location.path
    with sources.open_data(location) as f:
        head = f.read(fasttext.HEADER_BYTES)
    looks_fasttext = fasttext.looks_like_fasttext(head)
    if fmt == FASTTEXT_BIN or (fmt == "auto" and looks_fasttext):
        if location.compressed or location.member:
            raise VectorFileError(f"{path}: a fastText .bin model is read by seeking to the "
                                  f"rows it needs; decompress or unzip it first")
        _, model = fasttext_dictionary(location.file, location.size, location.modified)
        return VectorSource(location, FASTTEXT_BIN, model.dimension,
                            body_start=model.matrix_start, fasttext_model=model)
    with sources.open_data(location) as f:
        first = f.readline(max_line_bytes + 1)
        bom = _byte_order_mark(path, first, head)
        if fmt == "auto" and not set(first[:200]) <= _TEXT_BYTES | _UTF8_BYTES:
            raise VectorFileError(_unrecognised(path, head))
        _check_first_line(path, first, max_line_bytes)
        if not first[bom:].strip():
            raise VectorFileError(f"{path}: the vector file is empty" if not first.strip(b"\n")
                                  else f"{path} line 1: empty first line, expected a vector row")
        fields = first[bom:].split()
        if len(fields) == 2 and all(_is_integer(x) for x in fields):
            rows, dim = int(fields[0]), int(fields[1])
            if rows < 0 or not 0 < dim <= max_dimension:
                raise VectorFileError(
                    f"{path} line 1: the header {first[bom:].strip()[:80]!r} announces "
                    f"{rows} rows of dimension {dim}; a word2vec header is 'N D' with N >= 0 "
                    f"and 0 < D <= {max_dimension} (max_dimension raises the limit)")
            body = f.read(4 * dim + _MAX_TOKEN_BYTES)
        elif fmt not in ("auto", GLOVE):
            raise VectorFileError(f"{path} line 1: expected a header 'N D' for {fmt}, got "
                                  f"{first[:80]!r}")
        elif len(fields) < 2:
            raise VectorFileError(
                f"{path} line 1: expected a token and its values, got {first[:80]!r}")
        elif len(fields) - 1 > max_dimension:
            raise VectorFileError(
                f"{path} line 1 (byte offset {bom}): {len(fields) - 1} values after the token, "
                f"more than max_dimension ({max_dimension}): not a vector row (raise "
                f"max_dimension if the vectors really have that many values)")
        else:
            return VectorSource(location, GLOVE, len(fields) - 1, body_start=bom,
                                max_line_bytes=max_line_bytes)
    if fmt == GLOVE:
        raise VectorFileError(f"{path} line 1: GloVe has no header, found {first[:80]!r}")
    if fmt == "auto" and body:
        fmt = _guess_body(path, body, dim)
    return VectorSource(location, fmt, dim, body_start=len(first), header_rows=rows,
                        max_line_bytes=max_line_bytes)


def _check_first_line(path, first, max_line_bytes):
    """Refuses a first line longer than max_line_bytes (only that much of it was read), or one
    holding CR-only line ends (the whole file would be one line)."""
    text = first[:-1] if first.endswith(b"\n") else first
    carriage_return = text.find(b"\r")
    if 0 <= carriage_return < len(text) - 1 or (carriage_return >= 0 and len(first) >
                                                 max_line_bytes):
        raise VectorFileError(
            f"{path} line 1 (byte offset 0): its lines end in CR only (a carriage return at "
            f"byte {carriage_return}, no line feed; classic Mac OS line ends): the formats end "
            f"lines with LF or CR LF; convert it (tr '\\r' '\\n' < old > new)")
    if len(first) > max_line_bytes:
        raise VectorFileError(
            f"{path} line 1 (byte offset 0): longer than max_line_bytes ({max_line_bytes} "
            f"bytes) without a line end: not a vector file's line (one huge line: a JSON "
            f"document, a zero-filled partial download?); raise max_line_bytes if its lines "
            f"really are that long")


_UTF8_BYTES = frozenset(range(0x80, 0x100)) - {0xC0, 0xC1} - set(range(0xF5, 0x100))


def _unrecognised(path, head):
    """The message for a file no format fits: what each check found."""
    return (f"{path}: not a vector file this reader knows. Its first bytes {head[:16]!r} are "
            f"not text (GloVe, word2vec text, or a word2vec binary file's 'N D' header line), "
            f"not a fastText model ({fasttext.describe_header(head)}), and not gzip, bzip2 or "
            f"zip data (no magic number of theirs). If it is one of these formats, set it "
            f"(vector_format); a fastText model of the old format is recognised by its header")


@functools.lru_cache(maxsize=1)
def fasttext_dictionary(path, size, modified):
    """(the words, the FastTextModel) of a .bin model (a plain file), parsed once per process
    and file."""
    with filesystems.open_read(path) as f:
        try:
            return fasttext.read_header(path, f, size)
        except fasttext.FastTextError as e:
            raise VectorFileError(str(e)) from None


def _is_integer(field):
    return field.lstrip(b"+-").isdigit()


def _byte_order_mark(path, first, head):
    """The length of a UTF-8 byte order mark at the start of the file (skipped: it marks the
    encoding, it is not part of the first token), 0 without one. UTF-16 and UTF-32 text is
    refused: the formats are UTF-8. It is recognised by its byte order mark, or by ASCII
    characters each followed (or preceded) by one or three NUL bytes."""
    if first.startswith(b"\xef\xbb\xbf"):
        return 3
    sample = head[:64]
    for width in (2, 4):
        for at in range(width):
            lanes = [sample[i:i + width] for i in range(0, len(sample) - width + 1, width)]
            if len(lanes) >= 4 and all(
                    lane[at] in _TEXT_BYTES and lane.count(0) == width - 1 for lane in lanes):
                sample = None
                break
        if sample is None:
            break
    if first.startswith((b"\xff\xfe", b"\xfe\xff")) or sample is None:
        raise VectorFileError(f"{path}: the file is UTF-16 or UTF-32 encoded text (a byte "
                              f"order mark, or NUL bytes between its characters); vector files "
                              f"are UTF-8: re-encode it (iconv -f UTF-16 -t UTF-8)")
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


class ByteRange(typing.NamedTuple):
    """Rows of the data stream whose first byte is in [start, end) (end -1: to the end). With
    chunk, the stream's bytes [start, end) themselves, whole rows (a compressed stream's)."""
    start: int
    end: int
    chunk: Optional[bytes] = None


class Stripe(typing.NamedTuple):
    """Every count-th chunk of about range_bytes of whole rows of a compressed stream, from the
    index-th: a worker's share of a stream that cannot be cut into ranges (stripe_ranges)."""
    index: int
    count: int
    range_bytes: int


def split_ranges(source, range_bytes, stripes=2):
    """ByteRanges covering the body, about range_bytes each; for a compressed stream, Stripes.

    Text ranges are cut anywhere. Binary ranges are cut at record boundaries, found by one
    sequential pass over the records (only the token ends are searched for). A compressed
    stream has no place to start but its beginning: each of `stripes` workers inflates all of
    it and parses its stripe of chunks, so the inflating is parallel with the parsing, nothing
    is written in between, and the time is one inflation plus a share of the parsing.
    """
    if source.compressed:
        return [Stripe(i, stripes, range_bytes) for i in range(stripes)]
    size = source.location.data_size
    if not source.binary:
        return [ByteRange(s, min(s + range_bytes, size))
                for s in range(source.body_start, size, range_bytes)]
    cuts = [source.body_start]
    for block in _binary_blocks(source, source.body_start, -1):
        for offset in block.offsets.tolist():
            if offset >= cuts[-1] + range_bytes:
                cuts.append(offset)
    return ([ByteRange(a, b) for a, b in zip(cuts, cuts[1:] + [size])]
            if source.body_start < size else [])


def stripe_ranges(source, stripe):
    """Yields the ByteRanges, with their bytes, of a Stripe's chunks, in stream order.

    The whole stream is inflated; a chunk ends at the first row start at least range_bytes
    past its own start, so every stripe cuts the stream in the same places. Only the stripe's
    own chunks are kept: memory is one chunk and a block."""
    ordinal, parts, start, end = 0, [], source.body_start, source.body_start
    for offset, data, row_start in _stream_blocks(source):
        cut = 0  # Within the block: cut at the first row start past range_bytes.
        while True:
            after = row_start(data, max(start + stripe.range_bytes - offset, cut + 1))
            mine = ordinal % stripe.count == stripe.index
            if after is None:
                if mine:
                    parts.append(data[cut:])
                end = offset + len(data)
                break
            if mine:
                parts.append(data[cut:after])
                yield ByteRange(start, offset + after, b"".join(parts))
            ordinal, parts, start, cut = ordinal + 1, [], offset + after, after
            end = start
    if end > start and ordinal % stripe.count == stripe.index:
        yield ByteRange(start, end, b"".join(parts))


def _stream_blocks(source):
    """Yields (offset, bytes, row_start) for the whole stream's body in blocks: row_start(data,
    at) is the first row start in data at or after at, None if none."""
    if source.binary:
        for block in _binary_blocks(source, source.body_start, -1):
            if len(block.offsets):
                starts = (block.offsets - block.offsets[0])[1:]

                def first(data, at, starts=starts):
                    i = np.searchsorted(starts, at)
                    return int(starts[i]) if i < len(starts) else None
                yield int(block.offsets[0]), block.data, first
        return

    def first_line(data, at):  # Only searched near the cuts: no pass over every byte.
        newline = data.find(b"\n", at - 1)
        return newline + 1 if 0 <= newline < len(data) - 1 else None
    with sources.open_data(source.location) as f:  # Blocks as read: not cut at line ends.
        offset = source.body_start
        f.read(offset)
        while True:
            data = f.read(_BLOCK_BYTES)
            if not data:
                return
            yield offset, data, first_line
            offset += len(data)


@dataclasses.dataclass
class MatchedRows:
    """Vectors of vocabulary tokens found in one part of the file, in file order."""
    rows: np.ndarray  # int64 row of the checkpoint for each vector.
    offsets: np.ndarray  # int64 byte offset of the vector's row: the first occurrence wins.
    folded: np.ndarray  # bool: matched by the case-folded token only; an exact match beats it.
    vectors: np.ndarray  # float32 [n, dimension].


_MAX_JOIN_WIDTH = 256  # Vocabulary tokens longer than this are joined through a dict.


@dataclasses.dataclass
class Matcher:
    """Which file tokens go to which checkpoint rows.

    exact maps a vocabulary token's bytes to its row. A block's tokens are joined with the
    vocabulary in bulk: both as fixed-width byte strings, the vocabulary's sorted once, each
    block's looked up by binary search in numpy (no Python object per token). A vocabulary
    with a token holding a NUL byte, or one longer than _MAX_JOIN_WIDTH, is joined through the
    dict. folded, when the case-folded fallback is on, maps a case-folded token to the rows of
    the vocabulary tokens that fold to it. invalid_utf8 is "error" or "replace" (the token is
    decoded with U+FFFD replacements before matching). With unicode_normalization ("NFC",
    "NFKC"), the keys are the vocabulary's tokens in that form (the file's are normalized by
    `normalize`); vocabulary tokens that only differ before it share a key: also holds the
    rows after the first.
    """
    exact: dict
    folded: dict = None
    invalid_utf8: str = "error"
    sorted_tokens: Optional[np.ndarray] = None  # Fixed-width ("S<width>"), sorted.
    sorted_rows: Optional[np.ndarray] = None  # The row of each of sorted_tokens.
    unicode_normalization: Optional[str] = None
    also: dict = dataclasses.field(default_factory=dict)  # Key -> rows after the first.

    @classmethod
    def for_vocabulary(cls, tokens, row_of_index, case_fold=False, invalid_utf8="error",
                       unicode_normalization=None):
        keys = normalize_vocabulary(tokens, unicode_normalization)
        exact, also = {}, {}
        for i, key in enumerate(keys):
            if key in exact:
                also.setdefault(key, []).append(row_of_index(i))
            else:
                exact[key] = row_of_index(i)
        folded = None
        if case_fold:
            folded = {}
            for i, key in enumerate(keys):
                folded.setdefault(casefold(key), []).append(row_of_index(i))
        matcher = cls(exact, folded, invalid_utf8, unicode_normalization=unicode_normalization,
                      also=also)
        unique = list(exact)
        width = max(map(len, unique), default=1)
        if width <= _MAX_JOIN_WIDTH and not any(b"\0" in t for t in unique):
            keys = np.array(unique, dtype=f"S{width}")
            order = np.argsort(keys, kind="stable")
            matcher.sorted_tokens = keys[order]
            matcher.sorted_rows = np.array([exact[unique[i]] for i in order.tolist()], np.int64)
        return matcher

    def normalize(self, tokens):
        """A block's tokens (Arrow binary, valid UTF-8) in the matcher's Unicode form."""
        return normalize_tokens(tokens, self.unicode_normalization)

    def match(self, tokens):
        """(indices of the tokens that have a row, their rows, whether each was case-folded),
        for an Arrow binary array of a block's tokens (normalized), in block order."""
        picks, rows = self._exact(tokens)
        if self.also and len(picks):  # Vocabulary tokens alike once normalized: each a row.
            more = [(i, row) for i, token in zip(picks.tolist(), tokens.take(picks).to_pylist(),
                                                 strict=True)
                    for row in self.also.get(token, ())]
            if more:
                picks = np.concatenate([picks, [i for i, _ in more]]).astype(np.int64)
                rows = np.concatenate([rows, [r for _, r in more]]).astype(np.int64)
                order = np.argsort(picks, kind="stable")
                picks, rows = picks[order], rows[order]
        folded = np.zeros(len(picks), bool)
        if self.folded is None:
            return picks, rows, folded
        exact = dict(zip(picks.tolist(), rows.tolist()))
        extra = [(i, other) for i, token in enumerate(tokens.to_pylist())
                 for other in self.folded.get(casefold(token), ())
                 if other != exact.get(i)]  # Another vocabulary token that folds the same way.
        if not extra:
            return picks, rows, folded
        picks = np.concatenate([picks, [i for i, _ in extra]]).astype(np.int64)
        rows = np.concatenate([rows, [r for _, r in extra]]).astype(np.int64)
        folded = np.concatenate([folded, np.ones(len(extra), bool)])
        order = np.argsort(picks, kind="stable")  # Block order, the exact match first.
        return picks[order], rows[order], folded[order]

    def _exact(self, tokens):
        """(indices, rows) of the tokens the vocabulary holds byte for byte."""
        if self.sorted_tokens is None or _has_nul(tokens):
            found = list(map(self.exact.get, tokens.to_pylist()))
            picks = np.array([i for i, row in enumerate(found) if row is not None], np.int64)
            return picks, np.array([found[i] for i in picks.tolist()], np.int64)
        width = self.sorted_tokens.dtype.itemsize
        keys, fits = fixed_width(tokens, width)
        keys = keys.view(f"S{width}").ravel()
        where = np.minimum(np.searchsorted(self.sorted_tokens, keys), len(self.sorted_tokens) - 1)
        picks = np.flatnonzero((self.sorted_tokens[where] == keys) & fits)
        return picks.astype(np.int64), self.sorted_rows[where[picks]]


def casefold(token):
    return token.decode("utf-8", "replace").casefold().encode("utf-8")


def normalize_vocabulary(tokens, form):
    """Vocabulary tokens (bytes) in Unicode form ("NFC", "NFKC"; None: as they are). ASCII is
    the same in every form."""
    if form is None:
        return list(tokens)
    return [t if t.isascii() else _normalized(t, form) for t in tokens]


def _normalized(token, form):
    try:
        return unicodedata.normalize(form, token.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:  # Not text: it matches as it is.
        return token


def normalize_tokens(tokens, form):
    """A block's tokens (Arrow binary) in Unicode form (None: as they are); a block of ASCII
    is returned as it is. Python's unicodedata normalizes: pyarrow 10's utf8_normalize leaves
    "e" and U+0301 apart in NFC (and decomposes a composed "é")."""
    if form is None or _is_ascii(tokens):
        return tokens
    return pa.array([t if t.isascii() else _normalized(t, form) for t in tokens.to_pylist()],
                    pa.binary())


def fixed_width(tokens, width):
    """An Arrow binary array as fixed-width byte strings (uint8 [n, width], NUL-padded; view
    them as "S<width>") and a mask of those that fit (a longer token equals no string of that
    width)."""
    offsets = np.frombuffer(tokens.buffers()[1], np.int32)[
        tokens.offset:tokens.offset + len(tokens) + 1]
    data = np.frombuffer(tokens.buffers()[2] or b"", np.uint8)
    lengths = np.diff(offsets)
    fits = lengths <= width
    kept = np.where(fits, lengths, 0)
    keys = np.zeros((len(tokens), width), np.uint8)
    rows = np.repeat(np.arange(len(tokens)), kept)
    columns = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    keys[rows, columns] = data[np.repeat(offsets[:-1], kept) + columns]
    return keys, fits


def _has_nul(tokens):
    """Whether a token holds a NUL byte (fixed-width strings would drop it at their end)."""
    offsets = np.frombuffer(tokens.buffers()[1], np.int32)[
        tokens.offset:tokens.offset + len(tokens) + 1]
    data = np.frombuffer(tokens.buffers()[2] or b"", np.uint8)
    return bool((data[offsets[0]:offsets[-1]] == 0).any())


@dataclasses.dataclass
class BlockStats:
    rows_read: int = 0
    invalid_utf8_replaced: int = 0
    # Seconds spent reading and splitting the block, matching its tokens, parsing its values.
    seconds: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))


STAGES = ("read", "join", "parse")


@dataclasses.dataclass
class _Block:
    """A block of whole rows: their tokens (Arrow binary), byte offsets (int64), and a function
    parsing the vectors of the rows at given indices into float32 [n, dimension]."""
    tokens: pa.Array
    offsets: np.ndarray
    vectors: typing.Callable
    data: bytes = b""  # The block's bytes (binary blocks: whole records).


def parse_range(source, byte_range, matcher, digest, total=None, observe=None):
    """Yields (BlockStats, MatchedRows) for each block of the rows of a ByteRange.

    digest (a hashlib object) is updated with the bytes read, so the digests of all ranges, in
    order, fingerprint the file's body. With total (a float64 array of the dimension), every
    row's values are parsed and checked too, and added to it. observe, if given, is called with
    each block's tokens (an Arrow binary array).
    """
    check_unchanged(source)
    blocks = (_binary_blocks if source.binary else _text_blocks)(source, *byte_range[:2],
                                                                 digest, chunk=byte_range[2])
    while True:
        clock = time.perf_counter()
        block = next(blocks, None)
        if block is None:
            return
        tokens = block.tokens
        stats = BlockStats(rows_read=len(tokens))
        stats.seconds["read"], clock = time.perf_counter() - clock, time.perf_counter()
        if not _is_ascii(tokens):
            stats.invalid_utf8_replaced, tokens = _check_utf8(source, tokens, block.offsets,
                                                              matcher.invalid_utf8)
            tokens = matcher.normalize(tokens)
        picks, rows, folded = matcher.match(tokens)
        if observe is not None:
            observe(tokens)
        stats.seconds["join"], clock = time.perf_counter() - clock, time.perf_counter()
        if total is not None and len(tokens):
            total += block.vectors(np.arange(len(tokens))).sum(axis=0, dtype=np.float64)
        vectors = (block.vectors(picks) if len(picks)
                   else np.zeros((0, source.dimension), np.float32))
        stats.seconds["parse"] = time.perf_counter() - clock
        yield stats, MatchedRows(rows, block.offsets[picks], folded, vectors)


def _is_ascii(tokens):
    data = tokens.buffers()[2]
    return data is None or not (np.frombuffer(data, np.uint8) & 0x80).any()


def _check_utf8(source, tokens, offsets, policy):
    """Fails on a token that is not UTF-8, or replaces it; returns (the replacements, the
    tokens)."""
    try:
        tokens.cast(pa.string())  # Validates in C++; the slow path only if something fails.
        return 0, tokens
    except pa.ArrowInvalid:
        pass
    replaced, decoded = 0, tokens.to_pylist()
    for i, token in enumerate(decoded):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError as e:
            if policy != "replace":
                _fail(source, int(offsets[i]), f"token {token[:80]!r} is not valid UTF-8 "
                      f"({e.reason} at byte {e.start}); set invalid_utf8 to 'replace' to "
                      f"accept it")
            decoded[i] = token.decode("utf-8", "replace").encode("utf-8")
            replaced += 1
    return replaced, pa.array(decoded, pa.binary())


def _text_blocks(source, start, end, digest, chunk=None):
    """Yields a _Block per block of the lines that start in [start, end).

    Each block is split in C++ and numpy, with no Python object per row or value: the line
    ends and spaces are found at once, a row's field count is checked from them, the tokens are
    gathered into an Arrow array, and only the rows asked for have their values parsed.
    """
    for offset, data in _lines_in_range(source, start, end, chunk):
        digest.update(data)
        yield _split_lines(source, offset, data)


_WHITESPACE = np.frombuffer(b" \t\r\x0b\x0c", np.uint8)
_SPACE, _NEWLINE = 32, 10


def _split_lines(source, offset, data):
    """The _Block of data (whole lines, the last one ending in a newline or at the end of the
    file) at byte offset `offset` of the file."""
    dim = source.dimension
    buf = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buf == _NEWLINE)
    ends = newlines if data[-1:] == b"\n" else np.append(newlines, len(buf))
    starts = np.concatenate([[0], newlines[:len(ends) - 1] + 1]).astype(np.int64)
    spaces = _spaces_per_line(buf, starts)
    while True:  # Trailing whitespace (a space after the last value, a CR) is not a field.
        last = buf[np.maximum(ends - 1, 0)]
        trailing = (ends > starts) & np.isin(last, _WHITESPACE)
        if not trailing.any():
            break
        spaces -= trailing & (last == _SPACE)
        ends = ends - trailing
    long = np.flatnonzero(ends - starts > source.max_line_bytes)
    if len(long):
        line = int(long[0])
        _fail_long_line(source, offset + int(starts[line]), data[starts[line]:ends[line]])
    empty = np.flatnonzero(ends == starts)
    if len(empty):
        _fail(source, offset + int(starts[empty[0]]), "empty line")
    wrong = (spaces < dim) if source.format == GLOVE else (spaces != dim)
    if wrong.any():
        line = int(np.argmax(wrong))
        text = data[starts[line]:ends[line]]
        hint = (" (its fields are separated by tabs; the formats use spaces)" if b"\t" in text
                else " (it holds a carriage return: lines that end in CR only, classic Mac OS "
                     "line ends? The formats end lines with LF or CR LF)" if b"\r" in text
                else "")
        _fail(source, offset + int(starts[line]),
              f"expected {dim} values after the token, found {spaces[line]}{hint}")
    cut = _first(buf, starts, _SPACE)  # The space after the token...
    for line in np.flatnonzero(spaces > dim).tolist():  # ...unless it holds spaces (GloVe
        cut[line] = starts[line] + len(data[starts[line]:ends[line]].rsplit(b" ", dim)[0])
    lengths = cut - starts
    token_offsets = np.zeros(len(starts) + 1, np.int32)
    np.cumsum(lengths, out=token_offsets[1:])
    gather = np.repeat(starts - token_offsets[:-1], lengths) + np.arange(token_offsets[-1])
    tokens = pa.BinaryArray.from_buffers(
        pa.binary(), len(starts),
        [None, pa.py_buffer(token_offsets), pa.py_buffer(buf[gather].tobytes())])

    def vectors(indices):
        return _text_vectors(source, data, offset + starts[indices], cut[indices] + 1,
                             ends[indices])

    return _Block(tokens, offset + starts, vectors)


def _spaces_per_line(buf, starts):
    """The number of spaces in each line [starts[i], next start), counted in 16 bits (four
    times as fast as numpy's 32-bit sum here); a line too long for that is counted again."""
    spaces = np.add.reduceat((buf == _SPACE).view(np.uint8), starts, dtype=np.uint16)
    spaces = spaces.astype(np.int32)
    bounds = np.append(starts[1:], len(buf))
    for line in np.flatnonzero(bounds - starts > np.iinfo(np.uint16).max).tolist():
        spaces[line] = np.count_nonzero(buf[starts[line]:bounds[line]] == _SPACE)
    return spaces


def _first(buf, starts, byte):
    """Per start, the position of the first `byte` at or after it (there is one: the lines'
    field counts were checked), found for all lines at once, one position a step; past
    _FIRST_STEPS steps (a long token), line by line with bytes.find."""
    position = starts.copy()
    pending = np.flatnonzero(buf[position] != byte)
    for _ in range(_FIRST_STEPS):
        if not len(pending):
            return position
        position[pending] += 1
        pending = pending[buf[position[pending]] != byte]
    data = buf.tobytes() if len(pending) else b""
    for line in pending.tolist():
        position[line] = data.find(bytes([byte]), position[line])
    return position


_FIRST_STEPS = 64


def _lines_in_range(source, start, end, chunk=None):
    """Yields (byte offset, bytes) of blocks of the whole lines that start in [start, end)."""
    with _open_range(source, start, end, chunk) as f:
        if chunk is not None:
            end = -1  # The chunk holds exactly its lines.
        elif end < 0:  # Compressed: not seekable cheaply, read from the top.
            f.read(source.body_start)
        elif start > source.body_start:
            f.seek(start - 1)  # Skip the line that began in the previous range.
            skipped = f.readline(source.max_line_bytes + 1)
            if len(skipped) > source.max_line_bytes:
                return  # The range that holds its start refuses it, naming its offset.
            start += len(skipped) - 1
        else:
            f.seek(start)
        offset, carry = start, []  # carry: the blocks of a line that has not ended yet.
        while end < 0 or offset < end:
            block = f.read(_BLOCK_BYTES)
            if not block:
                if carry:
                    yield offset, b"".join(carry)
                return
            whole = block.rfind(b"\n") + 1
            if not whole:  # No line ends in this block: joined once it ends (linear).
                carry.append(block)
                if sum(map(len, carry)) > source.max_line_bytes:
                    _fail_long_line(source, offset, carry[0])
                continue
            data = b"".join(carry + [memoryview(block)[:whole]])  # One copy of the block.
            carry = [block[whole:]] if whole < len(block) else []
            if 0 <= end < offset + len(data):  # Only the lines that start before the end.
                yield offset, data[:data.find(b"\n", end - offset - 1) + 1]
                return
            yield offset, data
            offset += len(data)


def _open_range(source, start, end, chunk):
    """The stream a range's bytes are read from: its chunk, or the data stream."""
    return io.BytesIO(chunk) if chunk is not None else sources.open_data(source.location)


def _text_vectors(source, data, offsets, starts, ends):
    """Parses the values data[starts[i]:ends[i]] of rows (at file offsets) into float32
    [len(starts), dimension]: to float64 first, correctly rounded, then float32, as gensim."""
    text = b" ".join([data[a:b] for a, b in zip(starts.tolist(), ends.tolist())])
    # One Arrow string per value, split in C++ (an empty one where two spaces meet).
    fields = pc.split_pattern(pa.LargeStringArray.from_buffers(
        1, pa.py_buffer(np.array([0, len(text)], np.int64)), pa.py_buffer(text)), " ").flatten()
    if len(fields) != len(starts) * source.dimension:
        _find_bad_value(source, data, offsets, starts, ends)
    try:  # Arrow's parser (fast_float) is correctly rounded, like Python's float().
        values = pc.cast(fields, pa.float64()).to_numpy()
    except (pa.ArrowInvalid, UnicodeDecodeError):  # Some value it refuses: Python decides.
        values = _python_floats(source, data, offsets, starts, ends)
    with np.errstate(over="ignore"):
        values = values.astype(np.float32)
    if not np.isfinite(values).all():
        _find_bad_value(source, data, offsets, starts, ends)
    return values.reshape(-1, source.dimension)


def _python_floats(source, data, offsets, starts, ends):
    """The values as Python's float() reads them (what gensim accepts), or the bad one named."""
    values = []
    for offset, a, b in zip(offsets.tolist(), starts.tolist(), ends.tolist()):
        for field in data[a:b].split(b" "):
            try:
                values.append(float(field))
            except ValueError:
                _fail(source, offset, f"value {field.decode(errors='replace')!r} is not a "
                                      f"number")
    return np.array(values, np.float64)


def _find_bad_value(source, data, offsets, starts, ends):
    """Slow path: finds the row whose values are not dimension finite numbers, and fails."""
    values = _python_floats(source, data, offsets, starts, ends)
    with np.errstate(over="ignore"):
        values = values.astype(np.float32)
    position = 0
    for offset, a, b in zip(offsets.tolist(), starts.tolist(), ends.tolist()):
        fields = data[a:b].split(b" ")
        if len(fields) != source.dimension:
            _fail(source, offset, f"expected {source.dimension} values after the token, found "
                                  f"{len(fields)} (an empty value between two spaces)")
        for field, value in zip(fields, values[position:position + len(fields)]):
            if not np.isfinite(value):
                _fail(source, offset, f"value {field.decode()!r} is not a finite float32")
        position += len(fields)
    raise AssertionError("a block failed to parse but no row is wrong")


def _binary_blocks(source, start, end, digest=None, chunk=None):
    """Yields a _Block per block of whole records starting in [start, end) (end -1: to the end
    of the file)."""
    record = 4 * source.dimension
    with _open_range(source, start, end, chunk) as f:
        if chunk is not None:
            end = -1  # The chunk holds exactly its records.
        elif end < 0:
            f.read(source.body_start)
        else:
            f.seek(start)
        base, buf = start, b""
        while True:
            chunk = f.read(_BLOCK_BYTES)
            buf += chunk
            pos, tokens, offsets, vector_starts = 0, [], [], []
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
                vector_starts.append(space + 1)
                pos = space + 1 + record
            if digest is not None:
                digest.update(buf[:pos])
            yield _Block(pa.array(tokens, pa.binary()), np.array(offsets, np.int64),
                         functools.partial(_binary_vectors, source, buf,
                                           np.array(vector_starts, np.int64),
                                           np.array(offsets, np.int64)), buf[:pos])
            buf, base = buf[pos:], base + pos
            if not chunk or 0 <= end <= base:
                if end >= 0 and base != end:
                    _fail(source, base, f"a record crosses the range end {end}")
                return


def _binary_vectors(source, buf, vector_starts, offsets, indices):
    """The float32 vectors of the records at indices, whose vectors start at vector_starts in
    buf."""
    record = 4 * source.dimension
    vectors = np.frombuffer(b"".join([buf[at:at + record]
                                      for at in vector_starts[indices].tolist()]), "<f4")
    vectors = vectors.astype(np.float32).reshape(-1, source.dimension)
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        _fail(source, int(offsets[indices][np.argmin(finite)]), "a value is not a finite "
                                                                "float32")
    return vectors


def head_tokens(source, count=5):
    """The first tokens of the file (for messages about what the file holds)."""
    if source.fasttext_model:
        words, _ = fasttext_dictionary(source.location.file, source.size, source.modified)
        return [w.decode("utf-8", "replace") for w in words[:count]]
    blocks = _binary_blocks if source.binary else _text_blocks
    end = -1 if source.compressed else source.location.data_size
    for block in blocks(source, source.body_start, end, hashlib.sha256()):
        return [t.decode("utf-8", "replace") for t in block.tokens[:count].to_pylist()]
    return []


def fingerprint(source, range_digests):
    """sha256 of the header and of the body ranges' digests, in file order."""
    digest = hashlib.sha256()
    with sources.open_data(source.location) as f:
        digest.update(f.read(source.body_start))
    for range_digest in range_digests:
        digest.update(range_digest.encode())
    return digest.hexdigest()


def line_number(source, offset):
    """The 1-based line number of the line at a byte offset, for error messages (counted a
    block at a time)."""
    lines, left = 1, offset
    with sources.open_data(source.location) as f:
        while left > 0:
            block = f.read(min(left, _BLOCK_BYTES))
            if not block:
                break
            lines += block.count(b"\n")
            left -= len(block)
    return lines


def _fail_long_line(source, offset, text):
    """Refuses a line longer than source.max_line_bytes at a byte offset (text: its start)."""
    cause = (" (it holds a carriage return: lines that end in CR only, classic Mac OS line "
             "ends? The formats end lines with LF or CR LF)" if b"\r" in text[:-1] else "")
    _fail(source, offset, f"a line longer than max_line_bytes ({source.max_line_bytes} "
                          f"bytes){cause}; raise max_line_bytes if the file's lines really are "
                          f"that long")


def _fail(source, offset, problem):
    where = (f"byte offset {offset}" if source.binary else
             f"line {line_number(source, offset)} (byte offset {offset})")
    raise VectorFileError(f"{source.path} {where}: {problem}")

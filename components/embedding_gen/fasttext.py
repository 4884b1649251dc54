"""fastText models (.bin, Facebook's format): the dictionary, the input matrix, subword vectors.

A .bin file (fastText's Args::save, Dictionary::save, Matrix::save, native byte order):

    new format   int32 magic 793712314, int32 version, then the args
    old format   no magic: the args start at byte 0 with dim and ws
    args         int32 dim ws epoch min_count neg word_ngrams loss model bucket minn maxn
                 lr_update_rate, float64 t (the old format has no magic and version: dim, ws
                 come first)
    dictionary   int32 size nwords nlabels, int64 ntokens, (new) int64 pruneidx_size, then
                 `size` entries: the word's bytes, NUL, int64 count, int8 type; (new)
                 pruneidx_size pairs of int32
    (new) bool   quant_input: a quantized model (.ftz) stores a product-quantized matrix: refused
    input        int64 m, int64 n, then m x n float32: rows 0..nwords-1 are the words', rows
                 nwords.. the character n-gram buckets'

A word's vector is the mean of its own row and its n-gram rows; any other token's is the mean of
its n-gram rows (fastText's getWordVector, gensim's load_facebook_vectors). A token's n-grams are
those of "<token>" of minn to maxn characters (UTF-8 characters, not bytes), except the
1-character n-grams at either end; each is hashed with FNV-1a over its bytes (each byte
sign-extended, as fastText's C++ does), modulo bucket, and read at row nwords + hash. Sums are
float32, in n-gram order, as gensim adds them: the vectors are gensim's, bit for bit.

Only the rows a batch of tokens needs are read, by seeking: a model's bucket matrix is
2,000,000 x 300 (2.4 GB), and memory stays a batch's rows.
"""

import dataclasses
import hashlib
import struct

import numpy as np

from .. import filesystems

MAGIC = 793712314
FORMAT = "fasttext_bin"
_ARGS = struct.Struct("<12id")  # dim ws epoch min_count neg word_ngrams loss model bucket minn
#                                 maxn lr_update_rate t
_OLD_ARGS = struct.Struct("<10id")  # epoch ... t: the old format's, after dim and ws.
_MB_MASK, _MB_START = 0xC0, 0x80  # UTF-8 continuation bytes are 10xxxxxx.
_MAX_WORD_BYTES = 1 << 16
ROWS_PER_READ = 4096  # Tokens whose rows are read and averaged at once (bounds the memory).


class FastTextError(ValueError):
    """A .bin file that is not a usable fastText model (raised as VectorFileError by callers)."""


@dataclasses.dataclass(frozen=True)
class FastTextModel:
    """What is needed to compute vectors from a .bin model, found once by the driver."""
    dimension: int
    bucket: int
    minn: int
    maxn: int
    nwords: int
    matrix_start: int  # Byte offset of the input matrix's first float.
    new_format: bool


HEADER_BYTES = 8 + _ARGS.size  # Enough to recognise either format.


def looks_like_fasttext(head):
    """True if the first HEADER_BYTES bytes are a fastText model's: the new format's magic
    number, or the old format's arguments, each in the range fastText gives it (text, or any
    other file, has other bytes there)."""
    if len(head) >= 4 and struct.unpack("<i", head[:4])[0] == MAGIC:
        return True
    return _old_arguments(head) is not None


def _old_arguments(head):
    """The old format's (dim, ws, epoch, min_count, neg, word_ngrams, loss, model, bucket, minn,
    maxn, lr_update_rate, t) if they are plausible, else None."""
    if len(head) < 8 + _OLD_ARGS.size:
        return None
    values = struct.unpack("<2i", head[:8]) + _OLD_ARGS.unpack(head[8:8 + _OLD_ARGS.size])
    dim, ws, epoch, min_count, neg, word_ngrams, loss, model, bucket, minn, maxn, rate, t = values
    plausible = (0 < dim <= 1 << 16 and 0 < ws < 1000 and 0 < epoch < 1_000_000
                 and 0 <= min_count and 0 <= neg <= 1000 and 0 < word_ngrams <= 100
                 and 1 <= loss <= 4 and 1 <= model <= 3 and 0 <= bucket <= 1 << 30
                 and 0 <= minn <= maxn <= 100 and 0 < rate and 0 < t < 1)
    return values if plausible else None


def describe_header(head):
    """What the first bytes say as a fastText header, for a message about a file that is not."""
    if len(head) < 8:
        return f"{len(head)} bytes, too short for a model"
    first, second = struct.unpack("<2i", head[:8])
    return (f"no magic number {MAGIC}; read as an old-format header its dim would be {first} "
            f"and ws {second}, not values fastText writes")


def read_header(path, f, size):
    """Parses the args, the dictionary, the input matrix's shape; returns (the words, as bytes,
    in id order, a FastTextModel).

    f is the file, at byte 0; size its length. Raises FastTextError naming what is wrong: not a
    fastText model, a truncated or corrupt dictionary or matrix, a quantized model, a matrix
    whose shape is not (nwords + bucket) x dim.
    """
    head = f.read(8)
    if len(head) < 8:
        raise FastTextError(f"{path}: too short for a fastText model ({size} bytes)")
    magic, version = struct.unpack("<2i", head)
    new_format = magic == MAGIC
    if new_format:
        args = _unpack(f, _ARGS, path, "the model's arguments")
        dim, bucket, minn, maxn = args[0], args[8], args[9], args[10]
    else:  # The old format: dim and ws come first, no magic.
        args = _unpack(f, _OLD_ARGS, path, "the model's arguments")
        dim, bucket, minn, maxn = magic, args[6], args[7], args[8]
        if not (0 < dim <= 1 << 16 and 0 < version < 1000 and 0 <= minn <= maxn <= 100
                and bucket >= 0):
            raise FastTextError(f"{path}: not a fastText model (no magic number, and its first "
                                f"bytes are no plausible old-format header: dim {dim}, ws "
                                f"{version})")
    if not 0 < dim <= 1 << 16 or bucket < 0 or not 0 <= minn <= maxn:
        raise FastTextError(f"{path}: implausible fastText arguments: dim {dim}, bucket "
                            f"{bucket}, minn {minn}, maxn {maxn}")
    entries, nwords, nlabels = _unpack(f, struct.Struct("<3i"), path, "the dictionary's size")
    _unpack(f, struct.Struct("<q"), path, "the dictionary's token count")
    prune_pairs = 0
    if new_format:
        prune_pairs = max(0, _unpack(f, struct.Struct("<q"), path, "the prune index size")[0])
    if not 0 <= nwords <= entries or nlabels != entries - nwords:
        raise FastTextError(f"{path}: inconsistent dictionary counts: {entries} entries, "
                            f"{nwords} words, {nlabels} labels")
    words, offset = _read_entries(path, f, f.tell(), entries, nwords)
    f.seek(offset + 8 * prune_pairs)
    if new_format and _unpack(f, struct.Struct("<?"), path, "the quantization flag")[0]:
        raise FastTextError(f"{path}: a quantized fastText model (.ftz); its vectors are "
                            f"compressed: use the .bin model or its .vec export")
    rows, columns = _unpack(f, struct.Struct("<2q"), path, "the input matrix's shape")
    if rows != nwords + bucket or columns != dim:
        raise FastTextError(f"{path}: the input matrix is {rows} x {columns}, expected "
                            f"{nwords} words + {bucket} buckets by {dim}")
    matrix_start = f.tell()
    if size < matrix_start + 4 * rows * columns:
        raise FastTextError(f"{path}: truncated: the input matrix needs "
                            f"{4 * rows * columns} bytes from byte offset {matrix_start}, the "
                            f"file has {size - matrix_start}")
    return words, FastTextModel(dimension=dim, bucket=bucket, minn=minn, maxn=maxn,
                                nwords=nwords, matrix_start=matrix_start, new_format=new_format)


def _read_entries(path, f, offset, entries, nwords):
    """The dictionary's words (its first nwords entries) and the offset just past it."""
    words, buffer, pos = [], b"", 0
    for index in range(entries):
        end = buffer.find(b"\0", pos)
        while end < 0 or len(buffer) < end + 10:  # The word, NUL, int64 count, int8 type.
            if end < 0 and len(buffer) - pos > _MAX_WORD_BYTES:
                raise FastTextError(f"{path}: corrupt dictionary: entry {index} at byte offset "
                                    f"{offset} has no end within {_MAX_WORD_BYTES} bytes")
            more = f.read(1 << 20)
            if not more:
                raise FastTextError(f"{path}: truncated: the file ends inside the dictionary "
                                    f"(entry {index} of {entries}, byte offset {offset})")
            buffer, pos = buffer[pos:] + more, 0
            end = buffer.find(b"\0")
        if index < nwords:
            words.append(buffer[pos:end])
        offset += end + 10 - pos
        pos = end + 10
    return words, offset


def _unpack(f, layout, path, what):
    data = f.read(layout.size)
    if len(data) != layout.size:
        raise FastTextError(f"{path}: truncated: the file ends inside {what}")
    return layout.unpack(data)


def ngram_hashes(token, minn, maxn, bucket):
    """fastText's bucket numbers of a token's character n-grams (see the module docstring)."""
    if bucket == 0 or maxn == 0:
        return []
    word = b"<" + token + b">"
    hashes = []
    for i in range(len(word)):
        if word[i] & _MB_MASK == _MB_START:
            continue
        j, n = i, 1
        while j < len(word) and n <= maxn:
            j += 1
            while j < len(word) and word[j] & _MB_MASK == _MB_START:
                j += 1
            if n >= minn and not (n == 1 and (i == 0 or j == len(word))):
                hashes.append(_fnv1a(word[i:j]) % bucket)
            n += 1
    return hashes


def _fnv1a(data):
    h = 2166136261
    for byte in data:
        h = ((h ^ ((byte - 256 if byte > 127 else byte) & 0xFFFFFFFF)) * 16777619) & 0xFFFFFFFF
    return h


def token_vectors(path, model, tokens, word_ids):
    """The vectors fastText gives tokens: (float32 [n, dimension], bool [n]: has a vector,
    bool [n]: from n-grams alone), and the sha256 of the matrix rows read.

    word_ids: per token, its word's id in the dictionary, or -1. A token without a word row
    and without n-grams (bucket 0, or too short for minn) has no vector. ROWS_PER_READ tokens
    at a time: their rows' references worked out in bulk (`_references`), the rows read once
    each, and each token's rows added in order, for all tokens at once.
    """
    vectors = np.zeros((len(tokens), model.dimension), np.float32)
    counts = np.zeros(len(tokens), np.int64)
    digest = hashlib.sha256()
    with _MatrixReader(path, model) as reader:
        for first in range(0, len(tokens), ROWS_PER_READ):
            last = min(first + ROWS_PER_READ, len(tokens))
            refs, lengths = _references(tokens[first:last], word_ids[first:last], model)
            needed, at = np.unique(refs, return_inverse=True)
            rows = reader.read(needed, digest)
            starts = np.cumsum(lengths) - lengths
            for k in range(int(lengths.max(initial=0))):  # The k-th row of each token, in
                mine = np.flatnonzero(lengths > k)  # order: float32 sums as gensim adds them.
                rows_k = rows[at[starts[mine] + k]]
                if k == 0:
                    vectors[first + mine] = rows_k
                else:
                    vectors[first + mine] += rows_k
            counts[first:last] = lengths
    has_vector = counts > 0
    vectors[has_vector] /= counts[has_vector, None].astype(np.float32)
    return vectors, has_vector, has_vector & (np.asarray(word_ids) < 0), digest.hexdigest()


def _references(tokens, word_ids, model):
    """The matrix rows each token adds, in order (its word's row, then its n-grams' rows), all
    tokens' concatenated, and the number per token. ASCII tokens are hashed in numpy, a step
    of each n-gram's FNV-1a at a time for all of them; others by ngram_hashes. The rows are
    laid out in numpy too: no Python step per token but isascii."""
    word_ids = np.asarray(word_ids, np.int64)
    ascii_tokens = np.array([i for i, t in enumerate(tokens) if t.isascii()], np.int64)
    hashes, owners = (_ascii_ngram_hashes([tokens[i] for i in ascii_tokens.tolist()], model)
                      if len(ascii_tokens) else (np.zeros(0, np.int64), np.zeros(0, np.int64)))
    hashes, owners = [hashes], [ascii_tokens[owners]]
    for i in np.setdiff1d(np.arange(len(tokens)), ascii_tokens).tolist():
        hashes.append(np.array(ngram_hashes(tokens[i], model.minn, model.maxn, model.bucket),
                               np.int64))
        owners.append(np.full(len(hashes[-1]), i, np.int64))
    hashes, owners = np.concatenate(hashes), np.concatenate(owners)
    order = np.argsort(owners, kind="stable")  # By token; each one's n-grams stay in order.
    hashes, owners = hashes[order], owners[order]
    ngrams = np.bincount(owners, minlength=len(tokens))
    has_word = word_ids >= 0
    lengths = ngrams + has_word
    starts = np.cumsum(lengths) - lengths
    refs = np.empty(int(lengths.sum()), np.int64)
    refs[starts[has_word]] = word_ids[has_word]
    rank = np.arange(len(owners)) - (np.cumsum(ngrams) - ngrams)[owners]  # Within its token.
    refs[starts[owners] + has_word[owners] + rank] = model.nwords + hashes
    return refs, lengths


def _ascii_ngram_hashes(tokens, model):
    """(bucket numbers, owner token index) of the n-grams of ASCII tokens, in each token's
    n-gram order (start position, then length), as ngram_hashes gives them."""
    if model.bucket == 0 or model.maxn == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    words = [b"<" + t + b">" for t in tokens]
    lengths = np.array([len(w) for w in words])
    width = int(lengths.max())
    chars = np.zeros((len(words), width), np.uint32)
    flat = np.frombuffer(b"".join(words), np.uint8)
    rows = np.repeat(np.arange(len(words)), lengths)
    columns = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    chars[rows, columns] = flat
    owner, start = np.nonzero(np.arange(width)[None, :] < lengths[:, None])  # Token, then start.
    hashes = np.full(len(owner), 2166136261, np.uint32)
    found = []
    for n in range(1, model.maxn + 1):
        end = start + n
        alive = end <= lengths[owner]
        if not alive.any():
            break
        hashes = hashes[alive] ^ chars[owner[alive], end[alive] - 1]
        hashes = hashes * np.uint32(16777619)
        owner, start = owner[alive], start[alive]
        if n >= model.minn:
            end = start + n
            keep = ~((n == 1) & ((start == 0) | (end == lengths[owner])))
            found.append((owner[keep], start[keep], np.full(keep.sum(), n), hashes[keep]))
    owners, starts, ns, values = (np.concatenate(column) for column in zip(*found))
    order = np.lexsort((ns, starts, owners))
    return (values[order] % np.uint32(model.bucket)).astype(np.int64), owners[order]


class _MatrixReader:
    """Reads rows of a model's input matrix: memory-mapped for a local file (a gather in C),
    run by run of consecutive rows through the filesystem otherwise."""

    def __init__(self, path, model):
        self._path, self._model = path, model
        self._file = self._map = None

    def __enter__(self):
        if filesystems.is_local(self._path):
            rows = self._model.nwords + self._model.bucket
            size = filesystems.stat(self._path).size
            if size < self._model.matrix_start + 4 * rows * self._model.dimension:
                raise FastTextError(f"{self._path}: truncated: the input matrix is past the "
                                    f"end of the file")
            self._map = np.memmap(filesystems.local_path(self._path), "<f4", "r",
                                  self._model.matrix_start, (rows, self._model.dimension))
        else:
            self._file = filesystems.open_read(self._path)
        return self

    def __exit__(self, *exc_info):
        if self._file is not None:
            self._file.close()
        self._map = None

    def read(self, rows, digest):
        """The rows (sorted, unique) as float32 [len(rows), dimension]; digest is updated
        with their bytes in order."""
        if self._map is not None:
            out = np.ascontiguousarray(self._map[rows], np.float32)
            digest.update(out.data)  # No copy.
            _check_finite(self._path, rows, out)
            return out
        return _read_rows(self._file, self._path, self._model, rows, digest)


def _check_finite(path, rows, out):
    if not np.isfinite(out).all():
        bad = int(rows[np.flatnonzero(~np.isfinite(out).all(axis=1))[0]])
        raise FastTextError(f"{path}: row {bad} of the input matrix holds a value that is not a "
                            f"finite float32")


def _read_rows(f, path, model, rows, digest):
    """The matrix rows (sorted, unique), read run by run of consecutive rows."""
    row_bytes = 4 * model.dimension
    out = np.empty((len(rows), model.dimension), np.float32)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for run in np.split(np.arange(len(rows)), breaks):
        if not len(run):
            continue
        f.seek(model.matrix_start + int(rows[run[0]]) * row_bytes)
        data = f.read(len(run) * row_bytes)
        if len(data) != len(run) * row_bytes:
            raise FastTextError(f"{path}: truncated: row {int(rows[run[-1]])} of the input "
                                f"matrix is past the end of the file")
        digest.update(data)
        out[run] = np.frombuffer(data, "<f4").reshape(len(run), model.dimension)
    _check_finite(path, rows, out)
    return out

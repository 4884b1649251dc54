"""TensorFlow's checkpoint format (tensor bundle V2), written for one row slice of a float32
matrix without TensorFlow: what `tf.raw_ops.SaveV2` with a slice spec writes, byte for byte.

EmbeddingGen's shard writers run in Beam workers, where importing TensorFlow would cost seconds
per worker for nothing but this file format. A checkpoint written here is then merged, verified
and read by TensorFlow itself (MergeV2Checkpoints, RestoreV2) in the driver and the trainer; the
tests compare its bytes with SaveV2's.

A bundle at `prefix` is two files:

    prefix.data-00000-of-00001   the slice's float32 bytes, little-endian, row-major
    prefix.index                 an SSTable (LevelDB's table format, no compression) of
                                 key -> protobuf, keys in byte order:
        ""                       BundleHeaderProto {num_shards: 1, version {producer: 1}}
        <slice key>              BundleEntryProto of the slice {dtype, shape, size, crc32c}
        "embeddings"             BundleEntryProto of the whole tensor {dtype, shape, slices}

The slice key is TensorFlow's checkpoint::EncodeTensorNameSlice (strings::OrderedCode of 0, the
name, the rank, then start and length of each dimension). Checksums are CRC-32C, masked as
LevelDB masks them.
"""

import struct

import google_crc32c
import numpy as np

_DT_FLOAT = 1
_MASK_DELTA = 0xA282EAD8
_TABLE_MAGIC = 0xDB4775248B80FB57
_BLOCK_RESTART_INTERVAL = 16  # LevelDB's (and TensorFlow's table::Options') default.
_MAX_BLOCK_BYTES = 256 << 10  # TensorFlow's table block size: one block is all this writes.
_COPY_BYTES = 4 << 20  # Rows are checksummed and written this many bytes at a time.


def write_row_slices(prefix, name, shape, start, rows, cuts, open_file):
    """Writes rows [start, start + len(rows)) of the float32 [rows, dimension] tensor `name`
    as a checkpoint of its own at prefix, one stored slice per [cuts[i], cuts[i + 1]): what
    SaveV2 writes for those slices.

    Args:
      prefix: the checkpoint's prefix.
      name: the tensor's name in the checkpoint.
      shape: (rows, dimension) of the whole tensor.
      start: the first row.
      rows: a float32 array [n, dimension].
      cuts: increasing row numbers from start to start + n: the stored slices' bounds.
      open_file: opens a path for binary writing (a context manager), e.g.
        filesystems.open_write.
    """
    rows = np.asarray(rows, dtype="<f4")
    if rows.ndim != 2 or rows.shape[1] != shape[1] or not (
            0 <= start <= start + len(rows) <= shape[0]):
        raise ValueError(f"rows of shape {rows.shape} at row {start} are not a slice of {shape}")
    if cuts[0] != start or cuts[-1] != start + len(rows) or list(cuts) != sorted(set(cuts)):
        raise ValueError(f"cuts {cuts[:3]}... do not split rows [{start}, {start + len(rows)})")
    header = (b"", _message([(1, 0, 1), (3, 2, _message([(1, 0, 1)]))]))
    name = name.encode()
    slices, offset = [], 0
    # The C checksum takes bytes only: rows are copied a few MB at a time, not a whole slice.
    step = max(1, _COPY_BYTES // max(1, rows.itemsize * shape[1]))
    with open_file(f"{prefix}.data-00000-of-00001") as f:
        for a, b in zip(cuts, cuts[1:]):
            crc, size = 0, 0
            for c in range(a, b, step):
                data = rows[c - start:min(b, c + step) - start].tobytes()
                f.write(data)
                crc, size = google_crc32c.extend(crc, data), size + len(data)
            slices.append(((a, b - a), _message([
                (1, 0, _DT_FLOAT), (2, 2, _shape([b - a, shape[1]])), (4, 0, offset),
                (5, 0, size), (6, 5, _mask(crc))])))
            offset += size
    if len(slices) == 1 and slices[0][0] == (0, shape[0]):  # The whole tensor: unsliced.
        entries = [header, (name, slices[0][1])]
    else:
        entries = [header] + [(_slice_key(name, [extent, (0, shape[1])]), entry)
                              for extent, entry in slices]
        entries.append((name, _message([(1, 0, _DT_FLOAT), (2, 2, _shape(shape))] + [
            (7, 2, _message([(1, 2, _extent(*extent)), (1, 2, _extent(0, shape[1]))]))
            for extent, _ in slices])))
    with open_file(f"{prefix}.index") as f:
        f.write(_table(entries))


def _table(entries):
    """An SSTable of one data block holding the (sorted) entries, an empty metaindex block and
    an index block, then the footer."""
    keys = [key for key, _ in entries]
    if keys != sorted(keys):
        raise ValueError("table keys must be sorted")
    out = bytearray()
    data_handle = _append_block(out, _block(entries))
    if data_handle[1] > _MAX_BLOCK_BYTES:
        raise ValueError("a single-block table grew past TensorFlow's block size")
    metaindex_handle = _append_block(out, _block([]))
    index_handle = _append_block(
        out, _block([(_short_successor(keys[-1]), _varint(data_handle[0]) + _varint(
            data_handle[1]))]))
    footer = _varint(metaindex_handle[0]) + _varint(metaindex_handle[1])
    footer += _varint(index_handle[0]) + _varint(index_handle[1])
    footer = footer.ljust(40, b"\0") + struct.pack("<Q", _TABLE_MAGIC)
    return bytes(out + footer)


def _block(entries):
    """A LevelDB block: prefix-compressed entries, restart points every 16 entries."""
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % _BLOCK_RESTART_INTERVAL == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        out += key[shared:] + value
        previous = key
    if not restarts:
        restarts = [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def _append_block(out, block):
    """Appends a block and its trailer (no compression, masked CRC-32C); returns its handle."""
    handle = (len(out), len(block))
    out += block + b"\0" + struct.pack("<I", _mask(google_crc32c.value(block + b"\0")))
    return handle


def _short_successor(key):
    """LevelDB's FindShortSuccessor: the shortest key >= key (the index block's key)."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def _mask(crc):
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _message(fields):
    """A protobuf message from (field number, wire type, value) triples (0: varint, 2: bytes,
    5: fixed32); zero varints are left out, as proto3 leaves out defaults."""
    out = bytearray()
    for number, wire_type, value in fields:
        if wire_type == 0 and value == 0:
            continue
        out += _varint(number << 3 | wire_type)
        if wire_type == 0:
            out += _varint(value)
        elif wire_type == 2:
            out += _varint(len(value)) + value
        else:
            out += struct.pack("<I", value)
    return bytes(out)


def _shape(dims):
    return _message([(2, 2, _message([(1, 0, int(d))])) for d in dims])


def _extent(start, length):
    return _message([(1, 0, int(start)), (2, 0, int(length))])


def _slice_key(name, extents):
    """checkpoint::EncodeTensorNameSlice."""
    return (_ordered_number(0) + _ordered_string(name) + _ordered_number(len(extents))
            + b"".join(_ordered_signed(s) + _ordered_signed(n) for s, n in extents))


def _ordered_number(value):
    """OrderedCode::WriteNumIncreasing: a length byte, then the big-endian bytes."""
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(body)]) + body


def _ordered_string(value):
    """OrderedCode::WriteString: NUL and 0xff escaped, then the terminator NUL 0x01."""
    escaped = bytearray()
    for byte in value:
        escaped += b"\x00\xff" if byte == 0 else b"\xff\x00" if byte == 0xFF else bytes([byte])
    return bytes(escaped) + b"\x00\x01"


# OrderedCode's kLengthToHeaderBits: the bits that mark an encoding's length in its first bytes.
_LENGTH_BITS = [(0, 0), (0x80, 0), (0xC0, 0), (0xE0, 0), (0xF0, 0), (0xF8, 0), (0xFC, 0),
                (0xFE, 0), (0xFF, 0), (0xFF, 0x80), (0xFF, 0xC0)]


def _ordered_signed(value):
    """OrderedCode::WriteSignedNumIncreasing."""
    x = ~value if value < 0 else value
    if x < 64:
        return bytes([(_LENGTH_BITS[1][0] ^ value) & 0xFF])
    length = (x.bit_length() + 7) // 7
    encoded = bytearray(value.to_bytes(10, "big", signed=True)[10 - length:])
    encoded[0] ^= _LENGTH_BITS[length][0]
    encoded[1] ^= _LENGTH_BITS[length][1]
    return bytes(encoded)

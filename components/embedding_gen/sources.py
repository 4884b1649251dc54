"""Where a vector file's bytes come from: a plain file, a gzip or bzip2 stream, or a member of a
zip archive, local or remote (components.filesystems).

Compression is recognised by its magic number, not by the name. A zip archive is read as it
was downloaded: `glove.6B.zip#glove.6B.300d.txt` names a member (an archive of one member needs
no name). A stored member is read in parallel byte ranges, like a plain file, at its place in
the archive. A compressed stream (gzip, bzip2, a deflated member) cannot be cut into ranges:
each worker inflates all of it and parses its stripe of chunks of whole rows
(`vectors.stripe_ranges`). Inflating uses ISA-L (python-isal), several times zlib's speed.

Anything that is not a regular file (a named pipe, a socket, a device) is refused before it is
opened: opening a pipe waits for a writer, for ever.
"""

import bz2
import dataclasses
import io
import struct
import zipfile
import zlib
from typing import Optional

from isal import igzip, isal_zlib

from .. import filesystems

GZIP, BZIP2, DEFLATE = "gzip", "bzip2", "deflate"
_GZIP_MAGIC, _BZIP2_MAGIC, _ZIP_MAGIC = b"\x1f\x8b", b"BZh", b"PK\x03\x04"
_EXTENSIONS = {".gz": GZIP, ".bz2": BZIP2}
_READ_BYTES = 8 << 20
_INFLATE_INPUT_BYTES = 1 << 20  # Inflated a MB at a time: its output stays in the CPU's cache.
_LINE_STEP = 1 << 16


class VectorFileError(ValueError):
    """A vector file that cannot be used; the message names the file, the line and the problem."""


@dataclasses.dataclass(frozen=True)
class Location:
    """A vector file's data: the file to open, and where in it the data is."""
    path: str  # As given: a file, or archive.zip#member.
    file: str  # The file on the filesystem.
    size: int  # The file's size, bytes.
    modified: int  # Its modification time, ns: a file changed mid-job is detected.
    compression: Optional[str] = None  # None, GZIP, BZIP2 or DEFLATE.
    member: Optional[str] = None  # The zip member, if any.
    data_start: int = 0  # The data's first byte in the file (a member's, after its header).
    data_size: int = -1  # Its length in the file (compressed, if compressed).

    @property
    def compressed(self):
        return self.compression is not None


def locate(path):
    """The Location of a vector file; raises VectorFileError naming what is wrong."""
    file, member = _split_member(path)
    if not filesystems.exists(file):
        raise VectorFileError(f"{path}: pretrained vector file not found")
    stat = filesystems.stat(file)
    if stat.is_dir:
        raise VectorFileError(f"{path}: is a directory, not a vector file")
    if not stat.is_regular:  # Opening a named pipe would wait for a writer, for ever.
        raise VectorFileError(
            f"{path}: is not a regular file (a named pipe, a socket or a device); the job "
            f"reads a vector file in parallel byte ranges and seeks in it: write the stream "
            f"to a file first (for instance curl -o vectors.txt.gz URL)")
    location = Location(path, file, stat.size, stat.modified_ns, data_size=stat.size)
    with filesystems.open_read(file) as f:
        magic = f.read(4)
    if magic.startswith(_ZIP_MAGIC):
        return _zip_member(location, member)
    if member is not None:
        raise VectorFileError(
            f"{path}: {file} is not a zip archive, so it has no member {member!r}")
    compression = (GZIP if magic.startswith(_GZIP_MAGIC) else
                   BZIP2 if magic.startswith(_BZIP2_MAGIC) else None)
    named = next((kind for ext, kind in _EXTENSIONS.items() if file.endswith(ext)), None)
    if named and named != compression:
        raise VectorFileError(f"{path}: named as {named} but its first bytes {magic!r} are not "
                          f"{named} data")
    return dataclasses.replace(location, compression=compression)


def _split_member(path):
    """(archive, member) for archive.zip#member; (path, None) otherwise."""
    head, sep, member = path.rpartition("#")
    if sep and head.lower().endswith(".zip"):
        return head, member
    return path, None


def _zip_member(location, member):
    path = location.path
    with filesystems.open_read(location.file) as f:
        try:
            archive = zipfile.ZipFile(f)
            infos = [i for i in archive.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise VectorFileError(f"{path}: a damaged zip archive ({e})") from None
        names = [i.filename for i in infos]
        if member is None:
            if len(infos) != 1:
                raise VectorFileError(
                    f"{path}: a zip archive of {len(infos)} files; name the vector file as "
                    f"{location.file}#MEMBER, one of {names}")
            info = infos[0]
        else:
            info = next((i for i in infos if i.filename == member), None)
            if info is None:
                raise VectorFileError(f"{path}: the archive has no member {member!r}; it has "
                                  f"{names}")
        if info.flag_bits & 0x1:
            raise VectorFileError(f"{path}: the member is encrypted")
        compression = {zipfile.ZIP_STORED: None, zipfile.ZIP_DEFLATED: DEFLATE,
                       zipfile.ZIP_BZIP2: BZIP2}.get(info.compress_type, "unsupported")
        if compression == "unsupported":
            raise VectorFileError(f"{path}: the member is compressed with method "
                              f"{info.compress_type} (LZMA or another); stored, deflated and "
                              f"bzip2 members are read: unzip it, or zip it again with deflate")
        f.seek(info.header_offset)
        header = f.read(30)
        if len(header) < 30 or header[:4] != _ZIP_MAGIC:
            raise VectorFileError(f"{path}: a damaged zip archive (no local header at byte "
                              f"{info.header_offset})")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
    return dataclasses.replace(
        location, path=f"{location.file}#{info.filename}", member=info.filename,
        compression=compression, data_start=info.header_offset + 30 + name_length + extra_length,
        data_size=info.compress_size)


def check_unchanged(location):
    """Raises VectorFileError if the file is not the one located (replaced or rewritten while
    the job read it): a matrix would mix rows of two files."""
    stat = filesystems.stat(location.file)
    if stat.size != location.size or stat.modified_ns != location.modified:
        raise VectorFileError(
            f"{location.path}: the file changed while the job read it ({location.size} bytes "
            f"when it started, {stat.size} now); nothing was published, run again")


def open_data(location):
    """The (decompressed) data as a binary file object: seekable, relative to the data's start,
    unless compressed. A compressed stream that is cut short or corrupt raises VectorFileError
    naming the file and how far it got."""
    raw = _Window(filesystems.open_read(location.file), location.data_start,
                  location.data_size)
    if location.compression == GZIP:
        return _Checked(igzip.IGzipFile(fileobj=raw, mode="rb"), location.path)
    if location.compression == BZIP2:
        return _Checked(bz2.BZ2File(raw, mode="rb"), location.path)
    if location.compression == DEFLATE:
        return _Checked(io.BufferedReader(_RawInflate(raw), _READ_BYTES), location.path)
    return raw


class _Window(io.RawIOBase):
    """Bytes [start, start + size) of a file, as a file of their own."""

    def __init__(self, f, start, size):
        super().__init__()
        self._f, self._start, self._size, self._position = f, start, size, 0
        f.seek(start)

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        self._f.seek(self._start + self._position)
        return self._position

    def tell(self):
        return self._position

    def read(self, size=-1):
        left = max(0, self._size - self._position)
        size = left if size is None or size < 0 else min(size, left)
        data = self._f.read(size)
        self._position += len(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readline(self, size=-1):
        """The next line, or its first size bytes: read in steps, joined once (linear in the
        line's length however long it is)."""
        parts, length, start = [], 0, self._position
        while size is None or size < 0 or length < size:
            step = _LINE_STEP if size is None or size < 0 else min(_LINE_STEP, size - length)
            block = self.read(step)
            if not block:
                break
            cut = block.find(b"\n")
            parts.append(block if cut < 0 else block[:cut + 1])
            length += len(parts[-1])
            if cut >= 0:
                break
        self.seek(start + length)
        return b"".join(parts)

    def close(self):
        self._f.close()
        super().close()


class _RawInflate(io.RawIOBase):
    """A raw deflate stream (a zip member's data), inflated."""

    def __init__(self, raw):
        super().__init__()
        self._raw, self._inflate = raw, isal_zlib.decompressobj(-15)
        self._pending, self._used = b"", 0

    def readable(self):
        return True

    def readinto(self, buffer):
        while self._used == len(self._pending):
            if self._inflate.eof:
                return 0
            compressed = self._raw.read(_INFLATE_INPUT_BYTES)
            if not compressed:
                raise EOFError("Compressed file ended before the end-of-stream marker was "
                               "reached")
            self._pending, self._used = self._inflate.decompress(compressed), 0
        count = min(len(buffer), len(self._pending) - self._used)
        buffer[:count] = memoryview(self._pending)[self._used:self._used + count]
        self._used += count
        return count

    def close(self):
        self._raw.close()
        super().close()


class _Checked:
    """A decompressing stream whose read errors name the file and how far it got."""

    def __init__(self, stream, path):
        self._stream, self._path, self._read = stream, path, 0

    def _call(self, method, *args):
        try:
            data = method(*args)
        except (EOFError, OSError, zlib.error, isal_zlib.error) as e:
            raise VectorFileError(
                f"{self._path}: the compressed file is cut short or corrupt after "
                f"{self._read} bytes of data ({type(e).__name__}: {e})") from None
        self._read += len(data)
        return data

    def read(self, size=-1):
        return self._call(self._stream.read, size)

    def readline(self, size=-1):
        return self._call(self._stream.readline, size)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stream.close()

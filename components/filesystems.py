"""Files as Beam workers open them: local paths with the operating system, any other scheme
(gs://, s3://, hdfs://, ...) through Beam's FileSystems and its plugins.

EmbeddingGen's Beam workers read the vector file and the vocabulary and write their shards
through this module, and so does its driver for the vector file, so that every process sees the
same size and modification time of a file. TensorFlow is not imported: loading it costs a Beam
worker seconds. The TensorFlow side (merging and restoring checkpoints, the trainer) goes
through tf.io.gfile, which reaches the same storage.
"""

import dataclasses
import os
import stat as stat_module


@dataclasses.dataclass(frozen=True)
class Stat:
    size: int
    modified_ns: int
    is_dir: bool = False
    is_regular: bool = True  # False for a named pipe, a socket, a device.


def scheme(path):
    """The URI scheme of path, lowercased ("s3", "gs", "file"...); "" for a plain path."""
    path = os.fspath(path)
    return path.split("://", 1)[0].lower() if "://" in path else ""


def is_local(path):
    """Whether path is on this machine's filesystem: a plain path, or a file:// URI (the one
    definition: object_storage uses it too)."""
    return scheme(path) in ("", "file")


def local_path(path):
    """The operating system's name of a local path: file:///x is /x."""
    path = os.fspath(path)
    return path.split("://", 1)[1] if scheme(path) == "file" else path


def _beam():
    from apache_beam.io.filesystems import FileSystems  # Remote paths only.

    if getattr(FileSystems, "_pipeline_options", None) is None:
        # Outside a Beam worker and before `configure`: Beam's S3 filesystem refuses to work
        # without options ("Must provide one of client or options"); the defaults take the
        # endpoint and credentials from the environment (boto3's AWS_* variables).
        from apache_beam.options.pipeline_options import PipelineOptions

        FileSystems.set_options(PipelineOptions([]))
    return FileSystems


def configure(pipeline_options):
    """Gives Beam's filesystems the pipeline's options (an S3 endpoint, a project...), in a
    process that reads remote files outside a Beam worker."""
    if pipeline_options is not None:
        _beam().set_options(pipeline_options)


def open_read(path):
    """A binary, seekable file object for reading."""
    if is_local(path):
        return open(local_path(path), "rb")
    from apache_beam.io.filesystem import CompressionTypes

    return _beam().open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def open_write(path):
    """A binary file object for writing (the file is replaced); local parent directories are
    created."""
    if is_local(path):
        path = local_path(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, "wb")
    from apache_beam.io.filesystem import CompressionTypes

    return _beam().create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path):
    with open_read(path) as f:
        return f.read()


def write_bytes(path, data):
    with open_write(path) as f:
        f.write(data)


def exists(path):
    if is_local(path):
        return os.path.exists(local_path(path))
    return _beam().exists(path) or isdir(path)


def isdir(path):
    if is_local(path):
        return os.path.isdir(local_path(path))
    matched = _beam().match([path.rstrip("/") + "/*"], limits=[1])[0].metadata_list
    return bool(matched)


def stat(path):
    """The file's Stat; raises FileNotFoundError."""
    if is_local(path):
        info = os.stat(local_path(path))
        return Stat(info.st_size, info.st_mtime_ns, stat_module.S_ISDIR(info.st_mode),
                    stat_module.S_ISREG(info.st_mode))
    if not _beam().exists(path):
        if isdir(path):
            return Stat(0, 0, is_dir=True, is_regular=False)
        raise FileNotFoundError(path)
    metadata = _beam().get_filesystem(path).metadata(path)  # FileSystems has no metadata().
    return Stat(metadata.size_in_bytes, int(round(metadata.last_updated_in_seconds * 1e9)))

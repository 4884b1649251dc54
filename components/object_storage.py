"""Object storage (s3://, gs://): what the project adds to tf.io.gfile and Beam's filesystems.

- TensorFlow 2.16 has no s3:// filesystem of its own: tensorflow-io registers one in tf.io.gfile
  when it is imported. `use(*paths)` imports it where a path is s3://, once per process, and
  says which extra to install where it is missing (`pip install
  'tfx-pretrained-embeddings[s3]'`: tensorflow-io, and boto3 for Beam's S3 filesystem).
  gs:// is built into TensorFlow, and Beam's GCS filesystem comes with TFX.
- An object store renames nothing atomically, and tensorflow-io renames an s3:// "directory" by
  raw key prefix (`stage` also takes `stage_x/...`). `move` moves a directory object by object
  there (a local directory with one rename); the embedding artifact's publish uses it, and
  still writes its manifest last.
- tensorflow-io 0.37.1 aborts every process that used s3:// at interpreter exit ("pure virtual
  method called", exit status 134; tensorflow/io#2039, fixed upstream, not released). `finish`
  ends such a process with its real status, after the exit handlers, skipping the C++ static
  destructors that abort; the command line (`python -m tfx_embeddings.pipeline`) ends so.

Nothing here imports TensorFlow until a function needs it: Beam workers import this module.
"""

import atexit
import functools
import os
import sys
import traceback

from .filesystems import is_local, scheme

EXTRA = "pip install 'tfx-pretrained-embeddings[s3]'"
_used = set()  # Schemes use() was given in this process.


class ObjectStorageError(RuntimeError):
    """A path whose filesystem is not installed, named with the package that provides it."""


def use(*paths):
    """Makes every path's filesystem usable from tf.io.gfile in this process.

    Imports tensorflow-io where a path is s3:// (it registers s3:// with TensorFlow), and
    checks that boto3 is there for Beam's S3 filesystem (whose own error is an AssertionError:
    'Missing boto3 requirement').

    Raises:
      ObjectStorageError: tensorflow-io or boto3 is not installed, or TensorFlow still has no
        filesystem for a path's scheme; the message names the path and what to install.
    """
    schemes = {scheme(p): os.fspath(p) for p in paths if p and not is_local(p)}
    if not schemes:
        return
    if "s3" in schemes:
        for module, reader in (("tensorflow_io", "TensorFlow reads s3:// paths through "
                                                 "tensorflow-io"),
                               ("boto3", "Beam reads s3:// paths with boto3")):
            try:
                __import__(module)  # tensorflow_io registers s3:// (and az://, hdfs://...).
            except ImportError as e:
                raise ObjectStorageError(f"{schemes['s3']}: {reader}, which is not installed "
                                         f"({e}); install the s3 extra: {EXTRA}") from None
    _used.update(schemes)
    import tensorflow as tf

    registered = set(tf.io.gfile.get_registered_schemes())
    for name, path in schemes.items():
        if name not in registered:
            raise ObjectStorageError(
                f"{path}: TensorFlow has no filesystem for {name}:// (it has "
                f"{', '.join(sorted(s for s in registered if s))})")


def move(source, destination):
    """Moves the file or directory source to destination (replaced if it is a file).

    Local paths (and filesystems with directories) take one rename. On an object store a
    directory is its objects: each is copied to its place under destination, then the sources
    are deleted; destination must not hold anything else under that name (remove it first).
    Not atomic there: whoever must never see half of it needs a marker written last.
    """
    import tensorflow as tf

    if is_local(source) or not tf.io.gfile.isdir(source):
        tf.io.gfile.rename(source, destination, overwrite=True)
        return
    source, destination = source.rstrip("/"), destination.rstrip("/")
    files = [f"{root.rstrip('/')}/{name}"
             for root, _, names in tf.io.gfile.walk(source) for name in names]
    for path in files:
        tf.io.gfile.copy(path, destination + path[len(source):], overwrite=True)
    for path in files:
        tf.io.gfile.remove(path)


def remove_tree(path):
    """tf.io.gfile.rmtree, where a directory that holds nothing is no error: on an object store
    it does not exist (rmtree raises NotFoundError there)."""
    import tensorflow as tf

    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def s3_used():
    """True once use() was given an s3:// path in this process."""
    return "s3" in _used and "tensorflow_io" in sys.modules


def finish(status=0):
    """Ends the process with status; where s3:// was used, through os._exit after the exit
    handlers have run and the streams are flushed (tensorflow-io would otherwise abort it,
    status 134). Elsewhere, sys.exit(status)."""
    if not s3_used():
        sys.exit(status)
    if isinstance(status, str):  # As sys.exit prints a message and exits with 1.
        print(status, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status or 0)


def exits_cleanly(main):
    """Decorates a command's main: where s3:// was used, the process ends through `finish`
    with the status main returned (0 unless an int), exited with, or 1 for an exception
    (printed first, as the interpreter would); elsewhere main returns or raises as usual."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            result = main(*args, **kwargs)
        except SystemExit as e:
            if s3_used():
                finish(e.code)
            raise
        except BaseException:
            if s3_used():
                traceback.print_exc()
                finish(1)
            raise
        if s3_used():
            finish(result if isinstance(result, int) else 0)
        return result

    return wrapped

"""The fingerprint of an ExampleGen's input files: a step of the open-source Kubeflow spec.

    python -m tfx_embeddings.pipeline.kubeflow.data_fingerprint --input-base URI \\
        --input-config JSON --output FILE

On Vertex, TFX's ExampleGen driver (its `preCacheCheck` hook) fingerprints the input files
before the cache is consulted. The open-source backend never runs that hook, and its cache key
is the task's inputs, outputs, command, arguments and image: an ExampleGen reading new files
under the same URI would be served yesterday's examples. This step runs first, is never cached,
and hands ExampleGen its fingerprint as an input parameter, so ExampleGen's cache key changes
exactly when the files do.

The fingerprint covers, for each split's pattern (input_config), every matching file's name
relative to the input base, size and modification time (components.filesystems.stat: an
object's update time in a bucket, nanoseconds for a local file, which tf.io.gfile's stat would
round to the second).
"""

import argparse
import hashlib
import json
import os
import re
import sys

from ...components import filesystems, object_storage
from . import artifact_store


class FingerprintError(ValueError):
    """The input files cannot be fingerprinted (none match a split, or a pattern needs TFX's
    span or version resolution)."""


def fingerprint(input_base, splits):
    """A fingerprint of the files under input_base that the splits' patterns match.

    Args:
      input_base: the examples' directory (any filesystem tf.io.gfile reaches).
      splits: (name, pattern) pairs, patterns relative to input_base (ExampleGen's input_config).

    Returns:
      "sha256:<hex> (N files, B bytes)".

    Raises:
      FingerprintError: a split matches no file, or a pattern has a {SPAN}, {VERSION} or date
        placeholder (resolved by TFX's driver, which the open-source backend does not run).
    """
    import tensorflow as tf

    digest, files, total = hashlib.sha256(), 0, 0
    for name, pattern in splits:
        if re.search(r"\{(SPAN|VERSION|YYYY|MM|DD)(:\d+)?\}", pattern):
            raise FingerprintError(
                f"split {name}: the pattern {pattern!r} has a span or version placeholder, "
                f"which TFX's ExampleGen driver resolves; the open-source Kubeflow backend does "
                f"not run that driver")
        paths = sorted(tf.io.gfile.glob(os.path.join(input_base, pattern)))
        if not paths:
            raise FingerprintError(f"split {name}: no file matches "
                                   f"{os.path.join(input_base, pattern)}")
        for path in paths:
            stat = filesystems.stat(path)
            relative = os.path.relpath(path, input_base)
            digest.update(f"{name}\0{relative}\0{stat.size}\0{stat.modified_ns}\n".encode())
            files, total = files + 1, total + stat.size
    return f"sha256:{digest.hexdigest()} ({files} files, {total} bytes)"


def splits_of(input_config):
    """(name, pattern) of each split of ExampleGen's input_config (an Input proto as JSON)."""
    return [(split["name"], split["pattern"]) for split in json.loads(input_config)["splits"]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-base", required=True, help="the examples' directory")
    parser.add_argument("--input-config", required=True, help="ExampleGen's input_config (JSON)")
    parser.add_argument("--output", required=True, help="where to write the fingerprint")
    args = parser.parse_args(argv)
    try:
        # A stock install's minio:// root: the launcher's MinIO, as s3:// (artifact_store).
        input_base, _ = artifact_store.for_tensorflow(args.input_base)
        value = fingerprint(input_base, splits_of(args.input_config))
    except FingerprintError as e:
        sys.exit(f"error: {e}")
    print(f"input fingerprint of {args.input_base}: {value}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(value)


if __name__ == "__main__":
    object_storage.exits_cleanly(main)()

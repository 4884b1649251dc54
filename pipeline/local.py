"""Running a TFX pipeline here, with LocalDagRunner and its SQLite metadata store.

    tfx_embeddings.pipeline.local.run(pipeline)

Two runs started at once on one pipeline would race on its SQLite store and on TFX's cache; a
run holds an exclusive lock beside the store while it lasts, so a scheduled run that starts
while the last one is still going waits for it, then takes what it can from the cache.
"""

import contextlib
import fcntl
import os
import time

from ..components import progress


@contextlib.contextmanager
def metadata_lock(metadata_path):
    """Holds an exclusive lock beside the local metadata store (`<path>.lock`) while a run uses it.

    Args:
      metadata_path: the SQLite file of the run's ML Metadata store.
    """
    os.makedirs(os.path.dirname(metadata_path), exist_ok=True)
    with open(metadata_path + ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.report("another run holds %s; waiting for it to finish", lock.name)
            started = time.monotonic()
            fcntl.flock(lock, fcntl.LOCK_EX)
            progress.report("got %s after %.0fs", lock.name, time.monotonic() - started)
        yield


def run(pipeline):
    """Runs a tfx.dsl.Pipeline with LocalDagRunner, holding its metadata store's lock.

    Args:
      pipeline: a tfx.dsl.Pipeline whose metadata connection is a SQLite file.

    Raises:
      ValueError: the pipeline's metadata store is not a SQLite file.
    """
    from tfx import v1 as tfx

    config = pipeline.metadata_connection_config
    if config is None or not config.HasField("sqlite"):
        raise ValueError(f"pipeline {pipeline.pipeline_info.pipeline_name}: the local runner "
                         f"needs a SQLite metadata store "
                         f"(tfx.orchestration.metadata.sqlite_metadata_connection_config)")
    with metadata_lock(config.sqlite.filename_uri):
        tfx.orchestration.LocalDagRunner().run(pipeline)

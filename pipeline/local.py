"""Running a TFX pipeline here, with LocalDagRunner and its SQLite metadata store, as a schedule
runs it: one run at a time, nothing left behind, old artifacts retired.

    tfx_embeddings.run_local(pipeline, retention=tfx_embeddings.RetentionPolicy(keep_runs=3))

- **One run at a time.** Two runs started at once on one pipeline would race on its SQLite store
  and on TFX's cache; a run holds an exclusive lock beside the store while it lasts, so a
  scheduled run that starts while the last one is still going waits for it, then takes what it
  can from the cache.
- **Nothing left behind.** The Beam steps get this project's wheel as `--extra_package` (see
  `packages`), so TFX builds no package of itself per Beam step; everything else TFX, Beam and
  TensorFlow put in the temporary directory (user-code wheels of `module_file`s, their installs)
  goes to a directory of the run's own beside the metadata store, removed when the run ends.
- **A killed run heals.** Before a run, with the lock held, what a killed run left is cleared:
  its scratch directory, its half-written outputs and push, its executions (marked CANCELED);
  see `retention.heal`.
- **Bounded disk.** After a run, a retention policy retires the artifacts no recent run, the
  pushed model or the latest blessed model needs (`retention.apply`).

Start each scheduled run in a process of its own (the CLI, a script the scheduler runs): the
process keeps what TensorFlow creates at every SavedModel load for its whole life, so one
that calls `run` run after run grows (docs/scheduling.md, "A process per run").
"""

import contextlib
import dataclasses
import fcntl
import os
import shutil
import tempfile
import time
import uuid
from typing import Optional

from ..components import progress
from . import packages

# Beside the metadata store: the scratch directories of runs (only the running one's exists,
# except after a killed run, until the next run starts).
SCRATCH_DIR_SUFFIX = ".scratch"


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


@contextlib.contextmanager
def scratch_directory(parent):
    """The process's temporary directory (tempfile's and $TMPDIR, which child processes
    inherit) is a new directory under parent while the block runs, removed after it, with
    whatever was left in it. Directories under parent left by a killed run are removed first:
    call it with the run's lock held.

    Args:
      parent: a local directory, e.g. `<metadata path>.scratch`.
    """
    if os.path.isdir(parent):
        for stale in os.listdir(parent):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    path = os.path.join(parent, uuid.uuid4().hex)
    os.makedirs(path)
    saved_tempdir, saved_environ = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = path
    os.environ["TMPDIR"] = path
    try:
        yield path
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_environ is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_environ
        shutil.rmtree(parent, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """What `run` did, beside what the pipeline's artifacts say.

    Attributes:
      healed: what was cleared of a killed earlier run before this one (retention.Report).
      retired: what the retention policy retired after this run (retention.Report), or None
        without a policy.
    """
    healed: "object"
    retired: Optional["object"]


def run(pipeline, retention=None, beam_package=None):
    """Runs a tfx.dsl.Pipeline with LocalDagRunner, as a scheduled run: under its metadata
    store's lock, nothing of it left outside the pipeline root and the metadata store's
    directory, then old artifacts retired by a policy.

    Args:
      pipeline: a tfx.dsl.Pipeline whose metadata connection is a SQLite file.
      retention: a retention.RetentionPolicy applied after a successful run, or None (nothing
        retired).
      beam_package: the package Beam workers install, added to the pipeline's Beam arguments
        as `--extra_package` unless they name their own (`--extra_package(s)`,
        `--setup_file`, `--requirements_file`, a container image). Default: this project's
        wheel (`packages.project_wheel()`), built once per version of the code.

    Returns:
      A LocalRun.

    Raises:
      ValueError: the pipeline's metadata store is not a SQLite file.

    Example:

      pipeline = tfx.dsl.Pipeline(..., metadata_connection_config=
          tfx.orchestration.metadata.sqlite_metadata_connection_config("root/metadata.sqlite"))
      result = tfx_embeddings.run_local(
          pipeline, retention=tfx_embeddings.RetentionPolicy(keep_runs=3))
      print(result.retired.freed_bytes)
    """
    from tfx import v1 as tfx

    from . import retention as retention_lib

    config = pipeline.metadata_connection_config
    if config is None or not config.HasField("sqlite"):
        raise ValueError(f"pipeline {pipeline.pipeline_info.pipeline_name}: the local runner "
                         f"needs a SQLite metadata store "
                         f"(tfx.orchestration.metadata.sqlite_metadata_connection_config)")
    metadata_path = config.sqlite.filename_uri
    with metadata_lock(metadata_path), \
            scratch_directory(metadata_path + SCRATCH_DIR_SUFFIX):
        _name_beam_package(pipeline, beam_package)
        healed = retention_lib.heal(pipeline)
        tfx.orchestration.LocalDagRunner().run(pipeline)
        retired = None if retention is None else retention_lib.apply(pipeline, retention)
    return LocalRun(healed=healed, retired=retired)


run_local = run  # Its name in the public API (tfx_embeddings.run_local).


def _name_beam_package(pipeline, package):
    """Each Beam step's arguments (the pipeline's, which TFX has copied into each step, and
    its own) name the workers' package."""
    from tfx.dsl.components.base import executor_spec

    for component in pipeline.components:
        spec = component.executor_spec
        if isinstance(spec, executor_spec.BeamExecutorSpec):
            package = package or packages.project_wheel()
            spec.beam_pipeline_args = packages.with_package(spec.beam_pipeline_args, package)

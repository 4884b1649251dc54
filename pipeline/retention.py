"""Retention of a TFX pipeline's artifacts: what a schedule of runs keeps, and what it retires.

Every run whose inputs changed writes new artifacts under the pipeline root (examples,
vocabulary, Transform output, EmbeddingGen's checkpoint, models); none is ever removed by TFX.
A policy keeps:

- the artifacts of the last `keep_runs` successful runs, inputs and outputs, whichever run
  produced them (a run reuses older outputs from TFX's cache; a trainer reads the model it
  warm-starts from), and of every run after the oldest of those;
- the latest blessed model and its blessing (the next run's warm start and the Evaluator's
  baseline, whatever the window);
- the latest pushed model: its PushedModel, and the model and blessing it was pushed from.

The others are retired: each is marked MARKED_FOR_DELETION in ML Metadata, its files are
deleted, then it is marked DELETED. TFX's cache uses only LIVE outputs whose files exist
(`tfx/orchestration/portable/cache_utils.py`) and its input resolution only LIVE artifacts
(`input_resolution/channel_resolver.py`), so a step whose cached output was retired runs again.
A PushedModel retired takes its version in the push destination with it.

`heal` clears what a killed run left (run it with the metadata store's lock held, before a run):
its executions still NEW or RUNNING are marked CANCELED, the output directories no LIVE
artifact owns are deleted (half-written outputs of a killed step), a Pusher's half push (a
version directory no PushedModel records, written after the killed Pusher started) is deleted,
and artifacts left MARKED_FOR_DELETION by a killed retention are finished. `apply` does the same
after retiring. Both touch only files under the pipeline root and push destinations.
"""

import dataclasses
import os
from typing import Dict, List, Optional

from ..components import progress

_SYSTEM_DIR = ".system"
# Under <pipeline_root>/<node>/.system: per execution temporary and working directories.
_EXECUTION_DIRS = ("executor_execution", "stateful_working_dir")


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """Which artifacts a pipeline keeps.

    Attributes:
      keep_runs: the artifacts the last keep_runs successful runs used or produced are kept
        (at least 1); with the latest blessed and the latest pushed model, whatever their age.
    """
    keep_runs: int

    def __post_init__(self):
        if not isinstance(self.keep_runs, int) or self.keep_runs < 1:
            raise ValueError(f"keep_runs: {self.keep_runs!r} is not a whole number of runs >= 1")


@dataclasses.dataclass
class Report:
    """What a retention pass or a heal did.

    Attributes:
      retired: {artifact type: count} of artifacts retired (now DELETED).
      freed_bytes: bytes of files deleted (artifacts, orphaned outputs, half pushes).
      orphans: directories deleted that no LIVE artifact owned (a killed step's outputs, a
        half push). The per-execution directories TFX leaves under `<node>/.system` are
        deleted too, without a mention.
      canceled_executions: executions of killed runs marked CANCELED.
      kept_runs: the runs whose artifacts the policy kept (their ML Metadata context names).
    """
    retired: Dict[str, int] = dataclasses.field(default_factory=dict)
    freed_bytes: int = 0
    orphans: List[str] = dataclasses.field(default_factory=list)
    canceled_executions: int = 0
    kept_runs: List[str] = dataclasses.field(default_factory=list)

    def describe(self):
        """One line for a person."""
        retired = ", ".join(f"{count} {name}" for name, count in sorted(self.retired.items()))
        parts = [f"retired {retired or 'nothing'}",
                 f"freed {self.freed_bytes / 1e6:.1f} MB"]
        if self.orphans:
            parts.append(f"{len(self.orphans)} leftover directories of a killed run removed")
        if self.canceled_executions:
            parts.append(f"{self.canceled_executions} executions of a killed run canceled")
        if self.kept_runs:
            runs = len(self.kept_runs)
            parts.append(f"keeping the artifacts of {runs} run{'s' if runs > 1 else ''}")
        return "; ".join(parts)


def heal(pipeline):
    """Clears what a killed run of the pipeline left. Call with its metadata lock held.

    Args:
      pipeline: the tfx.dsl.Pipeline (its metadata connection, pipeline root, Pushers).

    Returns:
      A Report.
    """
    return _Pass(pipeline).run(policy=None)


def apply(pipeline, policy):
    """Retires the artifacts of the pipeline the policy does not keep, then heals. Call with
    its metadata lock held (`local.metadata_lock`), between runs.

    Args:
      pipeline: the tfx.dsl.Pipeline (its metadata connection, pipeline root, Pushers).
      policy: a RetentionPolicy.

    Returns:
      A Report.

    Example:

      with local.metadata_lock(metadata_path):
          report = retention.apply(pipeline, RetentionPolicy(keep_runs=3))
      print(report.describe())
    """
    return _Pass(pipeline).run(policy=policy)


class _Pass:
    """One pass over the pipeline's ML Metadata and files."""

    def __init__(self, pipeline):
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2

        self._pb = metadata_store_pb2
        self._store = metadata_store.MetadataStore(pipeline.metadata_connection_config)
        self._name = pipeline.pipeline_info.pipeline_name
        self._root = pipeline.pipeline_info.pipeline_root.rstrip("/")
        self._node_ids = [component.id for component in pipeline.components]
        self._push_bases = _push_bases(pipeline)
        self.report = Report()

    def run(self, policy):
        context = self._store.get_context_by_type_and_name("pipeline", self._name)
        if context is None:
            return self.report
        executions = self._store.get_executions_by_context(context.id)
        self._executions = {e.id: e for e in executions}
        self._cancel_dead(executions)
        artifacts = {a.id: a for a in self._store.get_artifacts_by_context(context.id)}
        events = self._store.get_events_by_execution_ids(list(self._executions))
        for artifact in self._store.get_artifacts_by_id(
                sorted({e.artifact_id for e in events} - set(artifacts))):
            artifacts[artifact.id] = artifact
        self._artifacts = artifacts
        pending = [a for a in artifacts.values()
                   if a.state in (a.MARKED_FOR_DELETION, a.PENDING)]
        retire = pending
        if policy is not None:
            keep = self._kept(policy, events)
            retire += [a for a in artifacts.values()
                       if a.state == a.LIVE and a.id not in keep and self._owned(a)]
        self._retire(retire)
        self._remove_orphans()
        if policy is not None or self.report.retired or self.report.orphans:
            progress.report("retention: %s", self.report.describe())
        return self.report

    def _cancel_dead(self, executions):
        """Executions left NEW or RUNNING: their run was killed (the lock says none runs)."""
        pb = self._pb.Execution
        dead = [e for e in executions if e.last_known_state in (pb.NEW, pb.RUNNING)]
        self._dead_pushers = []
        for execution in dead:
            execution.last_known_state = pb.CANCELED
            if execution.type in _PUSHER_TYPES:
                self._dead_pushers.append(execution)
        if dead:
            self._store.put_executions(dead)
        self.report.canceled_executions = len(dead)

    def _kept(self, policy, events):
        """Ids of the artifacts the policy keeps."""
        pb = self._pb
        runs = []
        for context in self._store.get_contexts_by_type("pipeline_run"):
            executions = [e for e in self._store.get_executions_by_context(context.id)
                          if e.id in self._executions]
            if executions:
                runs.append((context, executions))
        runs.sort(key=lambda run: run[0].id)
        successful = [i for i, (_, executions) in enumerate(runs) if all(
            e.last_known_state in (pb.Execution.COMPLETE, pb.Execution.CACHED)
            for e in executions)]
        first = successful[-policy.keep_runs] if len(successful) >= policy.keep_runs else 0
        kept_runs = runs[first:]
        self.report.kept_runs = [context.name for context, _ in kept_runs]
        kept_executions = {e.id for _, executions in kept_runs for e in executions}
        keep = {e.artifact_id for e in events if e.execution_id in kept_executions}
        keep |= self._latest_blessed() | self._latest_pushed(events)
        return keep

    def _latest_blessed(self):
        """The latest blessed model and its blessing, as LatestBlessedModelStrategy picks them."""
        blessings = {}
        for artifact in self._live("ModelBlessing"):
            if _int(artifact, "blessed") == 1:
                blessings[_int(artifact, "current_model_id")] = artifact.id
        models = sorted((a.id for a in self._live("Model") if a.id in blessings), reverse=True)
        return {models[0], blessings[models[0]]} if models else set()

    def _latest_pushed(self, events):
        """The latest PushedModel that pushed, and what its Pusher read (model, blessing)."""
        pushed = [a.id for a in self._live("PushedModel") if _int(a, "pushed") == 1]
        if not pushed:
            return set()
        latest = max(pushed)
        executions = {e.execution_id for e in events
                      if e.artifact_id == latest and e.type == e.OUTPUT}
        return {latest} | {e.artifact_id for e in events
                           if e.execution_id in executions and e.type == e.INPUT}

    def _live(self, type_name):
        return [a for a in self._artifacts.values() if a.type == type_name and a.state == a.LIVE]

    def _owned(self, artifact):
        """An artifact whose files are under the pipeline root (an imported one is not)."""
        return _under(artifact.uri, self._root)

    def _retire(self, artifacts):
        """MARKED_FOR_DELETION, files (and a push's version) deleted, then DELETED."""
        if not artifacts:
            return
        pb = self._pb.Artifact
        for artifact in artifacts:
            artifact.state = pb.MARKED_FOR_DELETION
        self._store.put_artifacts(artifacts)
        for artifact in artifacts:
            if self._owned(artifact):
                self.report.freed_bytes += _delete(artifact.uri)
            if artifact.type in _PUSHED_TYPES:
                self._remove_push(artifact)
            artifact.state = pb.DELETED
            self.report.retired[artifact.type] = self.report.retired.get(artifact.type, 0) + 1
        self._store.put_artifacts(artifacts)

    def _remove_push(self, artifact):
        destination = _string(artifact, "pushed_destination")
        version = _string(artifact, "pushed_version")
        if destination and version and os.path.basename(destination.rstrip("/")) == version:
            self.report.freed_bytes += _delete(destination)

    def _remove_orphans(self):
        """Output directories of the pipeline's nodes that no LIVE artifact owns, execution
        scratch directories, and half pushes of killed Pushers."""
        import tensorflow as tf

        owned = set()
        for artifact in self._artifacts.values():
            if artifact.state == artifact.LIVE and self._owned(artifact):
                relative = artifact.uri[len(self._root) + 1:].split("/")
                owned.add("/".join(relative[:3]))
        for node in self._node_ids:
            node_dir = f"{self._root}/{node}"
            if not tf.io.gfile.isdir(node_dir):
                continue
            for key in tf.io.gfile.listdir(node_dir):
                key = key.rstrip("/")
                if key == _SYSTEM_DIR:
                    candidates = [f"{_SYSTEM_DIR}/{kind}/{entry.rstrip('/')}"
                                  for kind in _EXECUTION_DIRS
                                  for entry in _listdir(f"{node_dir}/{_SYSTEM_DIR}/{kind}")]
                else:
                    candidates = [f"{key}/{entry.rstrip('/')}"
                                  for entry in _listdir(f"{node_dir}/{key}")]
                for candidate in candidates:
                    if key == _SYSTEM_DIR:  # TFX leaves them, empty or not, after each step.
                        self.report.freed_bytes += _delete(f"{node_dir}/{candidate}")
                    elif f"{node}/{candidate}" not in owned:
                        self._remove_orphan(f"{node_dir}/{candidate}")
        for execution in self._dead_pushers:
            self._remove_half_pushes(execution)

    def _remove_half_pushes(self, execution):
        started = execution.create_time_since_epoch // 1000
        recorded = {_string(a, "pushed_destination").rstrip("/")
                    for a in self._artifacts.values() if a.type in _PUSHED_TYPES}
        for base in self._push_bases:
            for version in _listdir(base):
                version = version.rstrip("/")
                path = f"{base.rstrip('/')}/{version}"
                if version.isdigit() and int(version) >= started and path not in recorded:
                    self._remove_orphan(path)

    def _remove_orphan(self, path):
        freed = _delete(path)
        self.report.freed_bytes += freed
        if freed:  # An empty one is what deleting an artifact inside it left.
            self.report.orphans.append(path)


_PUSHER_TYPES = ("tfx.components.pusher.component.Pusher",)
_PUSHED_TYPES = ("PushedModel",)


def _push_bases(pipeline):
    """The filesystem push destinations of the pipeline's Pushers."""
    from tfx.proto import pusher_pb2

    bases = []
    for component in pipeline.components:
        destination = component.exec_properties.get("push_destination") \
            if hasattr(component, "exec_properties") else None
        if isinstance(destination, str):
            try:
                from google.protobuf import json_format

                destination = json_format.Parse(destination, pusher_pb2.PushDestination())
            except Exception:  # A placeholder or a runtime parameter: nothing to heal from.
                continue
        if isinstance(destination, pusher_pb2.PushDestination) and destination.HasField(
                "filesystem"):
            bases.append(destination.filesystem.base_directory)
    return bases


def _int(artifact, key) -> Optional[int]:
    value = artifact.custom_properties.get(key)
    return value.int_value if value is not None else None


def _string(artifact, key):
    value = artifact.custom_properties.get(key)
    return value.string_value if value is not None else ""


def _under(path, root):
    return bool(path) and path.rstrip("/").startswith(root + "/")


def _listdir(path):
    import tensorflow as tf

    return tf.io.gfile.listdir(path) if tf.io.gfile.isdir(path) else []


def _delete(path):
    """Deletes a file or a directory tree; returns the bytes its files held."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return 0
    if not tf.io.gfile.isdir(path):
        size = tf.io.gfile.stat(path).length
        tf.io.gfile.remove(path)
        return size
    size = sum(tf.io.gfile.stat(os.path.join(directory, name)).length
               for directory, _, names in tf.io.gfile.walk(path) for name in names)
    tf.io.gfile.rmtree(path)
    return size

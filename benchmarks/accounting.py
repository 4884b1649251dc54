"""Where a LocalDagRunner run's seconds go, component by component.

    with ComponentClock() as clock:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    clock.phases()   # {component id: {phase: seconds}}

TFX's launcher runs each component as: the driver (`_prepare_execution`: inputs resolved, the
cache looked up, the execution registered in ML Metadata), the executor operator
(`_run_executor`), in which TFX may build its ephemeral package for Beam
(`dependency_utils.build_ephemeral_package`) before the executor's own `Do`, then the publisher
(`_publish_successful_execution`: the outputs recorded in ML Metadata). The clock wraps those
functions of TFX 1.16, in this process only, and splits each component's time into:

- `own_work`: the executor's `Do`, the component's own work (its Beam job included);
- `packaging`: TFX's ephemeral package for Beam, built before `Do`;
- `metadata`: the driver and the publisher (ML Metadata, the cache lookup, input resolution);
- `other`: the rest of the launch (the executor operator's set-up, the execution watcher, the
  clean-up of the execution's temporary files).
"""

import collections
import threading
import time

PHASES = ("own_work", "packaging", "metadata", "other")


class ComponentClock:
    """Splits the seconds of every component LocalDagRunner launches in this process."""

    def __init__(self):
        self._seconds = collections.defaultdict(lambda: collections.defaultdict(float))
        self._node = threading.local()
        self._patches = []

    def phases(self):
        """{component id: {phase: seconds, "total": seconds}}, in launch order."""
        result = {}
        for node, seconds in self._seconds.items():
            phases = {phase: round(seconds[phase], 2) for phase in PHASES[:-1]}
            accounted = seconds["own_work"] + seconds["packaging"] + seconds["metadata"]
            phases["other"] = round(max(0.0, seconds["total"] - accounted), 2)
            phases["total"] = round(seconds["total"], 2)
            result[node] = phases
        return result

    def _timed(self, owner, name, phase, is_launch=False):
        original = getattr(owner, name)
        clock = self

        def wrapper(*args, **kwargs):
            if is_launch:
                clock._node.id = args[0]._pipeline_node.node_info.id
            node = getattr(clock._node, "id", None)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if node is not None:
                    clock._seconds[node][phase] += time.perf_counter() - started

        self._patches.append((owner, name, original))
        setattr(owner, name, wrapper)

    def __enter__(self):
        from tfx.orchestration.portable import launcher, python_executor_operator
        from tfx.utils import dependency_utils

        self._timed(launcher.Launcher, "launch", "total", is_launch=True)
        self._timed(launcher.Launcher, "_prepare_execution", "metadata")
        self._timed(launcher.Launcher, "_publish_successful_execution", "metadata")
        self._timed(dependency_utils, "build_ephemeral_package", "packaging")
        self._timed(python_executor_operator, "run_with_executor", "own_work")
        return self

    def __exit__(self, *exc_info):
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()
        return False


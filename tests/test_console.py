"""A run's full log: where it goes, and that a schedule's logs stay bounded."""

import os
import types

from tfx_embeddings.pipeline import console


def test_the_oldest_logs_go_so_a_schedule_keeps_a_bounded_number(tmp_path):
    logs = tmp_path / "root" / "logs"
    logs.mkdir(parents=True)
    for i in range(console.LOGS_KEPT + 5):
        path = logs / f"run-{i:03d}.log"
        path.write_text("log")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    (logs / "notes.txt").write_text("not a log")
    config = types.SimpleNamespace(pipeline_root=str(tmp_path / "root"),
                                   metadata_path=str(tmp_path / "root" / "metadata.sqlite"))
    path = console.log_path(config)
    assert os.path.dirname(path) == str(logs) and path.endswith(".log")
    kept = sorted(name for name in os.listdir(logs) if name.endswith(".log"))
    assert len(kept) == console.LOGS_KEPT - 1  # With the new run's: LOGS_KEPT.
    assert kept[0] == "run-006.log"  # The oldest went.
    assert (logs / "notes.txt").exists()

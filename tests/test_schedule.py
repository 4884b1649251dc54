"""Scheduled runs of the demo pipeline on the sample: what runs leave behind, retention, and
runs killed (SIGKILL) at one point of each late step, then healed by the next run.

Two groups of real runs, shared by the tests: three runs in one process (the schedule
simulator, as a long-lived scheduler's worker runs them), then, on the same pipeline, runs of
the CLI (as Airflow's task runs them) killed in EmbeddingGen, the trainer, the Evaluator, the
Pusher and the retention step, and a last run that must succeed.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from tfx_embeddings.pipeline import packages
from tfx_embeddings.pipeline.demo import sample_data, schedule

pytestmark = pytest.mark.pipeline

LIVE, DELETED = metadata_store_pb2.Artifact.LIVE, metadata_store_pb2.Artifact.DELETED
COMPLETE, CACHED = metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED


def _write_config(tmp_path, keep_runs):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"""
        pipeline_name: scheduled
        pipeline_root: {tmp_path}/root
        serving_dir: {tmp_path}/serving
        data:
          examples: {tmp_path}/sample/corpus
          vectors: {tmp_path}/sample/vectors/glove.sample.50d.txt
        text: {{max_tokens: 16, vocabulary_splits: [train, eval]}}
        embedding: {{num_shards: 2}}
        trainer: {{epochs: 1, batch_size: 16}}
        retention: {{keep_runs: {keep_runs}}}
        beam_pipeline_args: [--runner=FnApiRunner, --direct_running_mode=in_memory]
    """))
    return str(path)


def _store(tmp_path):
    return metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
        str(tmp_path / "root" / "metadata.sqlite")))


def _runs(store):
    """[(run context name, {node id: execution})] oldest first."""
    runs = []
    for context in sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id):
        executions = {}
        for execution in store.get_executions_by_context(context.id):
            executions[_node(store, execution)] = execution
        runs.append((context.name, executions))
    return runs


def _node(store, execution):
    for context in store.get_contexts_by_execution(execution.id):
        if context.type == "node":
            return context.name.split(".", 1)[1]
    raise AssertionError(f"execution {execution.id} has no node context")


def _outputs(store, execution, type_name):
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
           if e.type == e.OUTPUT]
    return [a for a in store.get_artifacts_by_id(ids) if a.type == type_name]


def _inputs(store, execution, type_name):
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
           if e.type == e.INPUT]
    return [a for a in store.get_artifacts_by_id(ids) if a.type == type_name]


def _snapshot(store):
    """The store's artifacts and runs as they are now (later tests change them)."""
    return {"artifacts": {a.id: a for a in store.get_artifacts()}, "runs": _runs(store),
            "store": store}


@pytest.fixture(scope="session")
def scheduled(tmp_path_factory):
    """Three runs in one process, new rows before each (run 3's are run 1's: TFX's cache would
    hand run 3 run 1's outputs), keeping 1 run; in a temporary directory of their own."""
    tmp_path = tmp_path_factory.mktemp("schedule")
    sample_data.write_sample(str(tmp_path / "sample"), n_train=120, n_eval=60)
    temporary_dir = tmp_path / "tmpdir"
    temporary_dir.mkdir()
    records_path = tmp_path / "records.json"
    result = subprocess.run(
        [sys.executable, "-m", "tfx_embeddings.pipeline.demo.schedule", "--config",
         _write_config(tmp_path, keep_runs=1), "--runs", "3", "--rows", "30", "--data-cycle",
         "2", "--work", str(tmp_path / "work"), "--json", str(records_path)],
        env={**os.environ, "TMPDIR": str(temporary_dir)}, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    with open(records_path) as f:
        records = json.load(f)
    return {"tmp_path": tmp_path, "records": records, "temporary_dir": temporary_dir,
            "stdout": result.stdout, **_snapshot(_store(tmp_path))}


def test_runs_leave_nothing_in_the_temporary_directory(scheduled):
    """No package of TFX, no user-code wheel, no directory: 0 bytes after every run."""
    assert [(r["run"], r["tmp_bytes"], r["tmp_entries"]) for r in scheduled["records"]] == \
        [(run, 0, []) for run in range(4)]
    assert os.listdir(scheduled["temporary_dir"]) == []


def test_runs_leave_no_process_and_no_open_file(scheduled):
    """Before the first run (record 0) and after each: the same open files, but for a handle on
    the process's own command line (/proc/<pid>/cmdline) that TensorFlow's runtime opens at its
    first op and keeps for the process's life; the same number of descriptors after every run
    (gRPC keeps its poller's from the first run on)."""
    records = scheduled["records"]
    assert [r["children"] for r in records] == [[]] * 4
    for record in records[1:]:
        opened = [path for path in record["open_files"] if path not in records[0]["open_files"]]
        assert [path for path in opened if not re.fullmatch(r"/proc/\d+/cmdline", path)] == []
        assert record["open_files"] == records[1]["open_files"]  # Nothing more per run.
        assert record["fds"] == records[1]["fds"]


def test_a_step_whose_cached_output_was_retired_runs_again(scheduled):
    """Run 3 reads run 1's rows: ExampleGen's cache key is run 1's, but run 1's Examples were
    retired after run 2 (keep 1 run), so it runs again, and writes new Examples."""
    store, runs = scheduled["store"], scheduled["runs"]
    (_, first), (_, second), (_, third) = runs
    assert first["CsvExampleGen"].last_known_state == COMPLETE
    assert third["CsvExampleGen"].last_known_state == COMPLETE  # Not CACHED.
    assert third["ImportSchemaGen"].last_known_state == CACHED  # Kept: every run used it.
    old, = _outputs(store, first["CsvExampleGen"], "Examples")
    new, = _outputs(store, third["CsvExampleGen"], "Examples")
    assert old.state == DELETED and not os.path.exists(old.uri)
    assert new.state == LIVE and new.id != old.id and os.path.isdir(new.uri)


def test_retention_keeps_the_warm_start_chain_and_the_pushed_model(scheduled):
    store, runs = scheduled["store"], scheduled["runs"]
    (_, first), (_, second), (_, third) = runs
    models = [_outputs(store, run["EmbeddingTrainer"], "Model")[0] for run in (first, second,
                                                                               third)]
    assert [m.state for m in models] == [DELETED, LIVE, LIVE]
    # Run 3 warm-started from run 2's model: kept, though run 2 is out of the window.
    assert [m.id for m in _inputs(store, third["EmbeddingTrainer"], "Model")] == [models[1].id]
    assert os.path.isdir(models[1].uri) and not os.path.exists(models[0].uri)
    embedding, = _outputs(store, second["EmbeddingGen"], "tfx_embeddings.PretrainedEmbedding")
    assert embedding.state == DELETED and not os.path.exists(embedding.uri)
    # The serving directory: only the push of run 3 (the latest), which loads and scores.
    pushes = [_outputs(store, run["Pusher"], "PushedModel")[0] for run in (first, second,
                                                                            third)]
    assert [p.state for p in pushes] == [DELETED, DELETED, LIVE]
    latest = pushes[2].custom_properties["pushed_destination"].string_value
    assert sorted(os.listdir(scheduled["tmp_path"] / "serving")) == [os.path.basename(latest)]
    result = subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", "predict", latest,
                             "a brilo movie"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("a brilo movie")


def test_retired_artifacts_are_deleted_and_marked(scheduled):
    artifacts = scheduled["artifacts"].values()
    deleted = [a for a in artifacts if a.state == DELETED]
    assert sum(sum(r.get("retired", {}).values()) for r in scheduled["records"]) == len(deleted)
    assert [a.uri for a in deleted if os.path.exists(a.uri)] == []
    assert [a.uri for a in artifacts if a.state == LIVE and not os.path.exists(a.uri)] == []
    assert {a.state for a in artifacts} == {LIVE, DELETED}
    freed = [r.get("freed_bytes") for r in scheduled["records"][1:]]
    assert freed[0] == 0 and freed[1] > 0 and freed[2] > 0


def test_the_retire_verb_retires_nothing_more(scheduled):
    result = subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", "retire",
                             "--config", str(scheduled["tmp_path"] / "config.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = result.stdout.splitlines()  # Its own line only, once.
    assert line.endswith(" retention: retired nothing; freed 0.0 MB; keeping the artifacts of 1 "
                         "run"), line


# Where each step shows it started: the directory of its first output (made just before TFX
# runs its executor), and how long after that it is killed, at most.
_KILL_POINTS = (("EmbeddingGen", "embedding", 1.5), ("EmbeddingTrainer", "model", 8.0),
                ("Evaluator", "evaluation", 3.0), ("Pusher", "pushed_model", 0.05))


def _run_cli(tmp_path, kill_in=None, rng=None, code=None):
    """A run of the CLI; killed (SIGKILL, its whole process group) a random moment after the
    step kill_in = (node, output key, seconds) starts. Returns its exit status."""
    command = [sys.executable, "-m", "tfx_embeddings.pipeline", "run", "--config",
               str(tmp_path / "config.yaml")]
    if code:
        command = [sys.executable, "-c", code] + command[3:]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    if kill_in is None:
        return process.wait(timeout=900)
    node, key, at_most = kill_in
    outputs = tmp_path / "root" / node / key
    before = set(os.listdir(outputs)) if outputs.exists() else set()
    while process.poll() is None and not (outputs.exists() and set(os.listdir(outputs)) - before):
        time.sleep(0.01)
    time.sleep(rng.uniform(0, at_most))
    os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


# The retention step killed in its middle: after its first artifact's files are deleted, the
# others marked MARKED_FOR_DELETION with their files still there.
_KILLED_IN_RETENTION = textwrap.dedent("""
    import os, signal, sys
    from tfx_embeddings.pipeline import retention
    delete, apply = retention._delete, retention.apply
    def killed_after_one(path):
        delete(path)
        os.kill(os.getpid(), signal.SIGKILL)
    def apply_killed(pipeline, policy):  # Not in the heal before the run: in the retention.
        retention._delete = killed_after_one
        return apply(pipeline, policy)
    retention.apply = apply_killed
    from tfx_embeddings.pipeline import cli
    cli.main(sys.argv[1:])
""")


def _serving_state(tmp_path):
    """The serving directory's versions that a server would load (saved_model.pb present)."""
    serving = tmp_path / "serving"
    return sorted(v for v in os.listdir(serving) if (serving / v / "saved_model.pb").exists())


def _pushed_versions(store):
    return sorted(a.custom_properties["pushed_version"].string_value
                  for a in store.get_artifacts_by_type("PushedModel") if a.state == LIVE
                  and a.custom_properties["pushed"].int_value == 1)


@pytest.fixture(scope="session")
def killed(scheduled):
    """After the three runs: new rows, then CLI runs killed in EmbeddingGen, the trainer, the
    Evaluator, the Pusher and the retention step, each the next run after the last; then a run
    that must succeed. Records what serving and ML Metadata showed after each kill."""
    tmp_path = scheduled["tmp_path"]
    config = schedule.prepare_data(_config_for(tmp_path), str(tmp_path / "work"))
    schedule.add_rows(config, 4, 30)
    store = _store(tmp_path)
    blessed_before = _pushed_versions(store)[-1]
    rng = random.Random(35)
    after_kills = []
    for point in _KILL_POINTS:
        assert _run_cli(tmp_path, point, rng) == -signal.SIGKILL, point
        after_kills.append((point[0], _serving_state(tmp_path), _pushed_versions(_store(
            tmp_path))))
    assert _run_cli(tmp_path, code=_KILLED_IN_RETENTION) == -signal.SIGKILL
    marked = [a for a in _store(tmp_path).get_artifacts()
              if a.state == metadata_store_pb2.Artifact.MARKED_FOR_DELETION]
    status = _run_cli(tmp_path)
    return {"tmp_path": tmp_path, "status": status, "after_kills": after_kills,
            "blessed_before": blessed_before, "marked": marked,
            **_snapshot(_store(tmp_path))}


def _config_for(tmp_path):
    from tfx_embeddings.pipeline.demo.config import load_config

    return load_config(str(tmp_path / "config.yaml"))


def test_the_run_after_killed_runs_succeeds(killed):
    assert killed["status"] == 0
    _, last = killed["runs"][-1]
    assert len(last) == 10 and all(e.last_known_state in (COMPLETE, CACHED)
                                   for e in last.values())
    # Every killed execution was marked CANCELED; none is left RUNNING.
    canceled_state = metadata_store_pb2.Execution.CANCELED
    states = [e.last_known_state for _, run in killed["runs"] for e in run.values()]
    assert metadata_store_pb2.Execution.RUNNING not in states
    killed_runs = killed["runs"][3:3 + len(_KILL_POINTS)]  # After the three scheduled runs.
    canceled = []
    for (node, _, _), (_, run) in zip(_KILL_POINTS, killed_runs, strict=True):
        # The kill lands a random moment after the step starts: in it, or in a later step when
        # the step ends first (on a loaded machine too), or between two steps. Only the
        # execution running at the kill, the run's last, may be CANCELED.
        started = [name for name, _ in sorted(run.items(), key=lambda item: item[1].id)]
        assert node in started, (node, started)
        in_run = [name for name, e in run.items() if e.last_known_state == canceled_state]
        assert in_run in ([], started[-1:]), (node, started, in_run)
        canceled += in_run
    assert canceled  # Four kills, each a random moment within a step: at least one in a step.
    assert states.count(canceled_state) == len(canceled)  # None in any other run.


def test_serving_keeps_the_last_blessed_model_while_runs_are_killed(killed):
    """Between the kills, the only versions a server would load are pushes recorded in ML
    Metadata: the last blessed model until a Pusher completes."""
    for step, loadable, recorded in killed["after_kills"]:
        if step != "Pusher":
            assert loadable == recorded and recorded[-1] == killed["blessed_before"], step
        else:  # A push killed after its saved_model.pb was copied is whole, not recorded...
            assert set(recorded) <= set(loadable) and len(loadable) <= len(recorded) + 1
    # ...and the next run removes it: what serving holds is what ML Metadata recorded.
    assert _serving_state(killed["tmp_path"]) == _pushed_versions(killed["store"])
    assert sorted(os.listdir(killed["tmp_path"] / "serving")) == _pushed_versions(
        killed["store"])


def test_no_half_artifact_is_published_and_nothing_needed_is_retired(killed):
    artifacts = killed["artifacts"].values()
    assert [a.uri for a in artifacts if a.state == LIVE and not os.path.exists(a.uri)] == []
    assert [a.uri for a in artifacts if a.state == DELETED and os.path.exists(a.uri)] == []
    assert {a.state for a in artifacts} == {LIVE, DELETED}  # Nothing left half-retired.
    assert killed["marked"], "the retention step was killed before it marked anything"
    # Every output directory under the pipeline root is a LIVE artifact's.
    root = str(killed["tmp_path"] / "root")
    owned = {"/".join(os.path.relpath(a.uri, root).split(os.sep)[:3])
             for a in artifacts if a.state == LIVE}
    found = {f"{node}/{key}/{entry}" for node in os.listdir(root)
             if os.path.isdir(os.path.join(root, node)) and node not in ("logs",)
             and not node.startswith(".") and not node.endswith(".scratch")
             for key in os.listdir(os.path.join(root, node)) if key != ".system"
             for entry in os.listdir(os.path.join(root, node, key))}
    assert found == owned
    # The latest blessed model, the next run's warm start, is LIVE and whole.
    blessed = [a for a in artifacts if a.type == "ModelBlessing" and a.state == LIVE
               and a.custom_properties["blessed"].int_value == 1]
    latest = max(blessed, key=lambda a: a.custom_properties["current_model_id"].int_value)
    model = killed["artifacts"][latest.custom_properties["current_model_id"].int_value]
    assert model.state == LIVE and os.path.isdir(os.path.join(model.uri, "Format-Serving"))


def test_a_killed_run_leaves_no_scratch_after_the_next(killed):
    root = killed["tmp_path"] / "root"
    assert not (root / "metadata.sqlite.scratch").exists()


def test_beam_steps_get_the_project_wheel_unless_they_name_a_package(tmp_path):
    wheel = packages.project_wheel(str(tmp_path / "cache"))
    assert packages.project_wheel(str(tmp_path / "cache")) == wheel  # Built once.
    args = ["--runner=FnApiRunner"]
    assert packages.with_package(args, wheel) == args + [f"--extra_package={wheel}"]
    for own in (["--extra_package=x.whl"], ["--setup_file=./setup.py"],
                ["--requirements_file=r.txt"], ["--sdk_container_image=image:1"]):
        assert packages.with_package(args + own, wheel) == args + own
    # It installs, and holds the package with its compiled code.
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(target), wheel], check=True)
    result = subprocess.run(
        [sys.executable, "-S", "-c", "import tfx_embeddings, glob, os; print(tfx_embeddings."
         "__file__); print(len(glob.glob(os.path.dirname(tfx_embeddings.__file__) + "
         "'/components/vocabulary_gen/_word_counter*.so')))"],
        env={**os.environ, "PYTHONPATH": str(target)}, cwd=str(tmp_path), capture_output=True,
        text=True, check=True)
    assert result.stdout.split() == [str(target / "tfx_embeddings" / "__init__.py"), "1"]

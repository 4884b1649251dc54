"""The demo pipeline on a schedule that Apache Airflow's scheduler keeps (`make demo-airflow`).

Airflow 2.x runs in a virtualenv of its own (airflow-requirements.txt: it cannot install beside
the pinned TFX stack), with its SQLite metadata database, so with its SequentialExecutor: one
task at a time. The DAG runs the pipeline every minute through the project's CLI, with this
project's interpreter (`python -m tfx_embeddings.pipeline run --config ...`).

What it shows, in a working directory of its own (build/airflow/demo):

1. The scheduler triggers run 1, then, after new train rows are added, run 2: run 2 reads the
   new rows, warm-starts from run 1's blessed model and is evaluated against it.
2. Two runs overlapping: a run started by hand holds the pipeline's metadata lock when the
   scheduler starts run 3; run 3's task waits for it (its Airflow log says so), then runs.
3. The runs as Airflow recorded them (`airflow dags list-runs`).

Every process it started (the scheduler, its DAG processor, task runners) is stopped at the
end, and checked to be gone.

    python -m tfx_embeddings.pipeline.demo.airflow --config configs/demo.yaml \
        --airflow build/airflow/venv
"""

import argparse
import datetime
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import yaml

from . import schedule
from .config import load_config

DAG_ID = "tfx_embeddings_demo"
TASK_ID = "run_pipeline"
NEW_ROWS = 200

DAG_FILE = '''"""The demo pipeline of tfx-pretrained-embeddings every minute (written by
tfx_embeddings.pipeline.demo.airflow). Airflow's interpreter only schedules: the task runs the
pipeline with the project's own interpreter, through its CLI."""

import datetime

from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(
    dag_id={dag_id!r},
    schedule=datetime.timedelta(minutes=1),
    start_date=datetime.datetime({start}, tzinfo=datetime.timezone.utc),
    catchup=False,          # A run for the latest minute only, not one per minute missed.
    max_active_runs=1,
    is_paused_upon_creation=False,
) as dag:
    BashOperator(
        task_id={task_id!r},
        bash_command={command!r},
        execution_timeout=datetime.timedelta(minutes=30),
    )
'''


class DemoError(RuntimeError):
    """The demo could not show what it shows (a run failed, or took too long)."""


class Airflow:
    """An Airflow home with its scheduler, run from the virtualenv at venv."""

    def __init__(self, venv, home, dags):
        self.home = home
        self.executable = os.path.join(venv, "bin", "airflow")
        self.env = {**os.environ,
                    # The SequentialExecutor runs each task as `airflow tasks run ...`.
                    "PATH": os.path.join(venv, "bin") + os.pathsep + os.environ["PATH"],
                    "AIRFLOW_HOME": home,
                    "AIRFLOW__CORE__DAGS_FOLDER": dags,
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                    # New DAG files found and parsed within seconds.
                    "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
                    "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
        self.scheduler = None

    def cli(self, *args):
        env = {**self.env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}  # Only the answer.
        result = subprocess.run([self.executable, *args], env=env, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise DemoError(f"airflow {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self):
        self.cli("db", "migrate")
        self._log = open(os.path.join(self.home, "scheduler.log"), "w")
        self.scheduler = subprocess.Popen([self.executable, "scheduler"], env=self.env,
                                          stdout=self._log, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def dag_runs(self):
        """[(run_id, run_type, state, start, end)] of the DAG, oldest first."""
        path = os.path.join(self.home, "airflow.db")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            return db.execute("SELECT run_id, run_type, state, start_date, end_date FROM dag_run "
                              "WHERE dag_id = ? ORDER BY id", (DAG_ID,)).fetchall()

    def task_log(self, run_id):
        directory = os.path.join(self.home, "logs", f"dag_id={DAG_ID}", f"run_id={run_id}",
                                 f"task_id={TASK_ID}")
        text = ""
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            with open(os.path.join(directory, name)) as f:
                text += f.read()
        return text

    def stop(self):
        """Stops the scheduler and every process of its session; returns how many there were
        and those still there (none)."""
        import psutil

        if self.scheduler is None:
            return 0, []
        session = self.scheduler.pid
        members = _session_members(session)
        try:
            os.killpg(session, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _, alive = psutil.wait_procs(members, timeout=30)
        for process in alive:
            process.kill()
        psutil.wait_procs(alive, timeout=10)
        self.scheduler.wait(timeout=10)
        self._log.close()
        return len(members), _session_members(session)


def _session_members(session):
    import psutil

    members = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session:
                members.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    return members


def _wait_for_run(airflow, number, deadline_s, report):
    """Waits until the DAG has `number` scheduled runs and the last of them succeeded; pauses
    the DAG once that run is running, so that the next run is the scheduler's answer to the
    next unpause, after the data changed (a run longer than the schedule's interval would
    otherwise be followed at once)."""
    started = time.monotonic()
    shown = None
    while time.monotonic() - started < deadline_s:
        runs = [r for r in airflow.dag_runs() if r[1] == "scheduled"]
        if len(runs) >= number:
            run_id, _, state, *_ = runs[number - 1]
            if (run_id, state) != shown:
                report(f"  Airflow: run {number} ({run_id}) {state}")
                shown = (run_id, state)
                if state == "running":
                    airflow.cli("dags", "pause", DAG_ID)
            if state == "success":
                return run_id
            if state == "failed":
                raise DemoError(f"run {number} ({run_id}) failed; its task's log:\n"
                                + airflow.task_log(run_id)[-5000:])
        if airflow.scheduler.poll() is not None:
            raise DemoError("the Airflow scheduler stopped; see "
                            + os.path.join(airflow.home, "scheduler.log"))
        time.sleep(2)
    raise DemoError(f"no successful run {number} within {deadline_s} s")


def _demo_config(config, work_dir):
    config = schedule.prepare_data(config, work_dir)
    return config.model_copy(update={
        "pipeline_name": config.pipeline_name + "-airflow",
        "pipeline_root": os.path.join(work_dir, "pipeline_root"),
        "serving_dir": os.path.join(work_dir, "serving"),
        "metadata_path": os.path.join(work_dir, "pipeline_root", "metadata.sqlite"),
        "trainer": config.trainer.model_copy(update={"train_random_baseline": False})})


def _write_config(config, path):
    with open(path, "w") as f:
        yaml.safe_dump(config.model_dump(mode="json"), f, sort_keys=False)


def _examples_rows(uri, split):
    import warnings

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # Only reading records: none of its start-up lines.
    warnings.filterwarnings("ignore", category=FutureWarning)
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(uri, f"Split-{split}", "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def check_second_run(config, report):
    """What shows that run 2 read the new rows, warm-started from run 1's blessed model and was
    compared with it; raises DemoError if it did not."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration import metadata

    INPUT, OUTPUT = metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.OUTPUT
    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(config.metadata_path))
    runs = []
    for context in sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id):
        by_node = {}
        for execution in store.get_executions_by_context(context.id):
            node = next(c.name.split(".", 1)[1]
                        for c in store.get_contexts_by_execution(execution.id) if c.type == "node")
            events = store.get_events_by_execution_ids([execution.id])
            by_node[node] = {kind: store.get_artifacts_by_id(
                [e.artifact_id for e in events if e.type == kind]) for kind in (INPUT, OUTPUT)}
        runs.append(by_node)
    first, second = runs[0], runs[1]
    rows = [_examples_rows(run["CsvExampleGen"][OUTPUT][0].uri, "train") for run in (first, second)]
    model_1, = [a for a in first["EmbeddingTrainer"][OUTPUT] if a.type == "Model"]
    model_2, = [a for a in second["EmbeddingTrainer"][OUTPUT] if a.type == "Model"]
    warm = [a.id for a in second["EmbeddingTrainer"][INPUT] if a.type == "Model"]
    baseline = [a.id for a in second["Evaluator"][INPUT]
                if a.type == "Model" and a.id != model_2.id]
    report(f"  run 1 read {rows[0]} train rows, run 2 read {rows[1]} "
           f"({rows[1] - rows[0]:+d}: the rows added between the runs)")
    report(f"  run 2's trainer warm-started from model {warm} (run 1's blessed model: "
           f"{model_1.id}); its Evaluator's baseline: model {baseline}")
    if rows[1] - rows[0] != NEW_ROWS or warm != [model_1.id] or baseline != [model_1.id]:
        raise DemoError("run 2 did not read the new rows, or did not start from run 1's model")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--airflow", default="build/airflow/venv",
                        help="the virtualenv with Airflow (airflow-requirements.txt)")
    parser.add_argument("--work", default="build/airflow/demo")
    parser.add_argument("--deadline", type=int, default=900,
                        help="seconds each scheduled run may take to appear and succeed")
    args = parser.parse_args(argv)
    work_dir = os.path.abspath(args.work)
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(os.path.join(work_dir, "dags"))
    os.makedirs(os.path.join(work_dir, "airflow_home"))
    config = _demo_config(load_config(args.config), work_dir)
    config_path = os.path.join(work_dir, "config.yaml")
    _write_config(config, config_path)
    command = (f"cd {os.getcwd()} && {sys.executable} -m tfx_embeddings.pipeline run "
               f"--config {config_path}")
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=2)
    with open(os.path.join(work_dir, "dags", "tfx_embeddings_demo.py"), "w") as f:
        f.write(DAG_FILE.format(dag_id=DAG_ID, task_id=TASK_ID, command=command,
                                start=", ".join(str(x) for x in start.timetuple()[:5])))
    airflow = Airflow(os.path.abspath(args.airflow), os.path.join(work_dir, "airflow_home"),
                      os.path.join(work_dir, "dags"))
    report = print
    ok = False
    try:
        report(f"Airflow's scheduler (SQLite, SequentialExecutor) with the DAG {DAG_ID}: "
               f"the pipeline every minute\n  {command}")
        airflow.start()
        _wait_for_run(airflow, 1, args.deadline, report)
        schedule.add_rows(config, 2, NEW_ROWS, name="new-2.csv")
        report(f"{NEW_ROWS} new train rows added; the DAG unpaused for the scheduler's next run")
        airflow.cli("dags", "unpause", DAG_ID)
        _wait_for_run(airflow, 2, args.deadline, report)
        check_second_run(config, report)
        _overlap(airflow, config, config_path, args.deadline, report)
        report("\nThe runs as Airflow recorded them (airflow dags list-runs):")
        report(airflow.cli("dags", "list-runs", "-d", DAG_ID))
        ok = True
    except DemoError as e:
        report(f"error: {e}")
    finally:
        count, left = airflow.stop()
        report(f"Stopped Airflow: {count} processes; left running: {len(left)}")
        if left:
            ok = False
    return 0 if ok else 1


def _overlap(airflow, config, config_path, deadline_s, report):
    """A run started by hand holds the lock when the scheduler starts run 3, which waits."""
    schedule.add_rows(config, 3, NEW_ROWS, name="new-3.csv")
    log = os.path.join(os.path.dirname(config_path), "manual-run.log")
    report("\nA slow run started by hand (new rows again), then the scheduler unpaused:")
    with open(log, "w") as out:
        manual = subprocess.Popen([sys.executable, "-m", "tfx_embeddings.pipeline", "run",
                                   "--config", config_path], stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        while "started" not in open(log).read():  # It holds the lock once a step started.
            if manual.poll() is not None:
                raise DemoError(f"the run started by hand failed; see {log}")
            time.sleep(1)
        airflow.cli("dags", "unpause", DAG_ID)
        run_id = _wait_for_run(airflow, 3, deadline_s, report)
    finally:
        status = manual.wait()
    if status != 0:
        raise DemoError(f"the run started by hand failed; see {log}")
    waited = [line.strip() for line in airflow.task_log(run_id).splitlines()
              if "another run holds" in line or " after " in line and "got " in line]
    report("  run 3's task log in Airflow:\n" + textwrap.indent("\n".join(waited), "    "))
    if not any("another run holds" in line for line in waited):
        raise DemoError("run 3 did not wait for the run started by hand")


if __name__ == "__main__":
    sys.exit(main())

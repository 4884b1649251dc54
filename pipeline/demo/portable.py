"""The Beam steps on Beam's portable runner, the path Flink, Spark and Dataflow run Python on.

    python -m tfx_embeddings.pipeline.demo.portable --config configs/demo.yaml  (make demo-portable)

Starts a Beam job service in a process of its own and an external SDK worker pool in another
(the shape configs/flink.yaml uses: --environment_type=EXTERNAL), runs the pipeline with every
Beam step (ExampleGen, StatisticsGen, VocabularyGen, Transform, EmbeddingGen, Evaluator) sent to
that job service as a portable job (pipeline protos, artifact staging, SDK harnesses in the worker
pool's processes), then runs it again on the local runner, and compares the outputs byte for
byte: the vocabulary file and the checkpoint's .index and .data-* files.

What it does not prove: a cluster (one machine) or a remote filesystem (all paths are local);
`make demo-flink` runs the same steps on a Flink cluster.
"""

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time

from ..console import RunConsole
from .config import load_config
from .runners import compare_outputs, run_in


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_for(port, process, name, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {name} exited with code {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the {name} did not listen on port {port} within {timeout}s")


@contextlib.contextmanager
def portable_services(log_dir):
    """A Beam job service and an external worker pool, each in a process of its own; yields the
    beam_pipeline_args that send jobs to them. Their logs go to log_dir."""
    os.makedirs(log_dir, exist_ok=True)
    job_port, pool_port = _free_port(), _free_port()
    # The worker pool starts SDK workers with the `python` on PATH: this interpreter's.
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep
           + os.environ.get("PATH", "")}
    commands = {
        "job service": [sys.executable, "-m",
                        "apache_beam.runners.portability.local_job_service_main",
                        "--port", str(job_port)],
        "worker pool": [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                        f"--service_port={pool_port}"],
    }
    processes = {}
    try:
        for (name, command), port in zip(commands.items(), (job_port, pool_port)):
            log = open(os.path.join(log_dir, name.replace(" ", "_") + ".log"), "w")
            processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                               env=env, start_new_session=True)
            _wait_for(port, processes[name], name)
        yield ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
               "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}"]
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def compare_runs(config, work_dir):
    """Runs the pipeline on the portable runner and on config's runner; returns
    ({relative path: identical}, the portable services' log directory)."""
    logs = os.path.join(work_dir, "services")
    with portable_services(logs) as portable_args:
        run_in(config, os.path.join(work_dir, "portable"), portable_args)
        run_in(config, os.path.join(work_dir, "local"), config.beam_pipeline_args)
    return compare_outputs(os.path.join(work_dir, "local"),
                           os.path.join(work_dir, "portable")), logs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--work_dir", default="build/portable")
    args = parser.parse_args()
    work_dir = os.path.abspath(args.work_dir)
    log_path = os.path.join(work_dir, "portable_demo.log")
    with RunConsole(log_path) as console:
        console.print(f"The pipeline on the portable runner, then the local one; the full log: "
                      f"{log_path}")
        identical, logs = compare_runs(load_config(args.config), work_dir)
    for path, same in identical.items():
        print(f"{'identical' if same else 'DIFFERENT'}  {path}")
    print(f"job service and worker pool logs: {logs}")
    if not identical or not all(identical.values()):
        sys.exit("the portable run's outputs differ from the local run's")


if __name__ == "__main__":
    main()

"""The pipeline's Beam steps on a real Apache Flink cluster, started and stopped here.

    python -m tfx_embeddings.pipeline.demo.flink --config configs/flink.yaml   (make demo-flink)

Runs the pipeline once on the local runner (the reference), then starts a standalone Flink
cluster on this machine (a JobManager and TaskManagers, each a `java` process of its own, and
Beam's Flink job server; tfx_embeddings.pipeline.flink) on the ports the config's
beam_pipeline_args name, and runs the pipeline again with those options: every Beam step
(ExampleGen, StatisticsGen, VocabularyGen, Transform, EmbeddingGen, Evaluator) is a Flink job,
named <pipeline>-<time>-<component>, whose Python work runs in SDK worker processes the
TaskManagers start. Then it prints each step's Flink job (id, state, TaskManagers), checks that
the vocabulary file and the checkpoint's files are byte for byte the local runner's and that the
model was blessed and pushed, and stops everything it started.

The jars are built once beforehand (`python -m tfx_embeddings.pipeline.flink build`) or by the
first run (about 5 minutes).
"""

import argparse
import os
import sys
import time

from ..console import RunConsole
from ..flink.cluster import FlinkCluster, FlinkError, cluster_ports, ensure_jars
from .config import PipelineConfig, load_config
from .runners import compare_outputs, run_in

LOCAL_BEAM_ARGS = PipelineConfig.model_fields["beam_pipeline_args"].default


def flink_jobs(cluster, prefix):
    """The cluster's jobs whose name starts with prefix, oldest first: dicts with the rest of
    the name (the component), jid, state, seconds and {TaskManager id: subtasks it ran}."""
    return [{"component": job["name"][len(prefix):], "jid": job["jid"], "state": job["state"],
             "seconds": job["duration"] / 1000,
             "task_managers": cluster.job_task_managers(job["jid"])}
            for job in cluster.jobs() if job["name"].startswith(prefix)]


def run_demo(config, work_dir, task_managers=2, console_line=print, hold=False):
    """The local run, then the Flink run on a cluster started and stopped here.

    Args:
      config: a PipelineConfig whose beam_pipeline_args run on a Flink cluster on this machine
        (configs/flink.yaml).
      work_dir: for both runs (local/, flink/) and the cluster (cluster/, its logs in log/).
      task_managers: how many TaskManagers the cluster has.
      console_line: prints a progress line.
      hold: keep the cluster up after the run until Ctrl-C, to browse its web UI.

    Returns:
      (the pipeline's Beam components; the Flink jobs, as flink_jobs gives them; {file:
      identical to the local run's}; the Flink run's report.summarize dict; the cluster's log
      directory).

    Raises:
      FlinkError: the cluster could not be built or started.
    """
    from . import report

    rest_port, job_port = cluster_ports(config.beam_pipeline_args)
    jars = ensure_jars(report=console_line)
    console_line("Run 1 of 2: the local runner, the reference")
    run_in(config, os.path.join(work_dir, "local"), LOCAL_BEAM_ARGS)
    console_line("Run 2 of 2: the config's beam_pipeline_args, every Beam step a Flink job")
    with FlinkCluster(os.path.join(work_dir, "cluster"), task_managers=task_managers,
                            rest_port=rest_port, job_port=job_port, jars=jars,
                            report=console_line) as cluster:
        console_line(f"Flink web UI: {cluster.web_url} (while the demo runs)")
        prefix = f"{config.pipeline_name}-{time.strftime('%Y%m%d-%H%M%S')}-"
        beam_steps = []

        def job_name(component_id):  # Names the component's Flink job.
            beam_steps.append(component_id)
            return [f"--job_name={prefix}{component_id}"]

        run_config = run_in(config, os.path.join(work_dir, "flink"), config.beam_pipeline_args,
                            component_beam_args=job_name)
        jobs = flink_jobs(cluster, prefix)
        if hold:
            console_line(f"The cluster stays up for its web UI, {cluster.web_url}; Ctrl-C "
                         f"stops it")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        console_line("Stopping the cluster")
    console_line("The cluster's processes are gone")
    identical = compare_outputs(os.path.join(work_dir, "local"), os.path.join(work_dir, "flink"))
    return beam_steps, jobs, identical, report.summarize(run_config), cluster.log_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/flink.yaml")
    parser.add_argument("--work_dir", default="build/flink")
    parser.add_argument("--task_managers", type=int, default=2)
    parser.add_argument("--hold", action="store_true",
                        help="keep the cluster up after the run, until Ctrl-C")
    args = parser.parse_args()
    work_dir = os.path.abspath(args.work_dir)
    log_path = os.path.join(work_dir, "flink_demo.log")
    try:
        with RunConsole(log_path) as console:
            console.print(f"The pipeline on the local runner, then on a Flink cluster started "
                          f"here; the full log: {log_path}")
            beam_steps, jobs, identical, summary, logs = run_demo(
                load_config(args.config), work_dir, args.task_managers, console.line, args.hold)
    except FlinkError as e:
        sys.exit(f"error: {e}")
    print(f"\n{'Beam step':22s} {'Flink job id':34s} {'state':9s} {'seconds':>7s}  "
          f"subtasks per TaskManager")
    for job in jobs:
        spread = ", ".join(f"{tm} {n}" for tm, n in job["task_managers"].items())
        print(f"{job['component']:22s} {job['jid']:34s} {job['state']:9s} "
              f"{job['seconds']:7.1f}  {spread}")
    print()
    for path, same in identical.items():
        print(f"{'identical' if same else 'DIFFERENT'}  {path}")
    print(f"model:     {'blessed' if summary.get('blessed') else 'NOT blessed'}, "
          f"{'pushed to ' + summary['pushed_model'] if summary.get('pushed') else 'not pushed'}")
    print(f"cluster logs: {logs}")
    problems = []
    finished = {job["component"] for job in jobs if job["state"] == "FINISHED"}
    if finished != set(beam_steps) or len(jobs) != len(finished):
        problems.append(f"expected one FINISHED Flink job for each of {beam_steps}, found "
                        f"{[(job['component'], job['state']) for job in jobs]}")
    if not identical or not all(identical.values()):
        problems.append("the Flink run's files differ from the local run's")
    if not (summary.get("blessed") and summary.get("pushed")):
        problems.append("the model was not blessed and pushed")
    if problems:
        sys.exit("error: " + "; ".join(problems))
    print("Flink ran every Beam step; the same bytes as the local runner.")


if __name__ == "__main__":
    main()

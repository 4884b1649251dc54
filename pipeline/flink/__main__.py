"""`tfx-embeddings flink` (or `python -m tfx_embeddings.pipeline.flink`): a Flink cluster on this
machine for any pipeline's Beam steps.

    tfx-embeddings flink build                      # the jars, once (Maven Central)
    tfx-embeddings flink start --run-dir DIR        # starts it, prints the Beam options
    tfx-embeddings flink args --run-dir DIR         # the Beam options again (--json: a list)
    tfx-embeddings flink stop --run-dir DIR         # stops every process it started
    tfx-embeddings flink serve --config configs/flink.yaml   # holds one until Ctrl-C
"""

import argparse
import contextlib
import json
import sys
import time

import yaml

from .cluster import FlinkCluster, FlinkError, cluster_ports, ensure_jars

DEFAULT_RUN_DIR = "build/flink/cluster"


def _beam_pipeline_args(config_path):
    """The `beam_pipeline_args` list of a YAML config (the pipeline's: they name the ports)."""
    with open(config_path) as f:
        return (yaml.safe_load(f) or {}).get("beam_pipeline_args") or []


def configure(parser):
    """Adds the flink verbs to an argparse parser (this module's, or the CLI's `flink`)."""
    commands = parser.add_subparsers(dest="flink_command", required=True)
    commands.add_parser("build", help="fetch and build the jars (once; cached)")
    start = commands.add_parser(
        "start", help="start a cluster that runs until `stop`, and print the Beam pipeline "
                      "options that send a pipeline's Beam steps to it")
    start.add_argument("--run-dir", default=DEFAULT_RUN_DIR,
                       help="the cluster's configuration, logs and state (cluster.json)")
    start.add_argument("--task-managers", type=int, default=2)
    start.add_argument("--slots", type=int, default=2, help="task slots per TaskManager")
    start.add_argument("--rest-port", type=int, default=8081,
                       help="Flink's REST API and web UI (--flink_master)")
    start.add_argument("--job-port", type=int, default=8099,
                       help="Beam's Flink job server (--job_endpoint)")
    start.add_argument("--taskmanager-memory", default="2048m",
                       help="each TaskManager's process size")
    for name, text in (("args", "print the Beam pipeline options of a started cluster"),
                       ("stop", "stop a started cluster and every process it started")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--run-dir", default=DEFAULT_RUN_DIR)
        if name == "args":
            command.add_argument("--json", action="store_true", help="as a JSON list")
    serve = commands.add_parser(
        "serve", help="start a cluster on the ports a config's beam_pipeline_args name, hold it "
                      "until Ctrl-C (run the pipeline with that config in another terminal)")
    serve.add_argument("--config", default="configs/flink.yaml")
    serve.add_argument("--task-managers", type=int, default=2)
    serve.add_argument("--run-dir", default=DEFAULT_RUN_DIR)
    parser.set_defaults(handler=run)


def run(args):
    """Runs the verb args.flink_command; raises FlinkError with what went wrong."""
    command = args.flink_command
    if command == "build":
        jars = ensure_jars()
        print(f"Flink runtime: {jars.lib_dir}\nBeam's Flink job server: {jars.job_server}")
    elif command == "start":
        cluster = FlinkCluster(args.run_dir, task_managers=args.task_managers,
                               slots_per_task_manager=args.slots, rest_port=args.rest_port,
                               job_port=args.job_port,
                               taskmanager_memory=args.taskmanager_memory).start(detached=True)
        options = "\n".join(f"  {option}" for option in cluster.beam_pipeline_args())
        print(f"Flink cluster running: web UI {cluster.web_url}, logs {cluster.log_dir}.\n"
              f"Give your pipeline these Beam pipeline options (beam_pipeline_args):\n{options}\n"
              f"Stop it with: tfx-embeddings flink stop --run-dir {args.run_dir}")
    elif command == "args":
        options = FlinkCluster.attach(args.run_dir).beam_pipeline_args()
        print(json.dumps(options) if args.json else "\n".join(options))
    elif command == "stop":
        FlinkCluster.attach(args.run_dir).stop()
        print(f"Stopped the Flink cluster of {args.run_dir}.")
    elif command == "serve":
        rest_port, job_port = cluster_ports(_beam_pipeline_args(args.config))
        with FlinkCluster(args.run_dir, task_managers=args.task_managers, rest_port=rest_port,
                          job_port=job_port) as cluster:
            print(f"Web UI {cluster.web_url}; logs {cluster.log_dir}. Run the pipeline with "
                  f"`tfx-embeddings run --config {args.config}`; Ctrl-C stops the cluster.",
                  flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        print("Stopped.")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tfx_embeddings.pipeline.flink",
        description="A Flink cluster on this machine, for a pipeline's Beam steps.")
    configure(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except FlinkError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()

"""`python -m tfx_embeddings.pipeline.flink`: build the jars, or hold a cluster until Ctrl-C.

    python -m tfx_embeddings.pipeline.flink build                     # the jars, once
    python -m tfx_embeddings.pipeline.flink serve --config configs/flink.yaml   # until Ctrl-C
"""

import argparse
import contextlib
import sys
import time

import yaml

from .cluster import FlinkCluster, FlinkError, cluster_ports, ensure_jars


def _beam_pipeline_args(config_path):
    """The `beam_pipeline_args` list of a YAML config (the pipeline's: they name the ports)."""
    with open(config_path) as f:
        return (yaml.safe_load(f) or {}).get("beam_pipeline_args") or []


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Apache Flink on this machine, for the pipeline's Beam steps.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="fetch and build the jars (once; cached)")
    serve = commands.add_parser(
        "serve", help="start the cluster, hold it until Ctrl-C (then run the pipeline with the "
                      "same config in another terminal)")
    serve.add_argument("--config", default="configs/flink.yaml",
                       help="its beam_pipeline_args name the ports")
    serve.add_argument("--task_managers", type=int, default=2)
    serve.add_argument("--run_dir", default="build/flink/cluster")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            jars = ensure_jars()
            print(f"Flink runtime: {jars.lib_dir}\nBeam's Flink job server: {jars.job_server}")
            return
        rest_port, job_port = cluster_ports(_beam_pipeline_args(args.config))
        with FlinkCluster(args.run_dir, task_managers=args.task_managers, rest_port=rest_port,
                          job_port=job_port) as cluster:
            print(f"Web UI {cluster.web_url}; logs {cluster.log_dir}. Run the pipeline with "
                  f"`python -m tfx_embeddings.pipeline run --config {args.config}`; Ctrl-C stops "
                  f"the cluster.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        print("Stopped.")
    except FlinkError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()

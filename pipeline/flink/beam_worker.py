"""The command a Flink (or Spark) task manager runs to start a Python SDK worker: Beam's PROCESS
environment without Docker.

    --environment_type=PROCESS --environment_config='{"command": "tfx-embeddings-beam-worker"}'

`tfx-embeddings-beam-worker` is this module's console script, installed with the project (in
the venv's bin/; the task managers find it on their PATH). It does what the Go `boot` program of
Beam's SDK container does first: the runner starts it with `--id=ID --provision_endpoint=HOST:PORT`;
it asks that provision service for the pipeline's options and for the control and logging
endpoints, then runs Beam's `apache_beam.runners.worker.sdk_worker_main` given those in its
environment, in the same process (no second interpreter to start, nothing imported twice).

What it does not do, unlike `boot`: fetch and install staged artifacts (`--extra_package`,
`--setup_file`, `--requirements_file`, a `--save_main_session` pickle). The worker runs the code
installed beside this command, so every task manager host needs this project and its pinned
stack installed (as the container image has them).

Why not an external worker pool (`--environment_type=EXTERNAL` with Beam's `worker_pool_main`):
each Flink task manager numbers its workers 1-1, 1-2, ... on its own, the pool keys its
processes by that id, and with two task managers on one pool one's StopWorker kills the other's
worker; that job then waits forever. Here each task manager starts its own worker processes.
"""

import argparse
import logging
import os
import runpy
import sys
import tempfile


def worker_environment(worker_id, provision_endpoint, semi_persistent_directory=None):
    """The environment variables sdk_worker_main reads, from the runner's provision service.

    Args:
      worker_id: the id the runner gave this worker (--id).
      provision_endpoint: host:port of the runner's provision service.
      semi_persistent_directory: where staged files would be looked for; a directory under the
        system's temporary directory by default (nothing is written there).

    Returns:
      A dict of environment variables: WORKER_ID, PIPELINE_OPTIONS, the control, logging (and
      status, when the runner has one) endpoints, RUNNER_CAPABILITIES, SEMI_PERSISTENT_DIRECTORY.

    Raises:
      grpc.RpcError: the provision service did not answer within 60 seconds.
    """
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
    from google.protobuf import json_format, text_format

    with grpc.insecure_channel(provision_endpoint) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(),
            metadata=[("worker_id", worker_id)], timeout=60).info
    if semi_persistent_directory is None:
        # sdk_worker_main only reads a --save_main_session pickle from it, which is not staged
        # here: one shared directory, so that no worker leaves one behind.
        semi_persistent_directory = os.path.join(tempfile.gettempdir(), "tfx-embeddings-beam-sdk")
        os.makedirs(semi_persistent_directory, exist_ok=True)
    environment = {
        "WORKER_ID": worker_id,
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "SEMI_PERSISTENT_DIRECTORY": semi_persistent_directory,
        "CONTROL_API_SERVICE_DESCRIPTOR": text_format.MessageToString(info.control_endpoint),
        "LOGGING_API_SERVICE_DESCRIPTOR": text_format.MessageToString(info.logging_endpoint),
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
    }
    if info.HasField("status_endpoint"):
        environment["STATUS_API_SERVICE_DESCRIPTOR"] = text_format.MessageToString(
            info.status_endpoint)
    return environment


def main(argv=None):
    """Entry point of `tfx-embeddings-beam-worker`: runs the SDK worker until the runner stops
    it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--id", required=True, help="the worker id the runner gives")
    parser.add_argument("--provision_endpoint", required=True, help="host:port")
    parser.add_argument("--semi_persistent_directory", default=None)
    # The runner may pass more (--logging_endpoint, --control_endpoint...): the provision
    # service's answer has them all.
    args, _ = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.update(worker_environment(args.id, args.provision_endpoint,
                                         args.semi_persistent_directory))
    logging.info("Beam SDK worker %s: %s, apache_beam.runners.worker.sdk_worker_main", args.id,
                 sys.executable)
    root = logging.getLogger()
    for handler in list(root.handlers):  # sdk_worker_main sends the logs to the runner.
        root.removeHandler(handler)
    sys.argv = [sys.argv[0]]
    runpy.run_module("apache_beam.runners.worker.sdk_worker_main", run_name="__main__",
                     alter_sys=True)


if __name__ == "__main__":
    main()

"""The ways to run the pipeline: locally (LocalDagRunner) or compiled for Kubeflow Pipelines
(open source, or Vertex AI Pipelines).

Where Beam work runs is the config's `beam_pipeline_args` (DirectRunner by default; see
configs/dataflow.yaml, flink.yaml, spark.yaml), whichever orchestrator runs the pipeline.
"""

import contextlib
import fcntl
import os
import tempfile
import time

import yaml
from tfx import v1 as tfx

from tfx_embeddings.components import progress
from tfx_embeddings.pipeline.config import ConfigError
from tfx_embeddings.pipeline.pipeline import (LATEST_MODEL_ID, METADATA_QUERY, create_pipeline,
                                              pipeline_inputs)

@contextlib.contextmanager
def metadata_lock(metadata_path):
    """Holds an exclusive lock beside the local metadata store while a run uses it.

    Two runs started at once on one pipeline would race on its SQLite store and on the cache;
    with the lock the second waits, then runs and takes what it can from the cache.
    """
    os.makedirs(os.path.dirname(metadata_path), exist_ok=True)
    with open(metadata_path + ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.report("another run holds %s; waiting for it to finish", lock.name)
            started = time.monotonic()
            fcntl.flock(lock, fcntl.LOCK_EX)
            progress.report("got %s after %.0fs", lock.name, time.monotonic() - started)
        yield


def run_local(config):
    """Runs the pipeline with LocalDagRunner and the config's SQLite metadata store."""
    pipeline = create_pipeline(config)
    with metadata_lock(config.metadata_path):
        tfx.orchestration.LocalDagRunner().run(pipeline)


KUBEFLOW = "kubeflow"  # Open-source Kubeflow Pipelines 2.x: a bare PipelineSpec, schema 2.1.0.
VERTEX = "vertex"  # Vertex AI Pipelines: TFX's PipelineJob (schema 2.0.0), with resolvers.
TARGETS = (KUBEFLOW, VERTEX)


def compile_kubeflow(config, image, output_file, target=KUBEFLOW):
    """Writes the pipeline's spec for Kubeflow Pipelines to output_file.

    The components run in image (the Dockerfile: this project installed from its wheel); the
    orchestrator keeps the metadata, so the config's SQLite store is not used. The examples, the
    vector file and the push destination are pipeline inputs, the config's values their
    defaults; those and the pipeline root must be reachable from the cluster (gs://, s3://...).
    Nothing in the spec is a path of this machine: the schema and the code ship in the image.

    Args:
      config: a validated PipelineConfig.
      image: the container image every step runs.
      output_file: where to write the spec.
      target: KUBEFLOW (open-source Kubeflow Pipelines 2.x: a bare PipelineSpec of schema 2.1.0
        as YAML, container executors only, the latest blessed model found by the
        LatestBlessedModel step, ExampleGen's input files fingerprinted by a step of their own)
        or VERTEX (Vertex AI Pipelines: TFX's PipelineJob JSON, with TFX's resolvers).

    Returns:
      output_file.

    Raises:
      ConfigError: a path of this machine in the config, or an unknown target.
      kubeflow_spec.SpecError: (KUBEFLOW) the spec breaks a rule of the open-source backend.
    """
    _check_cluster_paths(config)
    if target == VERTEX:
        _run_kubeflow_v2_runner(create_pipeline(config, metadata_connection_config=None,
                                                runtime_parameters=True),
                                config, image, output_file, spec_2_1=False)
        return output_file
    if target != KUBEFLOW:
        raise ConfigError(f"target: {target!r} is not one of {', '.join(TARGETS)}")
    from tfx_embeddings.pipeline import kubeflow_oss

    pipeline = create_pipeline(config, metadata_connection_config=None, runtime_parameters=True,
                               latest_model=METADATA_QUERY)
    with tempfile.TemporaryDirectory(prefix="tfx-kfp-") as work:
        compiled_path = _run_kubeflow_v2_runner(pipeline, config, image,
                                                os.path.join(work, "tfx_spec.yaml"),
                                                spec_2_1=True)
        with open(compiled_path) as f:
            compiled = yaml.safe_load(f)
    spec = kubeflow_oss.open_source_spec(compiled, pipeline_inputs(config),
                                         uncached_tasks=[LATEST_MODEL_ID])
    kubeflow_oss.write_spec(spec, output_file)
    return output_file


def _check_cluster_paths(config):
    for key, path in (("pipeline_root", config.pipeline_root), ("serving_dir", config.serving_dir),
                      ("data.examples", config.data.examples),
                      ("data.vectors", config.data.vectors)):
        if "://" not in path:
            raise ConfigError(f"{key}: {path} is a path of this machine, which Kubeflow's steps "
                              f"cannot read; give a URI the cluster reaches (gs://, s3://...)")
    if os.path.basename(config.data.schema_file) != config.data.schema_file and (
            "://" not in config.data.schema_file):
        raise ConfigError(f"data.schema_file: {config.data.schema_file} is a path of this "
                          f"machine; name a schema shipped in the image or give a URI")


def _run_kubeflow_v2_runner(pipeline, config, image, output_file, spec_2_1):
    """TFX's KubeflowV2DagRunner: with spec_2_1 and a .yaml file, a bare PipelineSpec of schema
    2.1.0; otherwise Vertex's PipelineJob JSON. Every step's command is the project's
    entrypoint (kubeflow_entrypoint)."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from tfx_embeddings.pipeline import kubeflow_entrypoint

    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=image, default_commands=kubeflow_entrypoint.COMMAND,
            use_pipeline_spec_2_1=spec_2_1),
        output_dir=os.path.dirname(os.path.abspath(output_file)),
        output_filename=os.path.basename(output_file))
    runner.run(pipeline, parameter_values=pipeline_inputs(config))
    return output_file

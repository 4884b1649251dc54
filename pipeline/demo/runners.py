"""The demo pipeline's runs: locally (LocalDagRunner) or compiled for Kubeflow Pipelines (open
source, or Vertex AI Pipelines), from its config.

Where Beam work runs is the config's `beam_pipeline_args` (DirectRunner by default; see
configs/dataflow.yaml, flink.yaml, spark.yaml), whichever orchestrator runs the pipeline.
"""

import os

from .. import local
from ..kubeflow.compiler import KUBEFLOW, TARGETS, compile_for_kubeflow
from .config import ConfigError
from .pipeline import create_pipeline, pipeline_inputs


def run_local(config):
    """Runs the pipeline with LocalDagRunner and the config's SQLite metadata store."""
    local.run(create_pipeline(config))


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
        target: KUBEFLOW (open-source Kubeflow Pipelines 2.x) or VERTEX (Vertex AI Pipelines):
        see compile_for_kubeflow, which this calls with the demo's pipeline.

    Returns:
      output_file.

    Raises:
      ConfigError: a path of this machine in the config, or an unknown target.
      kubeflow.rewrite.PipelineError, kubeflow.backend.SpecError: see compile_for_kubeflow.
    """
    _check_cluster_paths(config)
    _check_code_ships(config)
    if target not in TARGETS:
        raise ConfigError(f"target: {target!r} is not one of {', '.join(TARGETS)}")
    pipeline = create_pipeline(config, metadata_connection_config=None, runtime_parameters=True)
    return compile_for_kubeflow(pipeline, image, output_file, target=target,
                                parameter_values=pipeline_inputs(config),
                                resources=(kubeflow_resources(config) or None)
                                if target == KUBEFLOW else None)


def kubeflow_resources(config):
    """The config's kubeflow.resources as compile_for_kubeflow takes them."""
    return {step: {key: str(value) for key, value in values.model_dump().items()
                   if value is not None}
            for step, values in config.kubeflow.resources.items()}


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


# Beam options that put this project's code on remote workers (Beam's SetupOptions, and the
# worker image).
_SHIPS_CODE = ("--setup_file", "--extra_package", "--extra_packages", "--requirements_file",
               "--sdk_container_image", "--worker_harness_container_image")


def _check_code_ships(config):
    """A remote runner's workers need this project's code (EmbeddingGen's and VocabularyGen's
    Beam functions): in the steps' image there is no source tree for --setup_file to build."""
    args = config.beam_pipeline_args
    if not any(arg.startswith("--runner=Dataflow") for arg in args):
        return
    given = [arg for arg in args if arg.split("=", 1)[0] in _SHIPS_CODE]
    if not given:
        raise ConfigError("beam_pipeline_args: DataflowRunner without --sdk_container_image (or "
                          "--extra_package): Dataflow's workers would lack this project's code; "
                          "give --sdk_container_image=<the image compile --image names> (the "
                          "Dockerfile builds it on Beam's SDK image)")
    if any(arg.startswith("--setup_file") for arg in given):
        raise ConfigError("beam_pipeline_args: --setup_file needs the source tree, which the "
                          "steps' image does not have (it installs the wheel); give "
                          "--sdk_container_image=<the image compile --image names>")

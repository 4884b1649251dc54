"""The demo pipeline's runs: locally (LocalDagRunner) or compiled for Kubeflow Pipelines (open
source, or Vertex AI Pipelines), from its config; and, for the scripts that compare runners
(portable.py, flink.py), a run under a root of its own (`run_in`) and the bytes two runs must
share (`compare_outputs`).

Where Beam work runs is the config's `beam_pipeline_args` (DirectRunner by default; see
configs/dataflow.yaml, flink.yaml), whichever orchestrator runs the pipeline.
"""

import filecmp
import glob
import os
import shutil

from .. import local, retention
from ..kubeflow.compiler import KUBEFLOW, TARGETS, compile_for_kubeflow
from .config import ConfigError
from .pipeline import create_pipeline, pipeline_inputs

# What two runners must write byte for byte: globs under a pipeline root.
COMPARED = ("VocabularyGen/vocabulary/*/vocabulary.txt",
            "EmbeddingGen/embedding/*/checkpoint/embeddings.*",
            "EmbeddingGen/embedding/*/vocabulary.txt")


def run_local(config):
    """Runs the pipeline with LocalDagRunner and the config's SQLite metadata store, then
    retires what the config's retention policy does not keep; returns local.LocalRun."""
    return local.run(create_pipeline(config), retention=retention_policy(config))


def retention_policy(config):
    """The config's retention.RetentionPolicy, or None (nothing retired)."""
    if config.retention.keep_runs is None:
        return None
    return retention.RetentionPolicy(keep_runs=config.retention.keep_runs)


def retire(config, keep_runs=None):
    """Applies the config's retention policy (or keep_runs) now, between runs, under the
    metadata lock; returns the retention.Report."""
    keep_runs = keep_runs or config.retention.keep_runs
    if keep_runs is None:
        raise ConfigError("retention.keep_runs: not set; say how many runs to keep")
    pipeline = create_pipeline(config)
    with local.metadata_lock(config.metadata_path):
        return retention.apply(pipeline, retention.RetentionPolicy(keep_runs=keep_runs))


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


def run_in(config, root, beam_pipeline_args, component_beam_args=None):
    """Runs the pipeline with LocalDagRunner, its pipeline root, metadata store and serving
    directory under root (emptied first), Beam options beam_pipeline_args, and no random baseline
    trainer.

    Args:
      config: a PipelineConfig.
      root: the run's directory.
      beam_pipeline_args: every Beam step's options.
      component_beam_args: a function of a Beam component's id giving options added to that
        component's (e.g. its --job_name), or None.

    Returns:
      The PipelineConfig the run used.
    """
    from tfx.dsl.components.base import base_beam_component

    shutil.rmtree(root, ignore_errors=True)
    run_config = config.model_copy(update={
        "pipeline_root": root, "metadata_path": os.path.join(root, "metadata.sqlite"),
        "serving_dir": os.path.join(root, "serving"), "beam_pipeline_args": beam_pipeline_args,
        "trainer": config.trainer.model_copy(update={"train_random_baseline": False})})
    pipeline = create_pipeline(run_config)
    for component in pipeline.components:
        if component_beam_args and isinstance(component, base_beam_component.BaseBeamComponent):
            component.with_beam_pipeline_args(component_beam_args(component.id))
    local.run(pipeline)
    return run_config


def compare_outputs(reference_root, other_root):
    """{path relative to the roots: whether other_root's file has reference_root's bytes} for
    the vocabulary file and the checkpoint's files (COMPARED)."""
    identical = {}
    for pattern in COMPARED:
        for path in sorted(glob.glob(os.path.join(reference_root, pattern))):
            relative = os.path.relpath(path, reference_root)
            other = os.path.join(other_root, relative)
            identical[relative] = os.path.exists(other) and filecmp.cmp(path, other,
                                                                         shallow=False)
    return identical

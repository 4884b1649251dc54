"""A TFX pipeline compiled for Kubeflow Pipelines: open source (2.x) or Vertex AI Pipelines.

    tfx_embeddings.compile_for_kubeflow(pipeline, image="registry/my-image:1",
                                        output_file="pipeline.yaml")

Every step runs the project's entrypoint (`entrypoint.COMMAND`, TFX's own taught what the
open-source backend hands it). For open-source Kubeflow, what the backend cannot run is replaced
or refused in a copy of the pipeline (`rewrite`), and TFX's spec of schema 2.1.0 is made one that
backend runs as intended (`open_source`).
"""

import os
import tempfile

import yaml

from . import artifact_store, entrypoint, open_source, rewrite
from . import resources as step_resources

KUBEFLOW = "kubeflow"  # Open-source Kubeflow Pipelines 2.x: a bare PipelineSpec, schema 2.1.0.
VERTEX = "vertex"  # Vertex AI Pipelines: TFX's PipelineJob (schema 2.0.0), with resolvers.
TARGETS = (KUBEFLOW, VERTEX)


def compile_for_kubeflow(pipeline, image, output_file, *, target=KUBEFLOW, parameter_values=None,
                        resources=None, minio_secret=artifact_store.MINIO_SECRET):
    """Writes a TFX pipeline's spec for Kubeflow Pipelines to output_file.

    For open-source Kubeflow Pipelines (2.x), in a copy of the pipeline (yours is not changed):
    every Resolver with LatestBlessedModelStrategy becomes the LatestBlessedModel step (same id),
    which finds the latest blessed model in Kubeflow's ML Metadata, wired to the same consumers
    (TFX's Trainer and Evaluator executors swapped for ones that take its not-found model on a
    first run as no model); every file-based ExampleGen gets a step that fingerprints its input
    files (its cache key then changes when they do); those steps are never cached. What the
    backend never runs (other resolvers, drivers, span patterns...) is refused, naming the node.

    Args:
      pipeline: your tfx.dsl.Pipeline (its metadata connection is the orchestrator's: None). Its
        pipeline_root must be reachable when compiling and from the pods: TFX copies module
        files there (as wheels) at compile time.
      image: the container image every step runs (this project and your code installed).
      output_file: where to write the spec (.yaml for KUBEFLOW, .json for VERTEX).
      target: KUBEFLOW (open-source Kubeflow Pipelines 2.x: a bare PipelineSpec of schema 2.1.0
        as YAML, container executors only) or VERTEX (Vertex AI Pipelines: TFX's PipelineJob
        JSON, with TFX's resolvers and drivers, your pipeline as it is).
      parameter_values: {name: value} of the pipeline's RuntimeParameters: the run's defaults.
      resources: (KUBEFLOW) {step id, or "*" for every step: {"cpu_request", "cpu_limit",
        "memory_request", "memory_limit": a Kubernetes quantity ("500m", "2", "8Gi")}}: each
        step's pod gets them (none by default: the backend gives a step none unless its spec
        says). A step's own entry wins over "*"; the fingerprint step is
        "<ExampleGen id>-input-fingerprint".
      minio_secret: (KUBEFLOW) the secret with the install's MinIO credentials (keys accesskey,
        secretkey), given to every step so that a run under a `minio://` pipeline root (a stock
        install's default) works: the steps reach MinIO as S3, with the launcher's endpoint.
        The stock install has `mlpipeline-minio-artifact` in every pipeline namespace; None
        where the install has no MinIO (a pod whose secret is missing does not start).

    Returns:
      output_file.

    Raises:
      ValueError: an unknown target, or resources for VERTEX (set them there with a
        component's with_platform_config).
      resources.ResourceError: a step the pipeline lacks, or a value Kubernetes or the backend
        would refuse.
      rewrite.PipelineError: (KUBEFLOW) a node the open-source backend cannot run, named with
        what to do.
      backend.SpecError: (KUBEFLOW) the spec breaks a rule of the open-source backend.

    Example:
      pipeline = tfx.dsl.Pipeline(pipeline_name="reviews", pipeline_root="gs://bucket/root",
                                  components=[...])   # With its Resolver and Evaluator.
      tfx_embeddings.compile_for_kubeflow(pipeline, "registry/reviews:1", "pipeline.yaml")
    """
    if target not in TARGETS:
        raise ValueError(f"target: {target!r} is not one of {', '.join(TARGETS)}")
    parameter_values = dict(parameter_values or {})
    if target == VERTEX and resources:
        raise ValueError("resources: for target='vertex', set them with each component's "
                         "with_platform_config (TFX's ResourceSpec)")
    if target == VERTEX:
        return _run_kubeflow_v2_runner(pipeline, image, output_file, parameter_values,
                                       spec_2_1=False)
    pipeline, uncached = rewrite.for_open_source(pipeline)
    with tempfile.TemporaryDirectory(prefix="tfx-kfp-") as work:
        compiled_path = _run_kubeflow_v2_runner(pipeline, image,
                                                os.path.join(work, "tfx_spec.yaml"),
                                                parameter_values, spec_2_1=True)
        with open(compiled_path) as f:
            compiled = yaml.safe_load(f)
    spec = open_source.open_source_spec(compiled, parameter_values, uncached_tasks=uncached)
    step_resources.apply(spec, resources or {})
    platform = None
    if minio_secret:
        containers = {label: executor["container"] for label, executor
                      in spec["deploymentSpec"]["executors"].items() if "container" in executor}
        for container in containers.values():
            container.setdefault("env", []).append(
                {"name": artifact_store.SECRET_VARIABLE, "value": minio_secret})
        platform = artifact_store.platform_spec(containers, minio_secret)
    open_source.write_spec(spec, output_file, platform)
    return output_file


def _run_kubeflow_v2_runner(pipeline, image, output_file, parameter_values, spec_2_1):
    """TFX's KubeflowV2DagRunner: with spec_2_1 and a .yaml file, a bare PipelineSpec of schema
    2.1.0; otherwise Vertex's PipelineJob JSON."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=image, default_commands=entrypoint.COMMAND,
            use_pipeline_spec_2_1=spec_2_1),
        output_dir=os.path.dirname(os.path.abspath(output_file)),
        output_filename=os.path.basename(output_file))
    runner.run(pipeline, parameter_values=parameter_values)
    return output_file

"""Running pipelines that use the components, and the project's demo pipeline.

- `local.py`: a TFX pipeline run here (LocalDagRunner, SQLite metadata, one run at a time,
  nothing left behind, old artifacts retired); `retention.py` (what a schedule keeps, and
  healing after a killed run), `packages.py` (the project's wheel for Beam workers).
- `kubeflow/`: a TFX pipeline compiled for Kubeflow Pipelines, open source or Vertex
  (`compile_for_kubeflow`), its steps' entrypoint, and `run-spec` (a spec run here as the
  open-source backend runs it).
- `flink/`: an Apache Flink cluster on this machine for the pipeline's Beam steps.
- `cli.py` (`python -m tfx_embeddings.pipeline`, `tfx-embeddings`) and `console.py` (a run's
  terminal and its full log).
- `demo/`: the demo pipeline, its config and the scripts behind the make targets.

The modules at this level named after old paths (`kubeflow_entrypoint`, `data_fingerprint`,
`text`, `preprocessing`, `model`, `schema`) only forward to their new place, so that specs
compiled by tfx-embeddings 0.2, which name them, run on images of this version.
"""

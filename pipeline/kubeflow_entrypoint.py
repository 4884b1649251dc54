"""Forwards to `kubeflow/entrypoint.py`: every step of a spec compiled by tfx-embeddings 0.2
runs `python -m tfx_embeddings.pipeline.kubeflow_entrypoint`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("tfx_embeddings.pipeline.kubeflow.entrypoint", run_name="__main__",
                     alter_sys=True)

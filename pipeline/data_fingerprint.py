"""Forwards to `kubeflow/data_fingerprint.py`: specs compiled by tfx-embeddings 0.2 run
`python -m tfx_embeddings.pipeline.data_fingerprint`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("tfx_embeddings.pipeline.kubeflow.data_fingerprint", run_name="__main__",
                     alter_sys=True)

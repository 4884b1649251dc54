"""Forwards to `demo/model.py`: specs compiled by tfx-embeddings 0.2 name
`tfx_embeddings.pipeline.model.run_fn`."""

from .demo.model import run_fn  # noqa: F401

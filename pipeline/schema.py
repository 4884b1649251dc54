"""Forwards to `demo/schema.py`: specs compiled by tfx-embeddings 0.2 name
`tfx_embeddings.pipeline.schema.Executor`."""

from .demo.schema import Executor  # noqa: F401

"""Forwards to `demo/text.py`: specs compiled by tfx-embeddings 0.2 name
`tfx_embeddings.pipeline.text.tokenize`."""

from .demo.text import tokenize  # noqa: F401

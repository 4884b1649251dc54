"""Forwards to `demo/preprocessing.py`: specs compiled by tfx-embeddings 0.2 name
`tfx_embeddings.pipeline.preprocessing.preprocessing_fn`."""

from .demo.preprocessing import preprocessing_fn  # noqa: F401

"""Where the project keeps what it builds once and reuses (the Flink jars, its wheel for Beam
workers): outside the checkout and the pipeline root, shared by every run of the machine."""

import os


def cache_dir(kind):
    """$TFX_EMBEDDINGS_CACHE/<kind>, else $XDG_CACHE_HOME/tfx-embeddings/<kind>, else
    ~/.cache/tfx-embeddings/<kind>."""
    root = os.environ.get("TFX_EMBEDDINGS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tfx-embeddings")
    return os.path.join(root, kind)

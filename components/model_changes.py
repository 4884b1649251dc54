"""What the project changes in the user's model, stated where the user looks.

EmbeddingGen and `pretrained_embedding` decide things the user's own model did not say: the row
layout the token ids fit, the rows unknown tokens and padding take (extra rows included),
mask_zero, the embedding's width. Each decision is stated once per run, as a WARNING record of
the logger `tfx_embeddings.model_changes`: a user's own LocalDagRunner shows WARNING and above
(absl's default level), not the library's INFO lines. The project's CLI gathers them into its run
summary (pipeline/console.py). To silence them:

    logging.getLogger("tfx_embeddings.model_changes").setLevel(logging.ERROR)
"""

import logging

LOGGER = logging.getLogger("tfx_embeddings.model_changes")


def state(who, message, *args):
    """Logs one statement (printf-style args) of who: "EmbeddingGen", "pretrained_embedding".
    The record carries `statement`: the message without who."""
    LOGGER.warning(f"{who}: {message}", *args, extra={"statement": message % args})

"""Progress lines: the log records a run's terminal shows a person (tfx_embeddings.pipeline.console
picks them out), wherever they are logged, a Beam worker's process included.

Elsewhere they are ordinary INFO records of the logger `tfx_embeddings.progress`.
"""

import logging

LOGGER = logging.getLogger("tfx_embeddings.progress")
# Marks a progress line in the text of a record a Beam worker forwarded to its runner.
PREFIX = "progress: "


def report(message, *args):
    """Logs a progress line (printf-style args), e.g. report("%d rows read", rows)."""
    LOGGER.info(PREFIX + message, *args)

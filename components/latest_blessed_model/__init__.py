"""LatestBlessedModel: the latest model the Evaluator blessed, found by a container step that the
open-source Kubeflow Pipelines backend runs (it has no resolver executors).

`component.py` is the TFX component, `executor.py` its executor (the ML Metadata query, of this
run's own pipeline: `kubeflow_run.py`), `previous_model.py` its output and how consumers read
it (`found`, `present`), `evaluator.py` and `trainer.py` TFX's Evaluator and Trainer executors
taught that output.
"""

from .previous_model import (
    FOUND_PROPERTY,
    MODEL_URI_PROPERTY,
    NO_PREVIOUS_MODEL,
    found,
    present,
)

__all__ = ["FOUND_PROPERTY", "MODEL_URI_PROPERTY", "NO_PREVIOUS_MODEL", "found", "present"]

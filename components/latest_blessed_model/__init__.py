"""LatestBlessedModel: the latest model the Evaluator blessed, found by a container step that the
open-source Kubeflow Pipelines backend runs (it has no resolver executors).

`component.py` is the TFX component, `executor.py` its executor (the ML Metadata query),
`evaluator.py` TFX's Evaluator executor taught that a model it did not find is no baseline.

Its output is always one Model artifact: the previous model (its URI, and `found` = 1) or, on a
first run, a model that was not found (`found` = 0, nothing at its URI). The consumers
(EmbeddingTrainer's `base_model`, the Evaluator's `baseline_model`) treat the latter as absent
(`present`), which is what a TFX Resolver that finds nothing gives them.
"""

# The output Model's custom property: 1 when it is the previous run's blessed model, 0 when none
# was found (a first run, or none blessed yet).
FOUND_PROPERTY = "found"

# What a run without a previous model says (the local runner's console says the same).
NO_PREVIOUS_MODEL = ("no previous model to start from (a first run, or none blessed yet); "
                     "this run starts from the pretrained vectors")


def found(artifact):
    """False for a Model that LatestBlessedModel did not find, True for any other artifact."""
    return not (artifact.has_custom_property(FOUND_PROPERTY)
                and not artifact.get_custom_property(FOUND_PROPERTY))


def present(input_dict, key):
    """input_dict without `key` when its only artifact is a model LatestBlessedModel did not
    find (TFX's executors then see no such input, as after a Resolver that found nothing).

    Args:
      input_dict: an executor's input dict, {key: [Artifact]}.
      key: the input that may hold LatestBlessedModel's output (`base_model`, `baseline_model`).

    Returns:
      input_dict itself, or a copy without key.
    """
    artifacts = input_dict.get(key) or []
    if artifacts and not any(found(artifact) for artifact in artifacts):
        return {name: value for name, value in input_dict.items() if name != key}
    return input_dict

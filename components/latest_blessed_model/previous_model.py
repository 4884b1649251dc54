"""The model LatestBlessedModel hands on, and how its consumers read it.

Its output is always one Model artifact, under this run's directory (the launcher refuses any
other output URI), where nothing is written: the previous run's blessed model (`found` = 1, its
URI in `model_uri`) or, on a first run, none (`found` = 0). The consumers (EmbeddingTrainer's
`base_model`, the Evaluator's `baseline_model`) see the previous model at its own URI, or no
input at all (`present`), which is what a TFX Resolver gives them.
"""


import copy

# The output Model's custom property: 1 when it is the previous run's blessed model, 0 when none
# was found (a first run, or none blessed yet).
FOUND_PROPERTY = "found"
# The previous model's URI, when found (the output artifact's own URI is this run's).
MODEL_URI_PROPERTY = "model_uri"

# What a run without a previous model says (the local runner's console says the same).
NO_PREVIOUS_MODEL = ("no previous model to start from (a first run, or none blessed yet); "
                     "this run starts from the pretrained vectors")


def found(artifact):
    """False for a Model that LatestBlessedModel did not find, True for any other artifact."""
    return not (artifact.has_custom_property(FOUND_PROPERTY)
                and not artifact.get_custom_property(FOUND_PROPERTY))


def present(input_dict, key):
    """input_dict as a TFX Resolver would have given it, where `key` holds LatestBlessedModel's
    output: the previous model it found at that model's URI, or no `key` at all when it found
    none (TFX's executors then see no such input).

    Args:
      input_dict: an executor's input dict, {key: [Artifact]}.
      key: the input that may hold LatestBlessedModel's output (`base_model`, `baseline_model`).

    Returns:
      input_dict itself (where a model was found, its `key` now a copy of the artifact at the
      previous model's URI), or a copy of it without `key` (none found).
    """
    artifacts = input_dict.get(key) or []
    if artifacts and not any(found(artifact) for artifact in artifacts):
        return {name: value for name, value in input_dict.items() if name != key}
    if any(artifact.has_custom_property(MODEL_URI_PROPERTY) for artifact in artifacts):
        input_dict[key] = [_at_model_uri(artifact) for artifact in artifacts]
    return input_dict


def _at_model_uri(artifact):
    if not artifact.has_custom_property(MODEL_URI_PROPERTY):
        return artifact
    artifact = copy.deepcopy(artifact)
    artifact.uri = artifact.get_string_custom_property(MODEL_URI_PROPERTY)
    return artifact

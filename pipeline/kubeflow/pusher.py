"""TFX's Pusher executor, taking a plain path as its push destination too.

Compiled with the push destination a RuntimeParameter (a run sets it, in Kubeflow's UI among
others), TFX's Pusher expects a PushDestination proto as JSON, and fails on what a person types
there: a directory. This takes either: text that is not JSON is the filesystem destination's
base directory (`{"filesystem": {"baseDirectory": text}}`). `compile_for_kubeflow` gives it to
every Pusher whose push_destination is a RuntimeParameter.
"""

import json
import logging

from tfx.components.pusher import executor as pusher_executor
from tfx.types import standard_component_specs

KEY = standard_component_specs.PUSH_DESTINATION_KEY


def as_push_destination(value):
    """PushDestination JSON for value: itself when it is JSON (an object), else a filesystem
    destination whose base directory is value.

    Raises:
      ValueError: an empty value.
    """
    text = value.strip() if isinstance(value, str) else value
    if not text:
        raise ValueError("push_destination is empty: give a directory (gs://bucket/serving/"
                         "model, s3://...) or a PushDestination as JSON")
    if isinstance(text, str) and text.startswith("{"):
        json.loads(text)  # JSON it must be, then; TFX's parse says what is wrong with it.
        return text
    return json.dumps({"filesystem": {"baseDirectory": text}})


class Executor(pusher_executor.Executor):
    """TFX's Pusher; push_destination a PushDestination as JSON, or a plain path."""

    def Do(self, input_dict, output_dict, exec_properties):
        destination = as_push_destination(exec_properties[KEY])
        if destination != exec_properties[KEY]:
            logging.info("Pusher: push_destination %r is a path: pushing under it",
                         exec_properties[KEY])
        super().Do(input_dict, output_dict, {**exec_properties, KEY: destination})

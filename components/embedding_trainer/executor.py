"""TFX's generic Trainer executor, plus the embedding artifact handed to the user's run_fn."""

from tfx.components.trainer import executor as trainer_executor
from tfx.types import artifact_utils

EMBEDDING_KEY = "embedding"
# The custom_config key of run_fn's fn_args that holds the embedding artifact's directory.
EMBEDDING_URI_KEY = "embedding_uri"


class Executor(trainer_executor.GenericExecutor):
    """run_fn finds the embedding artifact's directory at custom_config["embedding_uri"]."""

    def _GetFnArgs(self, input_dict, output_dict, exec_properties):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        fn_args.custom_config = dict(fn_args.custom_config or {})
        fn_args.custom_config[EMBEDDING_URI_KEY] = artifact_utils.get_single_uri(
            input_dict[EMBEDDING_KEY])
        return fn_args

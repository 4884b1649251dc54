"""The raw examples' schema, shipped inside the package (the repository's schemas/ folder is
`tfx_embeddings.schemas`), so a pipeline names it without a path of the machine it was built on.
"""

import importlib.resources
import os

from tfx.components.schema_gen.import_schema_gen import executor as import_schema_gen_executor
from tfx.types import standard_component_specs

DEFAULT_SCHEMA = "schema.pbtxt"


def schema_path(schema_file):
    """A bare file name names a schema shipped in the package; any other path is itself."""
    if os.path.basename(schema_file) != schema_file:
        return schema_file
    return str(importlib.resources.files("tfx_embeddings.schemas").joinpath(schema_file))


class Executor(import_schema_gen_executor.Executor):
    """ImportSchemaGen's executor, with schema_file resolved by `schema_path` where it runs."""

    def Do(self, input_dict, output_dict, exec_properties):
        key = standard_component_specs.SCHEMA_FILE_KEY
        super().Do(input_dict, output_dict,
                   {**exec_properties, key: schema_path(exec_properties[key])})

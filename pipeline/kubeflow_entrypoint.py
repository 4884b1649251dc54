"""The container command of compiled Kubeflow specs: TFX's (kubeflow_v2_run_executor), taught
one more artifact type.

TFX's entrypoint imports an output artifact's class from its Kubeflow schema title. Kubeflow
shows an artifact titled `system.HTML` as the step's visualization, and no class lives at
that path: this maps the title to `HtmlReport` (EmbeddingGen's coverage report), then runs
TFX's entrypoint as it is.
"""

import runpy

from tfx.orchestration.kubeflow.v2 import compiler_utils

from tfx_embeddings.components.types import HtmlReport

COMMAND = ["python", "-m", __name__]

compiler_utils.TITLE_TO_CLASS_PATH[HtmlReport.TYPE_NAME] = (
    f"{HtmlReport.__module__}.{HtmlReport.__qualname__}")

if __name__ == "__main__":
    runpy.run_module("tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
                     run_name="__main__", alter_sys=True)

"""The command line prints only its own lines: the full log (TFX, TensorFlow, absl) goes to a
file, removed when the command succeeds and named when it fails, or to the terminal as well with
--verbose."""

import subprocess
import sys

from tests.conftest import ROOT

CONSOLE = """
import logging
import sys

from tfx_embeddings.components import model_changes
from tfx_embeddings.pipeline import console as console_lib

tfx = logging.getLogger("absl")  # Where TFX's launcher logs a component's start and end.
with console_lib.RunConsole(sys.argv[1]) as console:
    for component in ("EmbeddingGen", "EmbeddingTrainer", "ColdStartTrainer"):
        tfx.info("Component %s is running.", component)
        if component == "EmbeddingGen":
            model_changes.state("EmbeddingGen", "vocabulary %r: padded layout", "words")
        else:
            model_changes.state("pretrained_embedding", "layer %r: mask_zero on", "embedding")
        tfx.info("Component %s is finished.", component)
    console.print(console.statements_text())
"""


def test_a_run_gathers_what_it_changed_in_the_model(tmp_path):
    """The statements of model_changes: in the run's summary, each once, naming the components
    that made it; not among the run's live lines."""
    result = subprocess.run([sys.executable, "-c", CONSOLE, tmp_path / "run.log"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in lines[:6]] == [
        "EmbeddingGen started", "EmbeddingGen complete (0.0s)", "EmbeddingTrainer started",
        "EmbeddingTrainer complete (0.0s)", "ColdStartTrainer started",
        "ColdStartTrainer complete (0.0s)"]
    assert lines[6:] == [
        "what changed in the model:",
        "  EmbeddingGen: vocabulary 'words': padded layout",
        "  EmbeddingTrainer, ColdStartTrainer: layer 'embedding': mask_zero on"]

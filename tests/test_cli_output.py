"""The command line prints only its own lines: the full log (TFX, TensorFlow, absl) goes to a
file, removed when the command succeeds and named when it fails, or to the terminal as well with
--verbose."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.conftest import ROOT, write_vocabulary
from tfx_embeddings.components.embedding_gen.executor import build_embedding


def _cli(tmp_path, *args):
    """The command as a user runs it, with its temporary files in tmp_path/tmp."""
    os.makedirs(tmp_path / "tmp", exist_ok=True)
    environment = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    return subprocess.run([sys.executable, "-m", "tfx_embeddings.pipeline", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=environment)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, ):
    path = tmp_path_factory.mktemp("cli")
    with open(path / "vectors.txt", "w") as f:
        f.write("w1 0.1 0.2 0.3\nw2 0.4 0.5 0.6\n")
    vocabulary = write_vocabulary(path / "vocab.txt", ["w1", "w2", "nope"])
    build_embedding(str(vocabulary), str(path / "vectors.txt"), str(path / "out"),
                    num_shards=2, row_layout="padded")
    return path / "out"


def test_inspect_prints_its_lines_only(artifact, tmp_path):
    result = _cli(tmp_path, "inspect", artifact)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines() == [
        "vocabulary size:        3 tokens (5 rows x 3 float32; padded layout: padding row 0, "
        "OOV rows 4-4)",
        "in the model:           mask_zero on by default (id 0 is the padding row); width 3, "
        "the vector file's dimension",
        "vocabulary coverage:    2 tokens have a pretrained vector (66.7%)",
        "corpus token coverage:  83.3% of corpus tokens have a pretrained vector",
        "checkpoint shards:      2 (2-3 rows each)",
        "counts:                 vector_rows_read=2, vector_rows_matched=2, duplicate_tokens=0, "
        "case_folded_matches=0, invalid_utf8_replaced=0, tokens_initialized=1, "
        "subword_vectors=0, shards_written=2",
        f"vectors:                {artifact.parent}/vectors.txt (glove, 3 dimensions)",
        f"coverage report:        {artifact}/report.html"]
    assert os.listdir(tmp_path / "tmp") == []  # The full log of a command that succeeded.


def test_verbose_shows_the_full_log(artifact, tmp_path):
    quiet = _cli(tmp_path, "inspect", artifact).stdout.splitlines()
    result = _cli(tmp_path, "inspect", "--verbose", artifact)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[-len(quiet):] == quiet
    assert "FutureWarning" in result.stdout  # Of the libraries, in the full log.


def test_a_failure_prints_the_error_and_where_the_full_log_is(tmp_path):
    result = _cli(tmp_path, "inspect", tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    error, where = result.stderr.splitlines()
    assert error == (f"error: {tmp_path}: no manifest.json; the embedding artifact was never "
                     f"published (an interrupted or failed EmbeddingGen run)")
    [log] = os.listdir(tmp_path / "tmp")
    assert where == f"the full log: {tmp_path / 'tmp' / log}"
    with open(tmp_path / "tmp" / log) as f:
        assert "Traceback" in f.read()


class _Scorer(tf.Module):
    """A model with the demo's predict_text signature: the probability is the text's length
    over 100."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def predict_text(self, text):
        return {"probabilities": tf.cast(tf.strings.length(text), tf.float32) / 100.0}


def test_predict_prints_its_lines_only(tmp_path):
    scorer = _Scorer()
    tf.saved_model.save(scorer, str(tmp_path / "model"),
                        signatures={"predict_text": scorer.predict_text})
    result = _cli(tmp_path, "predict", tmp_path / "model", "a good film", "bad")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines() == ["0.110  a good film", "0.030  bad"]


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

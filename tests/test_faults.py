"""SIGKILL of the writer at random moments: never a half-published artifact, and a rerun works."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tests.conftest import write_glove, write_vocabulary
from tfx_embeddings.components import embedding_artifact
from tfx_embeddings.components.embedding_trainer import restore

pytestmark = pytest.mark.slow

WRITER = textwrap.dedent("""
    import sys
    from tfx_embeddings.components.embedding_gen.build import build_embedding
    build_embedding(sys.argv[1], sys.argv[2], sys.argv[3], num_shards=6, row_layout="padded")
""")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    vectors = write_glove(tmp_path / "vectors.txt",
                          ((f"t{i}", rng.standard_normal(50)) for i in range(30_000)))
    vocabulary = write_vocabulary(tmp_path / "vocab.txt", [f"t{i}" for i in range(0, 40_000, 2)])
    return tmp_path, str(vocabulary), str(vectors)


def _writer(inputs, out):
    _, vocabulary, vectors = inputs
    return subprocess.Popen([sys.executable, "-c", WRITER, vocabulary, vectors, out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _check_published(out):
    """A published artifact restores and verifies; returns its files' bytes."""
    embedding_artifact.EmbeddingArtifact(out).verify()
    directory = os.path.join(out, embedding_artifact.CHECKPOINT_DIR)
    return {name: open(os.path.join(directory, name), "rb").read()
            for name in sorted(os.listdir(directory))}


def test_sigkill_never_leaves_a_half_published_artifact(inputs):
    tmp_path, _, _ = inputs
    reference = str(tmp_path / "reference")
    started = time.monotonic()
    assert _writer(inputs, reference).wait() == 0
    duration = time.monotonic() - started
    expected = _check_published(reference)

    rng = random.Random(4)
    outcomes = []
    for trial in range(6):
        out = str(tmp_path / f"trial{trial}")
        process = _writer(inputs, out)
        time.sleep(rng.uniform(0.3, duration))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if os.path.exists(os.path.join(out, embedding_artifact.MANIFEST_FILE)):
            outcomes.append("published")
            assert _check_published(out) == expected
        else:
            outcomes.append("unpublished")
            with pytest.raises(embedding_artifact.CheckpointError, match="never published"):
                restore.pretrained_embedding(out)
        assert _writer(inputs, out).wait() == 0  # A rerun into the same place completes...
        assert _check_published(out) == expected  # ...with the same bytes,
        assert not [n for n in os.listdir(out) if n.startswith(".")]  # and no leftovers.
    assert "unpublished" in outcomes, outcomes

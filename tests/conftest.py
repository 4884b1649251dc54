import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def write_glove(path, entries, fmt="%.5f"):
    """entries: (token, vector) pairs; returns {token: float32 row as the file states it}."""
    with open(path, "w") as f:
        for token, vector in entries:
            f.write(token + " " + " ".join(fmt % x for x in vector) + "\n")
    return path


def write_vocabulary(path, tokens, counts=None):
    counts = counts or [len(tokens) - i for i in range(len(tokens))]
    with open(path, "w") as f:
        for count, token in zip(counts, tokens):
            f.write(f"{count} {token}\n")
    return path


@pytest.fixture
def small_vectors(tmp_path):
    """A GloVe file for 40 tokens w0..w39 (dimension 6) and the exact float32 of each row."""
    rng = np.random.default_rng(3)
    entries = [(f"w{i}", rng.standard_normal(6)) for i in range(40)]
    path = write_glove(tmp_path / "vectors.txt", entries)
    expected = {t: np.array([float("%.5f" % x) for x in v], dtype=np.float32)
                for t, v in entries}
    return str(path), expected

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def image():
    """The python of build/image: a fresh virtualenv with the built wheel installed and nothing
    else of ours, the stand-in for the container image. `make test` builds it (`make image`)
    before the tests; it is built here only when missing."""
    python = os.path.join(ROOT, "build", "image", "bin", "python")
    if not os.path.exists(python):
        subprocess.run(["make", "-s", "image"], cwd=ROOT, check=True, capture_output=True)
    return python


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


@pytest.fixture
def no_numpy_matrix(monkeypatch):
    """Call with rows=N: from then on, reading a checkpoint in Python or turning a tensor of N
    rows into numpy fails the test."""
    import tensorflow as tf
    from tensorflow.python.framework import ops

    def guard(rows):
        def forbidden(*args, **kwargs):
            raise AssertionError("the restore path read the checkpoint in Python")

        original_numpy = ops._EagerTensorBase.numpy

        def guarded_numpy(tensor):
            if tensor.shape.rank == 2 and tensor.shape[0] == rows:
                raise AssertionError("the restore path copied the embedding matrix to numpy")
            return original_numpy(tensor)

        monkeypatch.setattr(tf.train, "load_variable", forbidden)
        monkeypatch.setattr(tf.train, "load_checkpoint", forbidden)
        monkeypatch.setattr(tf.compat.v1.train, "NewCheckpointReader", forbidden)
        monkeypatch.setattr(ops._EagerTensorBase, "numpy", guarded_numpy)

    return guard


@pytest.fixture(scope="session")
def history(tmp_path_factory):
    """The session's scheduled runs of the demo pipeline on one root (tests/history.py)."""
    from tests.history import History

    return History(str(tmp_path_factory.mktemp("history")))


# The tiers (pytest.ini's markers): a test that uses one of these fixtures runs a whole pipeline
# or the image stand-in; modules that start clusters or run pipelines otherwise mark themselves.
_PIPELINE_FIXTURES = {"history", "image", "pipeline_run"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pipeline)


# `make test` runs two workers (pytest-xdist, `--dist loadfile`): a module's tests run in one
# worker, so its module- and session-scoped runs are made once; the modules that read the
# session's history (tests/history.py) share one worker for the same reason. (xdist's own
# `loadgroup` marks do not group under pytest 9: it renames items by a field pytest 9 no longer
# reads.)
_HISTORY_READERS = ("tests/test_pipeline.py", "tests/test_retrain.py")


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module = nodeid.split("::", 1)[0]
            return "history" if module in _HISTORY_READERS else module

    return ByModule(config, log)

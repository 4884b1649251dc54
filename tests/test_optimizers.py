"""LazyAdam: Adam on the rows a batch looks up, nothing on the others; Keras's Adam elsewhere."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfx_embeddings.components.embedding_trainer.optimizers import (
    Keras3LazyAdam,
    LazyAdam,
    TfKerasLazyAdam,
)

# tf_keras and Keras 3: LazyAdam against each Keras's own Adam.
KERASES = pytest.mark.parametrize("lazy_adam, adam", [
    (TfKerasLazyAdam, tf_keras.optimizers.Adam), (Keras3LazyAdam, keras.optimizers.Adam)],
    ids=["tf_keras", "keras3"])


def _steps(optimizer, gradients, initial):
    keras3 = isinstance(optimizer, keras.optimizers.Optimizer)
    variable = keras.Variable(initial) if keras3 else tf.Variable(initial)
    for gradient in gradients:
        optimizer.apply_gradients([(gradient, variable)])
    return variable.numpy()


def _sparse(values, indices, rows):
    return tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(indices, tf.int64),
                            tf.constant([rows, values.shape[1]], tf.int64))


@KERASES
def test_rows_present_at_every_step_follow_adam_exactly(lazy_adam, adam):
    rng = np.random.default_rng(0)
    initial = rng.standard_normal((4, 3)).astype(np.float32)
    values = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(5)]
    # Every row once per step, in another order each time, once with a row split in two.
    sparse = [_sparse(v[[3, 1, 0, 2]], [3, 1, 0, 2], 4) for v in values[:4]]
    sparse.append(_sparse(np.concatenate([values[4], values[4][:1] * 0]), [0, 1, 2, 3, 0], 4))
    lazy = _steps(lazy_adam(0.1), sparse, initial)
    dense = _steps(adam(0.1), [tf.constant(v) for v in values], initial)
    np.testing.assert_array_equal(lazy, dense)  # The same arithmetic, bit for bit.


@KERASES
def test_rows_a_batch_did_not_look_up_stay_as_they_were(lazy_adam, adam):
    rng = np.random.default_rng(1)
    initial = rng.standard_normal((6, 2)).astype(np.float32)
    gradients = [_sparse(rng.standard_normal((2, 2)).astype(np.float32), [1, 4], 6)
                 for _ in range(3)]
    gradients.append(_sparse(rng.standard_normal((1, 2)).astype(np.float32), [1], 6))
    after = _steps(lazy_adam(0.1), gradients, initial)
    np.testing.assert_array_equal(after[[0, 2, 3, 5]], initial[[0, 2, 3, 5]])
    assert np.all(after[[1, 4]] != initial[[1, 4]])
    # Row 4 was absent at the last step: Keras's Adam would have moved it by its momentum.
    assert np.all(_steps(adam(0.1), gradients, initial)[4] != after[4])


@KERASES
def test_dense_gradients_get_keras_adam(lazy_adam, adam):
    rng = np.random.default_rng(2)
    initial = rng.standard_normal((3, 3)).astype(np.float32)
    gradients = [tf.constant(rng.standard_normal((3, 3)), tf.float32) for _ in range(4)]
    np.testing.assert_array_equal(_steps(lazy_adam(0.05), gradients, initial),
                                  _steps(adam(0.05), gradients, initial))


@KERASES
def test_amsgrad_is_refused(lazy_adam, adam):
    with pytest.raises(ValueError, match="does not support amsgrad"):
        lazy_adam(amsgrad=True)


def test_lazy_adam_builds_the_optimizer_of_the_models_keras():
    assert isinstance(LazyAdam(0.1, keras="keras3"), keras.optimizers.Adam)
    assert isinstance(LazyAdam(0.1, keras="tf_keras"), tf_keras.optimizers.Adam)
    with pytest.raises(ValueError, match="keras must be one of"):
        LazyAdam(0.1, keras="keras2")

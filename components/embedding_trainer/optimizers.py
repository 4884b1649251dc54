"""LazyAdam: Adam whose work on an embedding is proportional to the rows a batch looks up.

Keras's Adam, given the sparse gradient of an embedding lookup (tf.IndexedSlices), still decays
both moment slots and moves every row of the matrix at every step: training time grows with
the vocabulary, not with the data (1 s a step for a 248k x 300 embedding on 2 cores). LazyAdam
updates, for such a gradient, only the rows the batch looked up, and applies Keras's Adam, as
it is, to every dense gradient (the rest of the model).

What it changes in the maths: Adam's moments of a row decay, and the row moves, only at the
steps whose batch contains it. A row absent from a batch keeps its moments as they were (Adam
would decay them by beta_1 and beta_2) and does not move (Adam would move it by its decaying
momentum). Bias correction still uses the global step. For rows present at every step it is
exactly Adam. This is TensorFlow Addons' LazyAdam, the usual choice for large embeddings.
"""

import keras
import tensorflow as tf
import tf_keras

from . import keras_versions


def _adam_rows(gradient, m, v, beta_1, beta_2):
    """Keras's Adam moments, on the rows a sparse gradient touches only: (rows, m rows, v
    rows). A row looked up several times in the batch has its gradients summed, as Adam sees
    them."""
    rows, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.size(rows))
    m_rows = tf.gather(m, rows)
    m_rows += (values - m_rows) * (1 - beta_1)
    v_rows = tf.gather(v, rows)
    v_rows += (tf.square(values) - v_rows) * (1 - beta_2)
    return rows, m_rows, v_rows


def _powers(optimizer, dtype):
    step = tf.cast(optimizer.iterations + 1, dtype)
    return (tf.pow(tf.cast(optimizer.beta_1, dtype), step),
            tf.pow(tf.cast(optimizer.beta_2, dtype), step))


class LazyAdam:
    """Adam with lazy (row-wise) updates for sparse gradients; Keras's Adam for dense ones.

    Builds the optimizer of the model's Keras: TfKerasLazyAdam or Keras3LazyAdam.

    Args:
      learning_rate, beta_1, beta_2, epsilon, name, **kwargs: as Keras's Adam (amsgrad is not
        supported).
      keras: "tf_keras" or "keras3"; by default the Keras `tf.keras` is, as for
        pretrained_embedding.

    Returns:
      A TfKerasLazyAdam or a Keras3LazyAdam.

    Raises:
      ValueError: amsgrad=True, or an unknown keras.

    Example:
      model.compile(optimizer=tfx_embeddings.LazyAdam(1e-3), loss=...)
    """

    def __new__(cls, *args, keras=None, **kwargs):
        optimizer = (Keras3LazyAdam if keras_versions.resolve(keras) == keras_versions.KERAS_3
                     else TfKerasLazyAdam)
        return optimizer(*args, **kwargs)


@tf_keras.saving.register_keras_serializable(package="tfx_embeddings")
class TfKerasLazyAdam(tf_keras.optimizers.Adam):
    """LazyAdam for tf_keras. jit_compile defaults to False: XLA would densify the sparse
    update."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 jit_compile=False, name="LazyAdam", **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam does not support amsgrad")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, jit_compile=jit_compile, name=name, **kwargs)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        beta_1_power, beta_2_power = _powers(self, dtype)
        alpha = tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        epsilon = (self.epsilon * tf.sqrt(1 - beta_2_power) if self.adaptive_epsilon
                   else self.epsilon)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        rows, m_rows, v_rows = _adam_rows(gradient, m, v, self.beta_1, self.beta_2)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices((m_rows * alpha) / (tf.sqrt(v_rows) + epsilon),
                                              rows))


@keras.saving.register_keras_serializable(package="tfx_embeddings")
class Keras3LazyAdam(keras.optimizers.Adam):
    """LazyAdam for Keras 3: the same arithmetic on the rows a sparse gradient touches, Keras
    3's Adam for dense gradients."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="LazyAdam", **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam does not support amsgrad")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        beta_1_power, beta_2_power = _powers(self, dtype)
        alpha = tf.cast(learning_rate, dtype) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        rows, m_rows, v_rows = _adam_rows(gradient, m.value, v.value, self.beta_1, self.beta_2)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(
            (m_rows * alpha) / (tf.sqrt(v_rows) + self.epsilon), rows))

"""Which Keras a trainer module uses: tf_keras (Keras 2) or Keras 3.

Under TensorFlow 2.16, `tf.keras` (and `from tensorflow import keras`) is Keras 3, unless
TF_USE_LEGACY_KERAS was set when it was first used, in which case it is tf_keras. Which one a
process gets depends on import order: tensorflow-transform sets TF_USE_LEGACY_KERAS when it is
imported, which changes `tf.keras` only if nothing used it before. So the environment variable
does not say which Keras a module got; `tf.keras` itself does (its `version()`).

The restore layer and LazyAdam exist for both; by default they follow `tf.keras`, as the user's
own module does. A layer of one Keras called on a tensor of the other fails deep in Keras with "A
KerasTensor cannot be used as input to a TensorFlow function"; `check_same_keras` says instead
which Keras each side is.
"""

import functools
import importlib

TF_KERAS, KERAS_3 = "tf_keras", "keras3"
NAMES = (TF_KERAS, KERAS_3)


def resolve(keras=None):
    """"tf_keras" or "keras3": keras as given, else the Keras `tf.keras` is in this process."""
    if keras is not None:
        if keras not in NAMES:
            raise ValueError(f"keras must be one of {NAMES} or None (the Keras tf.keras is), "
                             f"got {keras!r}")
        return keras
    import tensorflow as tf

    version = getattr(tf.keras, "version", None)  # Keras 3's; tf_keras has none.
    return KERAS_3 if version is not None and version().startswith("3.") else TF_KERAS


@functools.lru_cache(maxsize=None)
def module(name):
    """The Keras package of a name: tf_keras, or keras (3)."""
    return importlib.import_module("tf_keras" if name == TF_KERAS else "keras")


def of_tensor(value):
    """The Keras a symbolic Keras tensor belongs to, or None for anything else."""
    kind = type(value)
    if kind.__name__ != "KerasTensor":
        return None
    return TF_KERAS if kind.__module__.startswith("tf_keras.") else KERAS_3


def describe(name):
    if name == TF_KERAS:
        return "tf_keras (Keras 2: `import tf_keras`, or tf.keras with TF_USE_LEGACY_KERAS=1)"
    return "Keras 3 (`import keras`, or tf.keras without TF_USE_LEGACY_KERAS)"


def check_same_keras(layer_keras, inputs, what):
    """Raises TypeError, naming both, when inputs are symbolic tensors of the other Keras."""
    values = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    for value in values:
        other = of_tensor(value)
        if other is not None and other != layer_keras:
            raise TypeError(
                f"{what} is a {describe(layer_keras)} layer, called on a {describe(other)} "
                f"tensor. Build it for the model's Keras: pretrained_embedding(..., "
                f"keras={other!r}), or build the model with `from tensorflow import keras`, "
                f"which the default follows.")

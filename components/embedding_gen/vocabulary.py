"""Reading the vocabulary file that TensorFlow Transform wrote: the row order of the checkpoint."""

import tensorflow as tf


def read_vocabulary(path, has_counts):
    """Returns (tokens as bytes, counts or None), in file order.

    With has_counts, each line is `count token`, as `tft.vocabulary(store_frequency=True)` writes.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: the vocabulary is empty")
    if not has_counts:
        return lines, None
    tokens, counts = [], []
    for number, line in enumerate(lines, 1):
        count, sep, token = line.partition(b" ")
        if not sep or not count.isdigit():
            raise ValueError(f"{path} line {number}: expected 'count token', got {line[:80]!r}")
        tokens.append(token)
        counts.append(int(count))
    return tokens, counts

"""Which ids the user's own TransformGraph gives the vocabulary's tokens: checked, never assumed.

EmbeddingGen's row i must be the row the model looks up for id i. The preprocessing_fn decides
those ids (tft's ids as they are, ids plus one for a padding row, an OOV bucket or a
default_value for unknown tokens, a padding value), so before anything is written EmbeddingGen
passes a few documents through the TransformGraph itself: single vocabulary tokens spread over
the file, tokens that are in no vocabulary, and an empty document. The transformed integer
feature whose ids are token index + a constant is the ids feature; the constant is the row
layout ("tft": 0, "padded": 1), and the ids of unknown tokens and of padding positions must be
rows of the embedding. Anything else is refused before training, with what to change.
"""

import logging

import numpy as np
import tensorflow as tf

from .. import embedding_artifact
from ..embedding_artifact import RowLayout, TokenIds

# Vocabulary tokens probed: the first ones, the last one, and some spread between.
_PROBES = 12
_UNKNOWN_TOKENS = (b"qzxjvkw", b"wvkjxzq", b"xqjzkvw")
_OFFSETS = {0: embedding_artifact.TFT, 1: embedding_artifact.PADDED}


class TokenIdsError(ValueError):
    """The TransformGraph's ids and the embedding's rows do not line up; says what to change."""


def check_token_ids(transform_output, vocabulary_name, tokens, *, row_layout, num_oov_buckets,
                    ids_feature=None):
    """Finds the ids the TransformGraph gives the vocabulary, and the layout they fit.

    Args:
      transform_output: the tft.TFTransformOutput of the TransformGraph.
      vocabulary_name: the asset the tokens come from (for messages).
      tokens: the vocabulary's tokens (bytes), in id order.
      row_layout: "auto", "padded" or "tft": "auto" takes the layout the ids fit, the others are
        checked against it.
      num_oov_buckets: the OOV rows the embedding has after the vocabulary.
      ids_feature: the transformed feature holding the ids; found when None.

    Returns:
      (the RowLayout, TokenIds as observed), or (the given layout, None) when no transformed
      feature carries this vocabulary's ids and the layout was given (logged as unchecked).

    Raises:
      TokenIdsError: the ids fit no layout, contradict the given one, or send unknown tokens
        or padding to ids the embedding has no row for; or no feature carries the ids and the
        layout is "auto".
    """
    indices = _probe_indices(tokens)
    unknown = [t for t in _UNKNOWN_TOKENS if t not in set(tokens)]
    documents = [tokens[i] for i in indices] + unknown + [b""]
    outputs, failure = _transform(transform_output, documents)
    candidates = {}
    for name, value in outputs.items():
        if ids_feature is not None and name != ids_feature:
            continue
        firsts = _first_ids(value)
        if firsts is None:
            continue
        known, oov_ids = firsts[:len(indices)], firsts[len(indices):-1]
        offsets = set((known - np.asarray(indices)).tolist())
        # Token index + a constant, and never an id unknown tokens get (a bucket's).
        if len(offsets) == 1 and not set(known.tolist()) & set(oov_ids.tolist()):
            candidates[name] = (offsets.pop(), oov_ids, firsts[-1])
    where = f"the TransformGraph's {vocabulary_name!r} ids"
    if len(candidates) > 1:
        raise TokenIdsError(f"several transformed features give the tokens of "
                            f"{vocabulary_name!r} ids of token index + a constant: "
                            f"{sorted(candidates)}; set ids_feature to the one the embedding "
                            f"looks up")
    if not candidates:
        if ids_feature is not None and ids_feature not in outputs:
            problem = (f"ids_feature {ids_feature!r} is not a transformed feature "
                       f"({sorted(outputs)})")
        else:
            seen = sorted(name for name, value in outputs.items()
                          if _first_ids(value) is not None)
            problem = (f"no transformed integer feature ({seen}) gives the tokens of "
                       f"{vocabulary_name!r} ids of token index + a constant when each token is "
                       f"passed alone through the TransformGraph"
                       + (f" (the transform failed: {failure})" if failure else "")
                       + "; is the vocabulary the one the ids come from, and "
                       "vocabulary_has_counts right?")
        if row_layout == "auto" or ids_feature is not None:
            raise TokenIdsError(f"{problem}. Set row_layout ('padded': token i has id i + 1, "
                                f"'tft': id i) and ids_feature.")
        logging.warning("EmbeddingGen: the row layout %r is not checked against the token "
                        "ids: %s", row_layout, problem)
        return RowLayout(row_layout, len(tokens), num_oov_buckets), None
    [(feature, (offset, oov_ids, padding_id))] = candidates.items()
    ids = TokenIds(feature=feature, offset=int(offset),
                   oov_ids=tuple(sorted(set(int(i) for i in oov_ids))),
                   padding_id=None if padding_id is None else int(padding_id))
    layout = _layout(ids, where, row_layout, len(tokens), num_oov_buckets)
    logging.info("EmbeddingGen: %s", ids.describe(layout, tokens))
    if ids.padding_id is not None and ids.padding_id != layout.padding_row and (
            layout.first_token_row <= ids.padding_id < layout.first_token_row + len(tokens)):
        logging.warning(
            "EmbeddingGen: padding positions get id %d, the row of token %r: the model sees "
            "padding as that word. Pad with an OOV bucket's id, or give the ids + 1 and pad "
            "with 0 (the padded layout's zero row, masked)", ids.padding_id,
            tokens[ids.padding_id - layout.first_token_row].decode("utf-8", "replace"))
    return layout, ids


def _layout(ids, where, row_layout, vocabulary_size, num_oov_buckets):
    """The RowLayout the ids fit; raises TokenIdsError with what to change."""
    if ids.offset not in _OFFSETS:
        raise TokenIdsError(
            f"{where} (feature {ids.feature!r}) are token index + {ids.offset}; an embedding's "
            f"rows are token index + 0 (row_layout 'tft': tft's ids as they are) or + 1 "
            f"('padded': row 0 for padding). Give the ids one of these offsets.")
    found = _OFFSETS[ids.offset]
    if row_layout not in ("auto", found):
        raise TokenIdsError(
            f"row_layout is {row_layout!r} but {where} (feature {ids.feature!r}) are token "
            f"index + {ids.offset}: the {found!r} layout. Every row would be shifted by one "
            f"token; set row_layout to {found!r} (or 'auto').")
    layout = RowLayout(found, vocabulary_size, num_oov_buckets)
    for kind, values in (("an unknown token", ids.oov_ids),
                         ("padding", () if ids.padding_id is None else (ids.padding_id,))):
        for value in values:
            if not 0 <= value < layout.num_rows:
                raise TokenIdsError(
                    f"{where}: {kind} gets id {value}, which is no row of the embedding (rows "
                    f"0-{layout.num_rows - 1}: {_rows_text(layout)}). "
                    + (_oov_advice(value, layout) if kind == "an unknown token" else
                       f"Pad with id {layout.padding_row if layout.padding_row is not None else 0}"
                       f" instead."))
    return layout


def _rows_text(layout):
    parts = []
    if layout.padding_row is not None:
        parts.append(f"padding {layout.padding_row}")
    first = layout.first_token_row
    parts.append(f"tokens {first}-{first + layout.vocabulary_size - 1}")
    if layout.num_oov_buckets:
        parts.append(f"OOV buckets {first + layout.vocabulary_size}-{layout.num_rows - 1}")
    return ", ".join(parts)


def _oov_advice(value, layout):
    if value < 0:
        return ("tft gives default_value (-1 unless set) to unknown tokens when "
                "num_oov_buckets is 0: pass num_oov_buckets=1 to the vocabulary lookup and to "
                "EmbeddingGen, or a default_value that is a row"
                + (" (with ids + 1, default_value=-1 makes unknown tokens padding)"
                   if layout.padding_row is not None else "") + ".")
    return (f"The lookup has more OOV buckets than EmbeddingGen's num_oov_buckets "
            f"({layout.num_oov_buckets}): give EmbeddingGen the lookup's num_oov_buckets.")


def _probe_indices(tokens):
    """Indices of vocabulary tokens to pass through the graph: plain ones (letters and digits:
    any tokenizer keeps them whole), the first few, the last, and some spread between."""
    plain = [i for i, t in enumerate(tokens) if t.isalnum()]
    if len(plain) < 2:
        plain = [i for i, t in enumerate(tokens) if t and not any(c in t for c in b" \t\n\r")]
    if len(plain) <= _PROBES:
        return plain
    picks = np.linspace(0, len(plain) - 1, _PROBES - 3).round().astype(int).tolist()
    return sorted(set(plain[:3] + [plain[p] for p in picks]))


def _transform(transform_output, documents):
    """The transformed features of len(documents) examples whose every string feature is the
    document (other features zero); ({} and the error when the graph cannot run on them)."""
    batch = {}
    for name, spec in transform_output.raw_feature_spec().items():
        if isinstance(spec, tf.io.FixedLenFeature):
            shape = [len(documents)] + list(spec.shape)
            if spec.dtype == tf.string:
                value = tf.reshape(tf.constant(documents), [len(documents)] + [1] * len(spec.shape))
                batch[name] = tf.broadcast_to(value, shape)
            else:
                batch[name] = tf.zeros(shape, spec.dtype)
        elif isinstance(spec, tf.io.VarLenFeature):
            if spec.dtype == tf.string:
                batch[name] = tf.sparse.from_dense(tf.constant([[d] for d in documents]))
            else:
                batch[name] = tf.sparse.SparseTensor(tf.zeros([0, 2], tf.int64),
                                                     tf.zeros([0], spec.dtype),
                                                     [len(documents), 0])
        else:
            return {}, f"raw feature {name!r} is a {type(spec).__name__}"
    try:
        return transform_output.transform_raw_features(batch, drop_unused_features=True), None
    except (tf.errors.OpError, ValueError, TypeError, KeyError) as e:
        return {}, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _first_ids(value):
    """Per example, the first id of an integer feature (None if the feature is not integer
    ids of one per token); an empty example's first id is its padding id, or None."""
    if value.dtype not in (tf.int32, tf.int64):
        return None
    if isinstance(value, tf.sparse.SparseTensor):
        value = tf.RaggedTensor.from_sparse(value)
    if isinstance(value, tf.RaggedTensor):
        rows = value.to_list()
        if any(len(r) != 1 for r in rows[:-1]):
            return None
        return np.array([r[0] for r in rows[:-1]] + [rows[-1][0] if rows[-1] else None],
                        dtype=object)
    value = value.numpy()
    if value.ndim != 2 or value.shape[1] < 1:
        return None
    return value[:, 0]

"""Which ids the user's own TransformGraph gives the vocabulary's tokens: checked, never assumed.

EmbeddingGen's row i must be the row the model looks up for id i. The preprocessing_fn decides
those ids (tft's ids as they are, ids plus one for a padding row, an OOV bucket or a
default_value for unknown tokens, a padding value), so before anything is written EmbeddingGen
passes a few documents through the TransformGraph itself: single vocabulary tokens spread over
the file, tokens that are in no vocabulary, and an empty document. The transformed integer
feature whose ids are token index + a constant is the ids feature; the constant is the row
layout ("tft": 0, "padded": 1), and the ids of unknown tokens and of padding positions must be
rows of the embedding: an id past the rows the vocabulary and its OOV buckets take (tft's
default_value at or beyond the vocabulary's size) gets extra rows up to it, stated. Anything else
is refused before training, with what to change.

Without a vocabulary name, the vocabulary is the TransformGraph's only vocabulary asset; with
several, the one whose ids `ids_feature` carries, or an error that lists each asset and the
transformed features that carry its ids.
"""

import itertools
import json
import logging
import os

import numpy as np
import tensorflow as tf

from .. import embedding_artifact, model_changes, vocabulary_file
from ..embedding_artifact import RowLayout, TokenIds

# Vocabulary tokens probed: the first ones, the last one, and some spread between.
_PROBES = 12
# Tokens in no vocabulary, letters only (any tokenizer keeps them whole): enough that a lookup's
# OOV buckets show as several ids, where a default_value is one.
_UNKNOWN_TOKENS = tuple(bytes(p) for p in itertools.islice(itertools.permutations(b"qzxjvkw"),
                                                           0, 5040, 315))
_OFFSETS = {0: embedding_artifact.TFT, 1: embedding_artifact.PADDED}
# Extra rows (no token's, up to an id past the vocabulary) EmbeddingGen adds at most: an id this
# far past the vocabulary is a mistaken default_value more likely than a model's size (a million
# rows of 300 floats are 1.2 GB no token uses).
MAX_EXTRA_ROWS = 1_000_000


class TokenIdsError(ValueError):
    """The TransformGraph's ids and the embedding's rows do not line up; says what to change."""


def vocabulary_assets(transform_output):
    """{name: path} of the TransformGraph's assets (its vocabularies), by the names
    `tft.TFTransformOutput.vocabulary_file_by_name` takes: tft.annotate_asset's keys, else
    the file's name (tft's vocab_filename, or the one it generated)."""
    directory = os.path.join(transform_output.transform_savedmodel_dir,
                             tf.saved_model.ASSETS_DIRECTORY)
    if not tf.io.gfile.isdir(directory):
        return {}
    names = {}
    for name in sorted(n.rstrip("/") for n in tf.io.gfile.listdir(directory)):
        path = os.path.join(directory, name)
        if not tf.io.gfile.isdir(path):
            names[name[:-len(".tfrecord.gz")] if name.endswith(".tfrecord.gz") else name] = path
    annotated = {}
    for key in _asset_map(transform_output):
        path = transform_output.vocabulary_file_by_name(key)
        if path is not None:
            annotated[os.path.basename(path)] = key
    return {annotated.get(os.path.basename(path), name): path for name, path in names.items()}


def _asset_map(transform_output):
    """tft.annotate_asset's {key: file name}, beside the transformed metadata."""
    path = os.path.join(os.path.dirname(transform_output.transform_savedmodel_dir.rstrip("/")),
                        transform_output.TRANSFORMED_METADATA_DIR, transform_output.ASSET_MAP)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def find_vocabulary(transform_output, vocabulary_name, *, has_counts, ids_feature=None):
    """The vocabulary EmbeddingGen joins: the asset vocabulary_name names, or, without a name,
    the TransformGraph's only vocabulary, or the one whose ids ids_feature carries.

    Returns:
      (its name, its path, its tokens as bytes).

    Raises:
      TokenIdsError: no asset of that name; no vocabulary asset; or several, none of which
        ids_feature singles out: the message lists each and the transformed features that
        carry its ids.
      vocabulary_file.VocabularyFileError: the vocabulary file is malformed.
    """
    assets = vocabulary_assets(transform_output)
    if vocabulary_name is not None:
        path = transform_output.vocabulary_file_by_name(vocabulary_name)
        if path is None:
            raise TokenIdsError(
                f"the TransformGraph has no vocabulary named {vocabulary_name!r} (its assets: "
                f"{sorted(assets) or 'none'}); vocabulary_name is the vocab_filename of the "
                f"preprocessing_fn's vocabulary, or leave it out when there is one")
        return vocabulary_name, path, vocabulary_file.read_vocabulary(path, has_counts)[0]
    if len(assets) == 1:
        [(name, path)] = assets.items()
        return name, path, vocabulary_file.read_vocabulary(path, has_counts)[0]
    if not assets:
        raise TokenIdsError(f"the TransformGraph ({transform_output.transform_savedmodel_dir}) "
                            f"holds no vocabulary asset: does the preprocessing_fn call "
                            f"tft.vocabulary or tft.compute_and_apply_vocabulary?")
    found = {name: _features_of(transform_output, path, has_counts)
             for name, path in assets.items()}
    if ids_feature is not None:
        chosen = [name for name, (_, features, counts) in found.items()
                  if ids_feature in features and counts == has_counts]
        if len(chosen) == 1:
            return chosen[0], assets[chosen[0]], found[chosen[0]][0]
    listed = "; ".join(
        f"{name!r} ({_tokens_text(tokens, counts, has_counts)}"
        + (f": ids in {', '.join(repr(f) for f in features)}" if features
           else ": no transformed feature carries its ids" if tokens is not None else "") + ")"
        for name, (tokens, features, counts) in found.items())
    which = (f"none of them gives ids_feature {ids_feature!r} its ids"
             if ids_feature is not None and not any(ids_feature in f for _, f, _ in found.values())
             else "which one the embedding follows is not for EmbeddingGen to guess")
    other = any(tokens is not None and counts != has_counts
                for tokens, _, counts in found.values())
    raise TokenIdsError(f"the TransformGraph holds {len(assets)} vocabularies: {listed}; "
                        f"{which}. Set vocabulary_name to one of them (or ids_feature to the "
                        f"feature the embedding looks up)"
                        + (f", and vocabulary_has_counts={not has_counts} for one read only so"
                           if other else "") + ".")


def _tokens_text(tokens, counts, has_counts):
    if tokens is None:
        return "not a vocabulary file"
    return f"{len(tokens)} tokens" + ("" if counts == has_counts else
                                      f" read with vocabulary_has_counts={counts}")


def _features_of(transform_output, path, has_counts):
    """(tokens, the transformed features whose ids are its token index + a constant, the
    vocabulary_has_counts it was read with: has_counts, else the other where only that reads);
    (None, [], has_counts) for a file read neither way."""
    for counts in (has_counts, not has_counts):
        try:
            tokens, _ = vocabulary_file.read_vocabulary(path, counts)
        except vocabulary_file.VocabularyFileError:
            continue
        indices = _probe_indices(tokens)
        outputs, _ = _transform(transform_output, _documents(tokens, indices))
        return tokens, sorted(_candidates(outputs, indices, ids_feature=None)), counts
    return None, [], has_counts


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
      The layout has extra rows up to the highest id the ids give unknown tokens or padding
      (stated, with the layout found, in model_changes' WARNING lines).

    Raises:
      TokenIdsError: the ids fit no layout, contradict the given one, or send unknown tokens
        or padding to a negative id, to more OOV buckets than num_oov_buckets, or further past
        the vocabulary than MAX_EXTRA_ROWS; or no feature carries the ids and the layout is
        "auto".
    """
    indices = _probe_indices(tokens)
    outputs, failure = _transform(transform_output, _documents(tokens, indices))
    candidates = _candidates(outputs, indices, ids_feature)
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
    model_changes.state("EmbeddingGen", "vocabulary %r (%d tokens): %s; rows: %s", vocabulary_name,
                        len(tokens), ids.describe(layout, tokens), layout.rows_text())
    if layout.num_extra_rows:
        beyond = sorted(i for i in ids.reserved_ids() if i >= layout.first_extra_row)
        model_changes.state(
            "EmbeddingGen", "%d extra rows (%d-%d) after the vocabulary%s, from the "
            "initializer, so that id %s, which the TransformGraph gives (a default_value at or "
            "past the vocabulary's size), has a row", layout.num_extra_rows,
            layout.first_extra_row, layout.num_rows - 1,
            " and its OOV buckets" if layout.num_oov_buckets else "",
            " and ".join(map(str, beyond)))
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
    pad_with = layout.padding_row if layout.padding_row is not None else 0
    for kind, values in (("an unknown token", ids.oov_ids),
                         ("padding", () if ids.padding_id is None else (ids.padding_id,))):
        for value in values:
            if value < 0:
                raise TokenIdsError(
                    f"{where}: {kind} gets id {value}, which is no row of the embedding (rows "
                    f"0-{layout.num_rows - 1}: {layout.rows_text()}). "
                    + (_negative_oov_advice(layout) if kind == "an unknown token" else
                       f"Pad with id {pad_with} instead."))
    buckets = [i for i in ids.oov_ids if i >= layout.first_token_row + vocabulary_size]
    if len(buckets) > 1 and buckets[-1] >= layout.first_extra_row:
        seen = buckets[-1] - layout.first_token_row - vocabulary_size + 1
        raise TokenIdsError(
            f"{where}: unknown tokens get ids {', '.join(map(str, buckets))}: the lookup hashes "
            f"them into OOV buckets, at least {seen} (ids up to {buckets[-1]}), past the "
            f"embedding's rows (0-{layout.num_rows - 1}: {layout.rows_text()}). Give "
            f"EmbeddingGen the lookup's num_oov_buckets (currently {num_oov_buckets}).")
    covering = RowLayout.covering(found, vocabulary_size, num_oov_buckets, ids)
    if covering.num_extra_rows > MAX_EXTRA_ROWS:
        value = max(ids.reserved_ids())
        kind = "an unknown token" if value in ids.oov_ids else "padding"
        raise TokenIdsError(
            f"{where}: {kind} gets id {value}, {covering.num_extra_rows} rows past the "
            f"embedding's last (rows 0-{layout.num_rows - 1}: {layout.rows_text()}): rows for "
            f"ids that far that no token takes would be {covering.num_extra_rows} x the "
            f"vectors' width (EmbeddingGen adds at most {MAX_EXTRA_ROWS}), more likely a "
            f"mistaken id than a model's size. "
            + ("Give the vocabulary lookup num_oov_buckets=1 instead of a default_value "
               "(unknown tokens then get the row after the vocabulary's last, whatever its "
               "size), and EmbeddingGen num_oov_buckets=1." if kind == "an unknown token"
               else f"Pad with id {pad_with} instead."))
    return covering


def _negative_oov_advice(layout):
    return ("tft gives default_value (-1 unless set) to unknown tokens when "
            "num_oov_buckets is 0: pass num_oov_buckets=1 to the vocabulary lookup and to "
            "EmbeddingGen, or a default_value that is a row"
            + (" (with ids + 1, default_value=-1 makes unknown tokens padding)"
               if layout.padding_row is not None else "") + ".")


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


def _documents(tokens, indices):
    """The probes: the vocabulary tokens at indices, tokens in no vocabulary, an empty one."""
    known = set(tokens)
    return ([tokens[i] for i in indices] + [t for t in _UNKNOWN_TOKENS if t not in known]
            + [b""])


def _candidates(outputs, indices, ids_feature):
    """{feature: (offset, the ids unknown tokens got, the empty document's first id)} of the
    transformed integer features whose ids for the probes are token index + one constant and
    never an id an unknown token gets (a bucket's)."""
    candidates = {}
    for name, value in outputs.items():
        if ids_feature is not None and name != ids_feature:
            continue
        firsts = _first_ids(value)
        if firsts is None:
            continue
        known, oov_ids = firsts[:len(indices)], firsts[len(indices):-1]
        offsets = set((known - np.asarray(indices)).tolist())
        if len(offsets) == 1 and not set(known.tolist()) & set(oov_ids.tolist()):
            candidates[name] = (offsets.pop(), oov_ids, firsts[-1])
    return candidates


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

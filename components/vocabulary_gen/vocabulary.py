"""The vocabulary file: exactly what `tft.vocabulary` writes, so either one can feed the pipeline.

For the same tokens and options (top_k, frequency_threshold, reserved_tokens, store_frequency),
VocabularyGen writes the same bytes as tft.vocabulary: reserved tokens first, then tokens by count
descending, ties by token bytes descending; empty tokens and tokens holding a newline or carriage
return are never counted (a line holds one token); a vocabulary that would be empty holds tft's
placeholder, so lookup tables never initialize from an empty file.
"""

import pyarrow.compute as pc

VOCABULARY_FILE = "vocabulary.txt"
# The custom_config key under which VocabularyTransform hands the file to the preprocessing_fn.
VOCABULARY_FILE_CONFIG_KEY = "vocabulary_file"
# tft's entry for a vocabulary without tokens (analyzers.get_empy_vocabulary_dummy_value).
EMPTY_VOCABULARY_ENTRY = (1, b"49d0cd50-04bb-48c0-bc6f-5b575dce351a")


def countable(tokens):
    """A mask of an Arrow binary array of tokens: False where tft drops one (empty, \\n, \\r)."""
    return pc.and_(pc.greater(pc.binary_length(tokens), 0),
                   pc.invert(pc.or_(pc.match_substring(tokens, "\n"),
                                    pc.match_substring(tokens, "\r"))))


def vocabulary_lines(ranked, *, top_k=None, reserved_tokens=None, store_frequency=False):
    """The file's lines from (count, token) pairs already thresholded, ranked and cut to top_k.

    In tft's order of steps: the placeholder is added right after the top_k cut (when top_k is
    set), reserved tokens are then removed from the ranked tokens and put first with count -1.
    """
    if top_k is not None and not ranked:
        ranked = [EMPTY_VOCABULARY_ENTRY]
    reserved = [t.encode() if isinstance(t, str) else t for t in reserved_tokens or ()]
    if reserved:
        skip = set(reserved)
        ranked = [entry for entry in ranked if entry[1] not in skip]
    entries = [(-1, token) for token in reserved] + list(ranked)
    if not entries:
        entries = [EMPTY_VOCABULARY_ENTRY]
    if store_frequency:
        return [b"%d %s\n" % entry for entry in entries]
    return [token + b"\n" for _, token in entries]

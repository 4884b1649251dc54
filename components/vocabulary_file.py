"""The vocabulary file, exactly as tensorflow-transform writes it: VocabularyGen writes it,
EmbeddingGen and the embedding artifact read it.

tft.vocabulary writes one token per line, or `count token` lines with store_frequency=True:
reserved tokens first (count -1), then tokens by count descending, ties by token bytes
descending. It never writes an empty token or one holding a newline or a carriage return (a line
holds one token), and a vocabulary that would be empty holds a placeholder instead, so lookup
tables never initialize from an empty file. Line i is token id i.
"""

import functools

VOCABULARY_FILE = "vocabulary.txt"
# tft's entry for a vocabulary without tokens (analyzers.get_empy_vocabulary_dummy_value).
EMPTY_VOCABULARY_ENTRY = (1, b"49d0cd50-04bb-48c0-bc6f-5b575dce351a")


class VocabularyFileError(ValueError):
    """A vocabulary file tft would not have written; the message names the file and the line."""


def read_vocabulary(path, has_counts):
    """Reads a vocabulary file.

    Args:
      path: a local path, or any path Beam's filesystems open (components.filesystems).
      has_counts: True for `count token` lines (tft.vocabulary(store_frequency=True),
        VocabularyGen), False for one token per line (tft's default).

    Returns:
      (tokens as bytes, counts as ints or None), in file order.

    Raises:
      VocabularyFileError: an empty file, a line that is not `count token`, a token with a
        carriage return (CRLF line endings: TensorFlow's lookup tables keep it in the token, so
        no id would ever match), an empty token, or a token on two lines (its ids would be
        ambiguous); each names the line.
    """
    from . import filesystems

    stat = filesystems.stat(path)
    tokens, counts = _read_vocabulary(path, has_counts, stat.size, stat.modified_ns)
    return list(tokens), counts and list(counts)  # Copies: the cached lists stay as read.


@functools.lru_cache(maxsize=4)
def _read_vocabulary(path, has_counts, size, modified):
    """read_vocabulary, once per process and file version: each Beam worker's DoFns read the
    same vocabulary. The checks run on the whole list, the line found only on failure."""
    from . import filesystems

    lines = filesystems.read_bytes(path).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise VocabularyFileError(f"{path}: the vocabulary is empty")
    if lines[0].startswith(b"\xef\xbb\xbf"):
        raise VocabularyFileError(
            f"{path} line 1: the file starts with a UTF-8 byte order mark, which tft never "
            f"writes: the first token would begin with it and match no token of the text; "
            f"remove the mark (the file must be the one Transform wrote)")
    tokens, counts = lines, None
    if has_counts:
        parts = [line.partition(b" ") for line in lines]
        well_formed = [bool(sep) and count.lstrip(b"-").isdigit() for count, sep, _ in parts]
        if not all(well_formed):
            number = well_formed.index(False) + 1
            raise VocabularyFileError(f"{path} line {number}: expected 'count token', got "
                                      f"{lines[number - 1][:80]!r}; is it a file of tokens "
                                      f"only (vocabulary_has_counts false)?")
        tokens = [token for _, _, token in parts]
        counts = [int(count) for count, _, _ in parts]
    bad = next((n for n, t in enumerate(tokens, 1) if not t or b"\r" in t), None)
    if bad is not None:
        token = tokens[bad - 1]
        raise VocabularyFileError(f"{path} line {bad}: " + (
            "empty token" if not token else
            f"the token {token[:80]!r} holds a carriage return (CRLF line endings?); lookup "
            f"tables would keep it in the token and match nothing"))
    if len(set(tokens)) != len(tokens):
        seen = {}
        for number, token in enumerate(tokens, 1):
            if token in seen:
                raise VocabularyFileError(f"{path} line {number}: the token {token[:80]!r} is "
                                          f"also on line {seen[token]}; each token must have "
                                          f"one id")
            seen[token] = number
    return tokens, counts


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


def countable(tokens):
    """A mask of an Arrow binary array of tokens: False where tft drops one (empty, \\n, \\r)."""
    import pyarrow.compute as pc

    return pc.and_(pc.greater(pc.binary_length(tokens), 0),
                   pc.invert(pc.or_(pc.match_substring(tokens, "\n"),
                                    pc.match_substring(tokens, "\r"))))

"""The text rules, defined once: lowercase, HTML line breaks to spaces, punctuation stripped, split
on whitespace. Transform maps the tokens of `tokenize` to ids (so the served model runs it too) and
VocabularyGen counts them; this module imports no TensorFlow, so Beam workers that count plain
ASCII text never load it."""

from ...components.vocabulary_gen import tokenizer

_PUNCTUATION = r"""[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~']"""

# A [batch] string tensor to a ragged [batch, None] tensor of tokens; VocabularyGen's rules.
tokenize = tokenizer.Tokenizer(lowercase=True,
                               replacements=((r"<br\s*/?>", " "), (_PUNCTUATION, "")))

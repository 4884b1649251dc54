"""TFRecord framing and tf.Example decoding in compiled code (_example_reader.c), for
VocabularyGen's workers. The signatures, for type checkers; the docs are the C docstrings."""

from typing import Literal, Optional, Tuple

from typing_extensions import Buffer

def crc32c(data: Buffer, portable: bool = ...) -> int: ...
def frame(data: Buffer) -> Tuple[bytes, int, Optional[Literal["length", "data"]]]: ...
def bytes_feature(data: Buffer, bounds: Buffer, feature: str) -> Optional[Tuple[bytes, bytes]]: ...

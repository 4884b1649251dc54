"""The compiled word counter VocabularyGen's workers count with, against Python's bytes.split()
(which splits on the same six ASCII whitespace bytes) and Arrow's ascii_split_whitespace."""

import collections
import subprocess
import sys
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tfx_embeddings.components.vocabulary_gen import _word_counter

# Every whitespace byte, bytes that are not (controls, NUL, DEL, non-ASCII), and letters.
ALPHABET = b" \t\n\v\f\r" + b"\x00\x01\x08\x0e\x1f\x7f\x80\xc3\xff" + b"abcxyz"


def _offsets(documents, start=0):
    return np.cumsum([start] + [len(d) for d in documents], dtype=np.int64)


def _counted(counter):
    data, offsets, counts = counter.words()
    offsets = np.frombuffer(offsets, np.int64)
    counts = np.frombuffer(counts, np.int64)
    assert len(offsets) == len(counter) + 1 == len(counts) + 1
    words = [data[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    assert len(set(words)) == len(words)
    return dict(zip(words, counts.tolist()))


def _random_documents(rng, n):
    """Documents of 0 to 300 bytes (some of 64, 128: whole blocks), mostly short words."""
    lengths = rng.choice([0, 1, 2, 63, 64, 65, 127, 128, 129, 300], size=n)
    weights = np.array([12.0] * 6 + [0.5] * 9 + [4.0] * 6)
    return [bytes(rng.choice(list(ALPHABET), size=length, p=weights / weights.sum()))
            for length in lengths]


@pytest.mark.parametrize("seed", range(5))
def test_counts_the_words_bytes_split_finds(seed):
    documents = _random_documents(np.random.default_rng(seed), 400)
    counter = _word_counter.WordCounter()
    words = counter.add(b"".join(documents), _offsets(documents))
    expected = collections.Counter(w for d in documents for w in d.split())
    assert words == sum(expected.values())
    assert _counted(counter) == expected


def test_counts_the_words_arrow_splits_plain_ascii_into():
    rng = np.random.default_rng(7)
    documents = [d for d in _random_documents(rng, 2000) if d.isascii() and b"\0" not in d]
    strings = pa.array([d.decode() for d in documents], pa.large_string())
    arrow = pc.value_counts(pc.ascii_split_whitespace(strings).flatten())
    expected = {w.encode(): c for w, c in zip(arrow.field(0).to_pylist(),
                                              arrow.field(1).to_pylist()) if w}
    counter = _word_counter.WordCounter()
    counter.add(strings.buffers()[2], strings.buffers()[1])
    assert _counted(counter) == expected


def test_only_the_documents_offsets_name_count_over_several_calls():
    counter = _word_counter.WordCounter()
    data = b"outside a b|a c\tc  d|outside"
    offsets = np.array([8, 12, 21], np.int64)  # "a b|" and "a c\tc  d|", not the rest.
    assert counter.add(data, offsets) == 6
    assert counter.add(b"b b", np.array([0, 3], np.int64)) == 2
    assert counter.add(b"", np.array([0], np.int64)) == 0
    assert counter.add(b"   ", np.array([0, 1, 3], np.int64)) == 0
    assert _counted(counter) == {b"a": 2, b"b|": 1, b"c": 2, b"d|": 1, b"b": 2}


def test_the_table_grows_past_its_first_size_and_long_words_count():
    rng = np.random.default_rng(3)
    distinct = [b"w%d" % i + b"x" * int(n) for i, n in enumerate(rng.integers(0, 40, 150_000))]
    distinct += [b"long" * 500, b"y" * 64, b"z" * 128, b"q" * 63]
    documents = [b" ".join(distinct), b"\n".join(distinct[:1000]), b"y" * 64, b"z" * 128]
    counter = _word_counter.WordCounter()
    assert counter.add(b"".join(documents), _offsets(documents)) == len(distinct) + 1002
    expected = collections.Counter(w for d in documents for w in d.split())
    assert len(counter) == len(distinct)
    assert _counted(counter) == expected


def test_words_that_differ_in_one_byte_count_apart_at_every_length():
    """A word of up to 16 bytes is its own key; a longer one is compared in the arena."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF"
    words = []
    for length in range(1, 41):
        word = alphabet[:length]
        words += [word] + [word[:at] + b"#" + word[at + 1:] for at in range(length)]
    # Each word in two contexts (the bytes after it differ), the last right at the data's end.
    documents = [b" ".join(words) + b"\n", b"\t".join(reversed(words)), b"x" * 3, b"",
                 alphabet[:17]]
    for end in range(len(documents) + 1):  # The data ends after each document in turn.
        counter = _word_counter.WordCounter()
        data = b"".join(documents[:end])
        counter.add(data, _offsets(documents[:end]))
        assert _counted(counter) == collections.Counter(w for d in documents[:end]
                                                        for w in d.split())


GUARD_PAGE = """
import ctypes, mmap, numpy as np
from tfx_embeddings.components.vocabulary_gen import _word_counter
page = mmap.PAGESIZE
memory = mmap.mmap(-1, 2 * page)
address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.mprotect(ctypes.c_void_p(address + page), page, 0) == 0  # PROT_NONE
for tail in [b"ab", b"a b", b"abcdefghijklmnopq", b"x" * 100 + b" y"]:
    memory[page - len(tail):page] = tail
    data = memoryview(memory)[:page]
    counter = _word_counter.WordCounter()
    assert counter.add(data, np.array([page - len(tail), page], np.int64)) == len(tail.split())
print("ok")
"""


def test_no_byte_past_the_data_is_read():
    """The data's last bytes are followed by a page no process may read."""
    result = subprocess.run([sys.executable, "-c", GUARD_PAGE], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr[-2000:]


def test_threads_count_at_once_each_with_its_own_counter():
    documents = _random_documents(np.random.default_rng(11), 3000)
    data, offsets = b"".join(documents), _offsets(documents)
    counters = [_word_counter.WordCounter() for _ in range(4)]
    threads = [threading.Thread(target=lambda c=c: [c.add(data, offsets) for _ in range(20)])
               for c in counters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = {w: 20 * n for w, n in
                collections.Counter(w for d in documents for w in d.split()).items()}
    for counter in counters:
        assert _counted(counter) == expected


@pytest.mark.parametrize("offsets, message", [
    (np.array([0, 4], np.int64), r"offset 1 \(4\) is outside the data \(3 bytes\)"),
    (np.array([-1, 2], np.int64), r"offset 0 \(-1\) is outside the data"),
    (np.array([0, 2, 1], np.int64), r"offset 2 \(1\) is outside the data \(3 bytes\) or below"),
    (np.array([0, 2, 3], np.int32), r"offsets must be int64 values.*got 12 bytes"),
    (np.array([], np.int64), r"offsets must be int64 values.*got 0 bytes"),
])
def test_offsets_that_do_not_fit_the_data_are_refused(offsets, message):
    counter = _word_counter.WordCounter()
    with pytest.raises(ValueError, match=message):
        counter.add(b"a b", offsets)
    assert len(counter) == 0

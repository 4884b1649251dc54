"""The compiled reader of VocabularyGen's documents against what it stands in for: CRC-32C
against google_crc32c, the bytes feature of serialized tf.Examples against tfx_bsl's decoder, and
every Example it must not read itself handed back (None) for tfx_bsl to decode."""

import google_crc32c
import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from tfx_bsl.coders import example_coder

from tfx_embeddings.components.vocabulary_gen import _example_reader, beam_impl

FEATURE = "text"


def _feature(kind, values):
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if kind == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    if kind == "int64":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature()


def _example(**features):
    return tf.train.Example(features=tf.train.Features(feature={
        name: _feature(*kind_values) for name, kind_values in features.items()})
    ).SerializeToString()


def _field(number, contents):
    """A length-delimited protobuf field (lengths under 128 bytes)."""
    return bytes([number << 3 | 2, len(contents)]) + contents


def _raw_example(other_feature):
    """An Example of text "a" and a feature "f" given as its serialized Feature."""
    entries = [_field(1, b"text") + _field(2, _field(1, _field(1, b"a"))),
               _field(1, b"f") + _field(2, other_feature)]
    return _field(1, b"".join(_field(1, entry) for entry in entries))


def _batch(records):
    """The records one after another, with gaps, and their bounds as frame() gives them."""
    buffer, bounds = b"", []
    for record in records:
        buffer += b"gap"
        bounds.append((len(buffer), len(buffer) + len(record)))
        buffer += record
    return buffer + b"gap", np.array(bounds, np.int64).reshape(-1, 2)


def _read(records):
    """What bytes_feature reads from the records: a list of values, or None."""
    read = _example_reader.bytes_feature(*_batch(records), FEATURE)
    if read is None:
        return None
    data, offsets = read
    offsets = np.frombuffer(offsets, np.int64).tolist()
    return [data[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _tfx_bsl(records):
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
    return batch.column(batch.schema.get_field_index(FEATURE)).flatten().to_pylist()


def _random_value(rng):
    return bytes(rng.integers(0, 256, size=rng.choice([0, 1, 5, 200, 1000])).astype(np.uint8))


@pytest.mark.parametrize("seed", range(5))
def test_the_bytes_feature_is_what_tfx_bsl_decodes(seed):
    rng = np.random.default_rng(seed)
    others = {f"other{i}": str(rng.choice(["bytes", "float", "int64"])) for i in range(4)}
    records = []
    for _ in range(200):
        features = {FEATURE: ("bytes", [_random_value(rng) for _ in range(rng.integers(0, 4))])}
        for name, kind in others.items():
            if rng.random() < 0.5:
                values = {"bytes": lambda: _random_value(rng),
                          "float": lambda: float(rng.normal()),
                          "int64": lambda: int(rng.integers(-2**63, 2**63))}[kind]
                features[name] = (kind, [values() for _ in range(rng.integers(0, 5))])
        names = list(features)
        rng.shuffle(names)  # The feature anywhere among the others.
        records.append(_example(**{name: features[name] for name in names}))
    assert _read(records) == _tfx_bsl(records)
    assert len(_read(records)) > 200


def test_an_example_protobuf_did_not_write_is_left_to_tfx_bsl():
    ok = _example(text=("bytes", [b"a b"]))
    assert _read([ok, ok]) == [b"a b", b"a b"]
    for other in (_field(2, _field(1, b"abcd")), _field(3, _field(1, b"\x80\x01")),
                  _field(1, _field(1, b"ab"))):  # As protobuf writes each kind.
        assert _read([_raw_example(other)]) == _tfx_bsl([_raw_example(other)]) == [b"a"]
    # Two serializations one after another are one Example, the later value of a key winning.
    merged = _example(text=("bytes", [b"first"])) + _example(text=("bytes", [b"second"]))
    assert _read([ok, merged]) is None and _tfx_bsl([ok, merged]) == [b"a b", b"second"]
    unknown_field = ok + b"\x12\x00"  # Example's field 2: not in its schema, kept as unknown.
    assert _read([unknown_field]) is None and _tfx_bsl([unknown_field]) == [b"a b"]
    overlong_tag = b"\x8a\x00" + ok[1:]  # The tag of field 1 in two bytes: read alike.
    assert _read([overlong_tag]) == _tfx_bsl([overlong_tag]) == [b"a b"]
    for refused in [
            [ok, _example(other=("bytes", [b"x"]))],  # The feature missing from one example.
            [ok, _example(text=("int64", [1]))],  # Another kind.
            [ok, _example(text=(None, None))],  # No kind.
            [_example(text=("bytes", [])), _example(text=("bytes", []))],  # No value at all.
            [_example(text=("bytes", [b"a"]), n=("int64", [1])),  # Another feature's kind varies.
             _example(text=("bytes", [b"b"]), n=("float", [1.0]))],
            [_example(text=("bytes", [b"a"]), **{"caf\u00e9": ("int64", [1])})],  # Key not ASCII.
            [ok[:-1]],  # Cut short.
            [_raw_example(_field(2, _field(1, b"abc")))],  # Packed floats, 3 bytes.
            [_raw_example(_field(3, _field(1, b"\x80")))],  # Packed int64s, a varint cut short.
            [_raw_example(_field(1, b"\x0a\x05ab"))],  # A bytes value longer than its list.
            [b""],  # Empty.
    ]:
        assert _read(refused) is None, refused


def test_values_are_read_by_tfx_bsl_when_the_reader_cannot(tmp_path):
    reader = beam_impl._ReadExampleFile(FEATURE)
    reader.setup()
    merged = _example(text=("bytes", [b"first"])) + _example(text=("bytes", [b"second"]))
    ok = _example(text=("bytes", [b"a b", b"c"]))
    assert reader._values(*_batch([ok, merged]), "f").to_pylist() == [b"a b", b"c", b"second"]
    assert reader._values(*_batch([ok, ok]), "f").type == pa.large_binary()
    assert reader._values(*_batch([ok, ok]), "f").to_pylist() == [b"a b", b"c"] * 2
    with pytest.raises(ValueError, match="^f: an example has no bytes feature 'text'$"):
        reader._values(*_batch([ok, _example(other=("bytes", [b"x"]))]), "f")


def test_bounds_outside_the_data_are_refused():
    buffer, bounds = _batch([_example(text=("bytes", [b"a"]))])
    with pytest.raises(ValueError, match=r"record 0: bounds \[3, 999\) outside the buffer"):
        _example_reader.bytes_feature(buffer, np.array([[3, 999]], np.int64), FEATURE)


@pytest.mark.parametrize("portable", [False, True])
def test_crc32c_is_google_crc32c(portable):
    rng = np.random.default_rng(0)
    for length in list(range(40)) + [1000, 4097]:
        data = rng.integers(0, 256, size=length).astype(np.uint8).tobytes()
        assert _example_reader.crc32c(data, portable) == google_crc32c.value(data), length

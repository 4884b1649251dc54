"""VocabularyGen's Beam job against tft.vocabulary itself, both through the real Beam runner.

Every case computes the same vocabulary twice, once with tft.vocabulary (tft_beam.AnalyzeDataset)
and once with WriteVocabulary, and wants the very same bytes.
"""

import json
import os

import apache_beam as beam
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils
from tfx.types import artifact_utils, standard_artifacts

from tfx_embeddings.components import specs, vocabulary_file
from tfx_embeddings.components.beam_pipelines import local_directory_removed
from tfx_embeddings.components.types import Vocabulary
from tfx_embeddings.components.vocabulary_gen import beam_impl, executor, lookup
from tfx_embeddings.pipeline.demo import text


def split_on_bar(text):
    """A tokenizer that can make empty tokens and tokens with newlines, spaces or any bytes."""
    return tf.strings.split(text, sep="|")


# Ties at 3, 2 and 1 (ASCII and not), prefixes, rare tokens, reserved tokens that also occur
# (<pad>, b, q), empty tokens ("||", leading/trailing "|"), tokens with \n, \r, a space.
ODD_CORPUS = [
    "q|p|o|q|p|o|q|p|o",
    "b|B|a|a|b|B|ab|a b",
    "|zz||x\ny|x\rz|<pad>|<pad>|é|é|日本|日本|日本",
    "rare1|q|q|q|q|é",
    "|",
    "",
    "tail|tail|tail|tail|tail|tail|rare2|",
]

CASES = {
    "plain": {},
    "counts": dict(store_frequency=True),
    "top_k": dict(top_k=5, store_frequency=True),
    "top_k_tie_at_cut": dict(top_k=4),
    "threshold": dict(frequency_threshold=3, store_frequency=True),
    "reserved": dict(reserved_tokens=["<pad>", "<unk>", "b"], store_frequency=True),
    "reserved_top_k": dict(reserved_tokens=["q"], top_k=3, store_frequency=True),
    "all_filtered": dict(frequency_threshold=1000),
    "all_filtered_top_k_reserved": dict(frequency_threshold=1000, top_k=3,
                                        reserved_tokens=["<r>"], store_frequency=True),
}


def _tft_vocabularies(tmp_path, documents, tokenize_fn, cases, max_tokens_per_document=None):
    """{case: file bytes} from tft.vocabulary, all cases analyzed in one tft_beam pipeline."""

    def preprocessing_fn(inputs):
        tokens = tokenize_fn(inputs["text"])
        if max_tokens_per_document:
            tokens = tokens[:, :max_tokens_per_document]
        for name, options in cases.items():
            tft.vocabulary(tokens, vocab_filename=name, **options)
        return {"text": inputs["text"]}

    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
        {"text": tf.io.FixedLenFeature([], tf.string)}))
    output = str(tmp_path / "tft")
    with beam.Pipeline(runner="FnApiRunner") as pipeline, \
            tft_beam.Context(temp_dir=str(tmp_path / "tft_tmp")):
        data = pipeline | beam.Create([{"text": d} for d in documents])
        transform_fn = (data, metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output)
    tft_output = tft.TFTransformOutput(output)
    return {name: _read(tft_output.vocabulary_file_by_name(name)) for name in cases}


def _our_vocabularies(tmp_path, documents, tokenize_fn, cases, **kwargs):
    """{case: file bytes} from WriteVocabulary, all cases in one Beam pipeline."""
    paths = {name: str(tmp_path / f"ours_{name}.txt") for name in cases}
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        docs = pipeline | beam.Create(documents)
        for name, options in cases.items():
            _ = docs | name >> beam_impl.WriteVocabulary(paths[name], tokenize_fn, **options,
                                                         **kwargs)
    return {name: _read(path) for name, path in paths.items()}


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def odd_tft(tmp_path_factory):
    return _tft_vocabularies(tmp_path_factory.mktemp("tft"), ODD_CORPUS, split_on_bar, CASES)


@pytest.mark.parametrize("shards_and_batch", [(1, 1), (3, 2), (8, 256)])
def test_same_file_as_tft_vocabulary(tmp_path, odd_tft, shards_and_batch):
    num_shards, batch_size = shards_and_batch
    ours = _our_vocabularies(tmp_path, ODD_CORPUS, split_on_bar, CASES,
                             num_shards=num_shards, batch_size=batch_size)
    for name in CASES:
        assert ours[name] == odd_tft[name], name


def test_the_cases_exercise_tft_semantics(odd_tft):
    """What the comparison above covers, spelled out: if tft changed, these say where."""
    japanese, e_acute = "日本".encode(), "é".encode()
    ranked = (b"7 q\n6 tail\n3 %s\n3 %s\n3 p\n3 o\n2 b\n2 a\n2 B\n2 <pad>\n"
              b"1 zz\n1 rare2\n1 rare1\n1 ab\n1 a b\n" % (japanese, e_acute))
    assert odd_tft["counts"] == ranked  # Ties: token bytes descending; no empty, \n or \r token.
    assert odd_tft["plain"] == b"".join(line.split(b" ", 1)[1] + b"\n"
                                        for line in ranked.splitlines())
    assert odd_tft["top_k"] == b"".join(ranked.splitlines(keepends=True)[:5])
    assert odd_tft["top_k_tie_at_cut"] == b"q\ntail\n%s\n%s\n" % (japanese, e_acute)
    assert odd_tft["threshold"] == b"".join(ranked.splitlines(keepends=True)[:6])
    assert odd_tft["reserved"] == b"-1 <pad>\n-1 <unk>\n-1 b\n" + ranked.replace(
        b"2 b\n", b"").replace(b"2 <pad>\n", b"")
    # top_k cuts before reserved tokens are taken out of the ranking: 3 ranked, q removed.
    assert odd_tft["reserved_top_k"] == b"-1 q\n6 tail\n3 %s\n" % japanese
    assert odd_tft["all_filtered"] == vocabulary_file.EMPTY_VOCABULARY_ENTRY[1] + b"\n"
    assert odd_tft["all_filtered_top_k_reserved"] == (
        b"-1 <r>\n1 " + vocabulary_file.EMPTY_VOCABULARY_ENTRY[1] + b"\n")


TEXTS = [
    "The movie was GREAT, great... great!<br />Loved it",
    "the plot: dull; the acting? Dull!<br/>dull",
    "Déjà vu — ÉCOLE école \"quoted\" it's fine",
    "",
    "   spaces\tand\ttabs\nand newlines   ",
    "NUL\0INSIDE, and more",  # TensorFlow's lowercasing stops at NUL: so must the count.
]


@pytest.mark.parametrize("max_tokens_per_document", [None, 3])
def test_project_tokenizer_and_cap_match_tft(tmp_path, max_tokens_per_document):
    cases = {"top": dict(top_k=12, store_frequency=True)}
    expected = _tft_vocabularies(tmp_path, TEXTS, text.tokenize, cases,
                                 max_tokens_per_document)
    ours = _our_vocabularies(tmp_path, TEXTS, text.tokenize, cases,
                             max_tokens_per_document=max_tokens_per_document)
    assert ours == expected
    lines = expected["top"].decode().splitlines()
    if max_tokens_per_document is None:
        assert lines[:3] == ["3 the", "3 great", "3 dull"] and "2 école" in lines
    else:  # The first 3 tokens of each document (the em dash is not punctuation to standardize).
        assert lines == ["2 the", "1 —", "1 was", "1 vu", "1 tabs", "1 spaces", "1 plot", "1 nul",
                         "1 movie", "1 déjà", "1 dull", "1 and"]


def test_bytes_and_str_documents_count_alike(tmp_path):
    cases = {"v": dict(store_frequency=True)}
    as_str = _our_vocabularies(tmp_path, TEXTS, text.tokenize, cases)
    as_bytes = _our_vocabularies(tmp_path, [t.encode() for t in TEXTS], text.tokenize,
                                 cases)
    assert as_str == as_bytes


@pytest.mark.parametrize("options, message", [
    (dict(top_k=0), "top_k must be positive"),
    (dict(frequency_threshold=-1), "frequency_threshold must be non-negative"),
    (dict(max_tokens_per_document=0), "max_tokens_per_document must be positive"),
])
def test_bad_options_are_refused(tmp_path, options, message):
    pipeline = beam.Pipeline(runner="FnApiRunner")
    with local_directory_removed(pipeline), pytest.raises(ValueError, match=message):
        with pipeline:
            _ = pipeline | beam.Create(["a"]) | beam_impl.WriteVocabulary(
                str(tmp_path / "v.txt"), split_on_bar, **options)


def test_lookup_maps_tokens_to_lines_and_oov_to_buckets(tmp_path):
    path = tmp_path / "vocabulary.txt"
    path.write_bytes(b"5 the\n3 movie\n-1 <r>\n")

    @tf.function  # A graph of its own, as in a preprocessing_fn: tft annotates the graph.
    def apply(tokens):
        return lookup.apply_vocabulary(tokens, str(path), num_oov_buckets=2)

    ids = apply(tf.ragged.constant([["movie", "the", "zzz"], ["<r>"]]))
    assert ids.to_list()[0][:2] == [1, 0] and ids.to_list()[0][2] in (3, 4)
    assert ids.to_list()[1] == [2]


def _examples(tmp_path, splits):
    """An Examples artifact: {split: [{feature: text}]} as gzipped tf.Example TFRecords."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(list(splits))
    for split, rows in splits.items():
        os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
        path = os.path.join(examples.uri, f"Split-{split}", "data.gz")
        with tf.io.TFRecordWriter(path, "GZIP") as writer:
            for row in rows:
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
                    for key, value in row.items()})).SerializeToString())
    return examples


def _run_executor(tmp_path, examples, **properties):
    output = Vocabulary()
    output.uri = str(tmp_path / "vocabulary")
    executor.Executor().Do(
        {specs.EXAMPLES_KEY: [examples]}, {specs.VOCABULARY_KEY: [output]},
        {"splits": json.dumps(["train"]), "text_feature": "text",
         "tokenize_fn": "tfx_embeddings.pipeline.demo.text.tokenize", **properties})
    return output


def test_executor_counts_the_text_of_the_chosen_splits(tmp_path):
    examples = _examples(tmp_path, {"train": [{"text": "B a b!"}, {"text": "c a b"}],
                                    "eval": [{"text": "zzz zzz zzz zzz"}]})
    output = _run_executor(tmp_path, examples, max_tokens_per_document=2)
    with open(os.path.join(output.uri, vocabulary_file.VOCABULARY_FILE), "rb") as f:
        assert f.read() == b"2 a\n1 c\n1 b\n"  # First 2 tokens of train documents only.
    assert output.get_int_custom_property("vocabulary_size") == 3


def test_executor_names_a_missing_text_feature(tmp_path):
    examples = _examples(tmp_path, {"train": [{"body": "no text here"}]})
    with pytest.raises(Exception, match="Split-train/data.gz: an example has no bytes feature "
                                        "'text'"):
        _run_executor(tmp_path, examples)


def _tfrecord_file(tmp_path, records, compressed):
    """A TFRecord file of records written by TensorFlow; returns its path and each record's
    offset in the (uncompressed) file."""
    path = str(tmp_path / ("records.gz" if compressed else "records"))
    with tf.io.TFRecordWriter(path, options="GZIP" if compressed else None) as writer:
        for record in records:
            writer.write(record)
    offsets = [0]
    for record in records[:-1]:
        offsets.append(offsets[-1] + 16 + len(record))
    return path, offsets


def _rewritten(path, change):
    """Rewrites a TFRecord file's (uncompressed) bytes with change(bytes), gzip kept."""
    import gzip
    with open(path, "rb") as f:
        data = f.read()
    compressed = data[:2] == b"\x1f\x8b"
    data = change(bytearray(gzip.decompress(data) if compressed else data))
    with open(path, "wb") as f:
        f.write(gzip.compress(bytes(data)) if compressed else data)


RECORDS = [b"r%d" % i * (i % 7) for i in range(300)] + [b"x" * 70_000, b"", b"last"]


def _records(path, batch_size):
    """The records _tfrecords finds, each piece but the last checked to hold whole batches."""
    pieces = [(buffer, bounds.tolist()) for buffer, bounds in beam_impl._tfrecords(
        path, batch_size)]
    assert all(len(bounds) % batch_size == 0 for _, bounds in pieces[:-1])
    return [buffer[start:end] for buffer, bounds in pieces for start, end in bounds]


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("read_bytes", [beam_impl._READ_BYTES, 100, 7])
@pytest.mark.parametrize("batch_size", [1, 7, 4096])
def test_tfrecords_are_read_as_tensorflow_reads_them(tmp_path, monkeypatch, compressed,
                                                     read_bytes, batch_size):
    monkeypatch.setattr(beam_impl, "_READ_BYTES", read_bytes)  # Records across every boundary.
    path, _ = _tfrecord_file(tmp_path, RECORDS, compressed)
    assert _records(path, batch_size) == [r.numpy() for r in tf.data.TFRecordDataset(
        path, compression_type="GZIP" if compressed else "")] == RECORDS


def _set(offset, byte):
    def change(data, at):
        data[offset(at)] = byte if data[offset(at)] != byte else byte ^ 1
        return data
    return change


# (what the error says, of which record, the damage done to the file's bytes knowing where each
# record begins). A corrupt length is a huge one: it must be refused, not read up to.
DAMAGE = [
    ("corrupt TFRecord length", 250, _set(lambda at: at[250] + 7, 0x7F)),
    ("corrupt TFRecord length", 0, _set(lambda at: 9, 0)),  # The length's CRC itself.
    ("corrupt TFRecord data", 300, _set(lambda at: at[300] + 12 + 500, ord("y"))),
    ("corrupt TFRecord data", 17, _set(lambda at: at[18] - 1, 0)),  # The data's CRC itself.
    ("truncated TFRecord", 302, lambda data, at: data[:-3]),
    ("truncated TFRecord", 302, lambda data, at: data[:at[302] + 5]),  # Inside the header.
    ("truncated TFRecord", 300, lambda data, at: data[:at[300] + 20_000]),
]


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("read_bytes, batch_size", [(beam_impl._READ_BYTES, 4096), (100, 1),
                                                    (100, 64)])
@pytest.mark.parametrize("message, record, damage", DAMAGE)
def test_a_damaged_tfrecord_file_is_refused_where_it_is_damaged(
        tmp_path, monkeypatch, compressed, read_bytes, batch_size, message, record, damage):
    monkeypatch.setattr(beam_impl, "_READ_BYTES", read_bytes)
    path, at = _tfrecord_file(tmp_path, RECORDS, compressed)
    _rewritten(path, lambda data: damage(data, at))
    with pytest.raises(ValueError) as refused:
        _records(path, batch_size)
    assert str(refused.value) == f"{path}: {message} at byte {at[record]}"

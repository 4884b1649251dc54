import pytest

from tfx_embeddings.pipeline.demo.config import ConfigError, load_config

GOOD = """
pipeline_name: p
pipeline_root: build/p
serving_dir: build/serving
data:
  examples: data/sample/corpus
  vectors: data/sample/vectors/glove.sample.50d.txt
"""


def _write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_shipped_configs_load():
    config = load_config("configs/demo.yaml")
    assert config.embedding.num_shards == 4
    assert config.pipeline_root.startswith("/")
    assert config.metadata_path.endswith("pipeline_root/metadata.sqlite")


def test_defaults_fill_optional_sections(tmp_path):
    config = load_config(_write(tmp_path, GOOD))
    assert config.text.num_oov_buckets == 1 and config.trainer.trainable_embedding
    assert config.text.vocabulary == "fast" and config.text.max_tokens_per_document is None


@pytest.mark.parametrize("text, message", [
    (GOOD + "embeding:\n  num_shards: 2\n", "embeding: unknown key"),
    (GOOD + "embedding:\n  num_shard: 2\n", "embedding.num_shard: unknown key"),
    (GOOD + "embedding:\n  num_shards: two\n",
     "embedding.num_shards: Input should be a valid integer"),
    (GOOD + "embedding:\n  num_shards: 0\n", "embedding.num_shards: must be an int >= 1, got 0"),
    (GOOD + "embedding:\n  min_coverage: 2.0\n",
     "embedding.min_coverage: must be a finite number in [0, 1], got 2.0"),
    (GOOD + "embedding:\n  normalization: [l2, l2]\n", "embedding.normalization: must be steps"),
    (GOOD + "trainer:\n  trainable_embedding: 'yes'\n", "trainer.trainable_embedding"),
    (GOOD + "embedding:\n  vector_format: word2vec_bin\n", "embedding.vector_format: Input "
                                                               "should be 'auto', 'glove'"),
    (GOOD + "embedding:\n  format: glove\n", "embedding.format: unknown key"),
    (GOOD + "text:\n  vocabulary: quick\n", "text.vocabulary: Input should be 'fast' or 'tft'"),
    (GOOD + "text:\n  max_tokens_per_document: 0\n", "text.max_tokens_per_document"),
    (GOOD.replace("  vectors: data/sample/vectors/glove.sample.50d.txt\n", ""),
     "data.vectors: required key is missing"),
    ("- a\n- list\n", "expected a mapping"),
    ("pipeline_name: [unclosed\n", "not valid YAML"),
])
def test_bad_config_names_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(path + ": ")
    assert message in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(str(tmp_path / "nope.yaml"))

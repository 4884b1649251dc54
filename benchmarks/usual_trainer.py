"""The trainer of the usual way (bench-pipeline's baseline), as TFX users write it today: the
vector file loaded with gensim in run_fn, a matrix built in numpy for the vocabulary, a Keras
Embedding with a Constant initializer, stock Adam. The same model and data as the project's
(tfx_embeddings.pipeline.demo.model), only the embedding's way in and the optimizer differ."""

import numpy as np
import tensorflow_transform as tft
import tf_keras
from gensim.models import KeyedVectors

from tfx_embeddings.pipeline.demo import model, preprocessing


def run_fn(fn_args):
    config = fn_args.custom_config
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    vectors = KeyedVectors.load_word2vec_format(config["vectors"], binary=False, no_header=True)
    with open(tft_output.vocabulary_file_by_name(preprocessing.VOCABULARY_NAME)) as f:
        tokens = [line.rstrip("\n").split(" ", 1)[1] for line in f]
    rng = np.random.default_rng(0)
    matrix = rng.uniform(-0.05, 0.05, (len(tokens) + 1 + config["num_oov_buckets"],
                                       vectors.vector_size)).astype(np.float32)
    matrix[0] = 0.0  # Padding; token i is row i + 1 (the demo's preprocessing_fn).
    for i, token in enumerate(tokens):
        if token in vectors.key_to_index:
            matrix[i + 1] = vectors[token]
    embedding = tf_keras.layers.Embedding(
        matrix.shape[0], matrix.shape[1], mask_zero=True, name="embedding",
        embeddings_initializer=tf_keras.initializers.Constant(matrix))
    keras_model = model.build_model(embedding, config["max_tokens"],
                                    tf_keras.optimizers.Adam(config["learning_rate"]))
    train, evaluation = (model.dataset(files, fn_args.data_accessor, tft_output,
                                       config["batch_size"])
                         for files in (fn_args.train_files, fn_args.eval_files))
    keras_model.fit(train, epochs=config["epochs"], validation_data=evaluation, verbose=2)
    # The Constant initializer holds the matrix in the layer's config: at this size the
    # SavedModel's metadata passes protobuf's 2 GB limit and save fails. Users then drop it.
    embedding.embeddings_initializer = tf_keras.initializers.get("uniform")
    keras_model.save(fn_args.serving_model_dir, save_format="tf",
                     signatures=model.serving_signatures(keras_model, tft_output))

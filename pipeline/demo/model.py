"""The text classifier and the Trainer's run_fn.

Embedding (mask_zero, restored from the EmbeddingGen checkpoint) -> GlobalAveragePooling1D ->
Dense(16, relu) -> Dense(1). The exported SavedModel takes raw inputs: `serving_default` parses
serialized tf.Examples, `predict_text` takes a batch of strings; both run the Transform graph.
"""

import dataclasses
import json
import logging
import os

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from tfx_bsl.public import tfxio

import tfx_embeddings

from ...components import progress
from ...components.embedding_trainer import warmstart
from . import preprocessing

METRICS_FILE = "metrics.json"


def build_model(embedding, max_tokens, optimizer):
    """The classifier over an embedding layer, compiled with optimizer."""
    token_ids = tf_keras.Input(shape=(max_tokens,), dtype=tf.int64,
                               name=preprocessing.TOKEN_IDS_KEY)
    x = embedding(token_ids)
    x = tf_keras.layers.GlobalAveragePooling1D()(x)
    x = tf_keras.layers.Dense(16, activation="relu")(x)
    logits = tf_keras.layers.Dense(1)(x)
    model = tf_keras.Model(token_ids, logits)
    model.compile(optimizer=optimizer,
                  loss=tf_keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[tf_keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])
    return model


def dataset(file_pattern, data_accessor, tft_output, batch_size):
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=preprocessing.LABEL_KEY,
                                       num_epochs=1, shuffle_seed=0),
        tft_output.transformed_metadata.schema)


def _embedding_layer(config, tft_output, base_model):
    uri = config[tfx_embeddings.EMBEDDING_URI_KEY]
    if config.get("embedding_init", "pretrained") == "pretrained":
        return tfx_embeddings.pretrained_embedding(
            uri, transform_output=tft_output, vocabulary_name=preprocessing.VOCABULARY_NAME,
            trainable=config.get("trainable_embedding", True), base_model=base_model)
    rows, dimension = tfx_embeddings.EmbeddingArtifact(uri).manifest.shape  # Random rows.
    tf_keras.utils.set_random_seed(0)
    return tf_keras.layers.Embedding(rows, dimension, mask_zero=True, name="embedding")


def serving_signatures(model, tft_output):
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    raw_spec.pop(preprocessing.LABEL_KEY, None)

    def probabilities(raw_features):
        transformed = model.tft_layer(raw_features)
        return tf.sigmoid(model(transformed[preprocessing.TOKEN_IDS_KEY]))[:, 0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return {"outputs": probabilities(tf.io.parse_example(serialized, raw_spec))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def predict_text(text):
        return {"probabilities": probabilities({preprocessing.TEXT_KEY: text})}

    return {"serving_default": serve_examples, "predict_text": predict_text}


def run_fn(fn_args):
    """TFX Trainer entry point; custom_config comes from the pipeline config's trainer section."""
    config = fn_args.custom_config
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    train = dataset(fn_args.train_files, fn_args.data_accessor, tft_output, config["batch_size"])
    evaluation = dataset(fn_args.eval_files, fn_args.data_accessor, tft_output,
                          config["batch_size"])
    tf_keras.utils.set_random_seed(0)
    pretrained = config.get("embedding_init", "pretrained") == "pretrained"
    base_model = fn_args.base_model if pretrained else None
    embedding = _embedding_layer(config, tft_output, base_model)
    # LazyAdam: the embedding's update touches the rows a batch looks up, not the vocabulary.
    model = build_model(embedding, config["max_tokens"],
                        tfx_embeddings.LazyAdam(config["learning_rate"]))
    warm_start = getattr(embedding, "warm_start", None)
    if base_model and warm_start and warm_start.previous_model:
        warm_start = dataclasses.replace(warm_start, other_weights=len(
            warmstart.restore_matching_weights(model, base_model, embedding)))
    epochs = config["epochs"]
    history = model.fit(train, epochs=epochs, validation_data=evaluation, verbose=2, callbacks=[
        tf_keras.callbacks.TensorBoard(log_dir=os.path.join(fn_args.model_run_dir, "logs")),
        tf_keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: progress.report(
            "epoch %d/%d: loss %.4f, eval accuracy %.3f", epoch + 1, epochs, logs["loss"],
            logs["val_accuracy"]))])
    loss, accuracy = model.evaluate(evaluation, verbose=0)
    metrics = {"eval_accuracy": float(accuracy), "eval_loss": float(loss),
               "eval_accuracy_by_epoch": [float(a) for a in history.history["val_accuracy"]],
               "eval_loss_by_epoch": [float(a) for a in history.history["val_loss"]],
               "embedding_init": config.get("embedding_init", "pretrained"),
               "warm_start": warm_start and dataclasses.asdict(warm_start),
               "epochs": epochs}
    logging.info("Trainer: %s", metrics)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)
    # Without the optimizer: Evaluator's Beam workers load the model without importing this
    # package, so a custom optimizer would not deserialize there, and serving has no use for it.
    model.save(fn_args.serving_model_dir, save_format="tf", include_optimizer=False,
               signatures=serving_signatures(model, tft_output))
    if pretrained:  # What the next scheduled run warm-starts from.
        tfx_embeddings.export_trained_embedding(
            embedding.partitions, config[tfx_embeddings.EMBEDDING_URI_KEY],
            os.path.dirname(fn_args.serving_model_dir), warm_start)

"""Generates the shipped sample: a labelled review corpus and a GloVe-format vector file.

The sample is built to show why pretrained vectors exist. Sentiment is carried by adjectives.
The train split states it with a few common adjectives; the eval split with rare adjectives the
train split never uses. The vocabulary is computed over the text of both splits (labels are not
used), so the rare adjectives have rows, but training never updates them: a randomly initialized
model is left guessing on eval, while the pretrained vectors already place every positive
adjective near the others.

The vectors cover most of the vocabulary, not all: names and typos in the corpus have no vector,
and the file also holds words the corpus never uses, as real vector files do.

    python -m tfx_embeddings.pipeline.demo.sample_data --out data/sample
"""

import argparse
import csv
import os

import numpy as np

DIM = 50
_NOUNS = ("movie film story plot acting script ending cast scene soundtrack director dialogue "
          "camera pacing performance sequel premise finale villain hero").split()
_FILLER = ("the a this that it was is felt seemed really quite very so and but with of in "
           "overall honestly frankly maybe simply truly rather somewhat also").split()
# Tokens of the corpus that no vector file would know: names, typos.
_UNKNOWN = ("zorblax kwendy mcfadgen qorvath tiltbury brannoch okeefe vantrell "
            "moviee flim actng sceen plott endinng dirctor casst").split()


def _words(prefix, n):
    # Pronounceable made-up adjectives, distinct per prefix: "bri-", "dul-"...
    syllables = "ka lo mi ne ru sa ti vo ze pa".split()
    return [prefix + syllables[i % 10] + syllables[(i // 10) % 10] + ("x" * (i // 100))
            for i in range(n)]


def _review(rng, pos_words, neg_words, label, n_sentiment):
    words = pos_words if label else neg_words
    parts = []
    for _ in range(n_sentiment):
        parts += [str(rng.choice(_FILLER)), str(rng.choice(_NOUNS)), str(rng.choice(_FILLER)),
                  str(rng.choice(words))]
    parts += [str(w) for w in rng.choice(_FILLER, size=rng.integers(2, 6))]
    if rng.random() < 0.3:
        parts.insert(int(rng.integers(len(parts))), str(rng.choice(_UNKNOWN)))
    text = " ".join(parts)
    # Exercise standardization: capitals, punctuation, HTML line breaks.
    text = text[0].upper() + text[1:]
    if rng.random() < 0.3:
        cut = int(rng.integers(1, len(parts)))
        text = " ".join(parts[:cut]) + ". <br /><br />" + " ".join(parts[cut:]).capitalize()
    return text + str(rng.choice(["!", ".", "...", "?!"]))


def write_sample(out_dir, n_train=2000, n_eval=1000, seed=7):
    """Writes corpus/{train,eval}/*.csv and vectors/glove.sample.50d.txt under out_dir."""
    rng = np.random.default_rng(seed)
    common_pos, common_neg = _words("bri", 6), _words("dul", 6)
    rare_pos, rare_neg = _words("fel", 120), _words("gri", 120)

    train_rows = []
    for _ in range(n_train):
        label = int(rng.random() < 0.5)
        train_rows.append((_review(rng, common_pos, common_neg, label, 2), label))
    rng.shuffle(train_rows)
    eval_rows = []
    for _ in range(n_eval):
        label = int(rng.random() < 0.5)
        eval_rows.append((_review(rng, rare_pos, rare_neg, label, 2), label))

    for split, rows in (("train", train_rows), ("eval", eval_rows)):
        os.makedirs(os.path.join(out_dir, "corpus", split), exist_ok=True)
        with open(os.path.join(out_dir, "corpus", split, f"{split}.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)

    # Vectors: sentiment words lie along +/- one direction, everything else is noise around zero.
    direction = rng.standard_normal(DIM)
    direction /= np.linalg.norm(direction)
    entries = []
    for words, sign in ((common_pos + rare_pos, 1.0), (common_neg + rare_neg, -1.0)):
        for word in words:
            entries.append((word, sign * 2.0 * direction + rng.normal(0, 0.25, DIM)))
    extra = _words("ho", 300)  # Words the corpus never uses.
    for word in _NOUNS + _FILLER + extra:
        entries.append((word, rng.normal(0, 0.3, DIM)))
    order = rng.permutation(len(entries))
    os.makedirs(os.path.join(out_dir, "vectors"), exist_ok=True)
    with open(os.path.join(out_dir, "vectors", "glove.sample.50d.txt"), "w") as f:
        for i in order:
            word, vector = entries[i]
            f.write(word + " " + " ".join(f"{x:.5f}" for x in vector.astype(np.float32)) + "\n")


def add_train_rows(out_dir, n, seed=8, name="more.csv"):
    """Adds a file of n new train reviews (the train split's adjectives) next to the sample's
    train split: new data for a scheduled run to read. Returns its path."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = int(rng.random() < 0.5)
        rows.append((_review(rng, _words("bri", 6), _words("dul", 6), label, 2), label))
    path = os.path.join(out_dir, "corpus", "train", name)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/sample")
    parser.add_argument("--n_train", type=int, default=2000)
    parser.add_argument("--n_eval", type=int, default=1000)
    args = parser.parse_args()
    write_sample(args.out, args.n_train, args.n_eval)


if __name__ == "__main__":
    main()

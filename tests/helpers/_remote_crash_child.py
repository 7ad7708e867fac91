"""The run killed by tests/promises/test_reliability_crash.py: a BAR fit over HTTP with a checkpoint and a cache.

Not a test module. :func:`main` is the child process (started from a forkserver that has
imported this module once, so each child starts in milliseconds); the API key comes from the
environment (``CLARIFAI_PAT``), as a user would set it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from sklearn.datasets import load_breast_cancer

from bar_sdk import BARClassifier
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy
from bar_sdk.adapters.server import DemoModel

SHAPE = (1, 8, 8)
LABELS = list(DemoModel(SHAPE, n_classes=6).labels)
# 16 steps of 30 and the mapping pass: 520 of 600, so a crash's lost step (counted as spent) leaves the
# program unchanged; tests/promises/test_crash_resume.py kills a run whose budget binds
BAR = dict(max_queries=600, max_epochs=4, batch_size=10, n_directions=2, smoothing=0.1, random_state=3)
REMOTE = dict(
    model_id="demo",
    labels=LABELS,
    input_shape=SHAPE,
    batch_size=4,
    max_concurrency=2,
    retry=RetryPolicy(initial=0.002, maximum=0.02, jitter=0.002, max_attempts=15, random_state=0),
)


def data():
    d = load_breast_cancer()
    return d.data[:40], d.target[:40]


def fit(base_url, cache_dir=None, checkpoint=None):
    with RemoteModel.from_preset("clarifai", base_url=base_url, cache_dir=cache_dir, **REMOTE) as model:
        clf = BARClassifier(model, checkpoint=checkpoint, **BAR).fit(*data())
    return clf, model


def main(base_url, cache_dir, checkpoint, key):
    os.environ["CLARIFAI_PAT"] = key
    fit(base_url, cache_dir, checkpoint)

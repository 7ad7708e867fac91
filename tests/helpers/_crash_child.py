"""Child process for the SIGKILL tests: fit with a checkpoint, log every image sent.

Usage: python _crash_child.py CHECKPOINT LOG [SLEEP_SECONDS [binding]]

Prints ``repr((theta hex, queries_))``. By default the budget does not bind (``max_epochs``
ends the run first); with ``binding`` it does (``BINDING``: 64 steps fill max_queries).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _models import fresh_linear  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402

from bar_sdk import BARClassifier  # noqa: E402

# 300 rows, batch 20, 120 images a step: three epochs (45 steps) cost 5,700 of 8,000
PARAMS = dict(max_queries=8000, max_epochs=3, batch_size=20, random_state=7, mapping="iterative")
# the same without max_epochs: 300 + 64 steps = 7,980 of 8,000, the budget binds
BINDING = {k: v for k, v in PARAMS.items() if k != "max_epochs"}


def data():
    d = load_breast_cancer()
    return d.data[:300], d.target[:300]


class Logged:
    """Counts every image on disk (appended before the answer returns), optionally slowly."""

    def __init__(self, log, delay):
        self.inner = fresh_linear()
        self.n_classes, self.input_shape = self.inner.n_classes, self.inner.input_shape
        self.log, self.delay = log, delay

    def predict_proba(self, x):
        with open(self.log, "a") as fh:
            fh.write(f"{len(x)}\n")
        time.sleep(self.delay)
        return self.inner.predict_proba(x)


if __name__ == "__main__":
    ckpt, log = sys.argv[1], sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    params = BINDING if sys.argv[4:] == ["binding"] else PARAMS
    X, y = data()
    clf = BARClassifier(Logged(log, delay), checkpoint=ckpt, **params).fit(X, y)
    print(repr((clf.theta_.tobytes().hex(), clf.queries_)))

"""How much of a default fit's SDK overhead is the readout's choice of C (results/overhead_check.md).

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/overhead_c_search.py

Three default fits on BreastMNIST (20k queries, the trained CIFAR-subset CNN) through the stopwatch of
``reprogram_medmnist.py --only overhead``, with ``bar_sdk.mapping.choose_readout_C`` timed inside them.
Prints each fit's time outside the model, the C search's share of it, and the overhead ratio with and
without the C search.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import common  # noqa: E402
import reprogram_medmnist as rm  # noqa: E402

import bar_sdk.mapping as mapping  # noqa: E402
from bar_sdk import BARClassifier  # noqa: E402


def main(fits: int = 3) -> None:
    model, _ = common.source_model(common.DEFAULT_DATA_DIR, common.TRAINED_SOURCE_CONFIG)
    train = rm.tasks(common.DEFAULT_DATA_DIR, False)["breastmnist"][0]
    spent = [0.0]
    choose = mapping.choose_readout_C

    def timed_choose(*args, **kwargs):
        started = time.perf_counter()
        try:
            return choose(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    mapping.choose_readout_C = timed_choose  # LogisticReadout.fit looks it up in the module at call time
    for _ in range(fits):
        spent[0] = 0.0
        timed = rm.TimedModel(model)
        started = time.perf_counter()
        BARClassifier(timed, max_queries=20_000, random_state=0).fit(*train)
        outside = time.perf_counter() - started - timed.seconds
        print(
            f"outside the model {outside:.3f} s, of which the C search {spent[0]:.3f} s; "
            f"ratio {outside / timed.seconds:.3f}, without the C search {(outside - spent[0]) / timed.seconds:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

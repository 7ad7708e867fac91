"""
Audit a vendor model and read the report
========================================

Before you build on a vendor's classifier, or before you ship one, you want to know how easily a
small change of the input flips its answer, and what finding that out costs in queries. An audit
runs query-counted black-box attacks against the model at several perturbation budgets ``eps`` and
writes a report: accuracy under attack, attack success, the queries an attacker needed, the bill.

The vendor here is a logistic regression on scikit-learn's digits served on loopback in Clarifai's
format; the audit talks to it only over HTTP, exactly as it would to the real API.
"""

# %%
# The vendor model, behind its API
# --------------------------------
import json
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from bar_sdk.adapters import RemoteModel, SklearnModel
from bar_sdk.adapters.nets import digits_images
from bar_sdk.adapters.server import serve
from bar_sdk.audit import audit  # the function: type checkers cannot see that the module is callable
from bar_sdk.plan import plan_audit

x, y = digits_images(16)
concepts = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
vendor = SklearnModel(
    LogisticRegression(max_iter=300).fit(x[200:].reshape(len(x) - 200, -1), y[200:]),
    input_shape=(1, 16, 16),
    labels=concepts,
)

stack = ExitStack()  # in a script: ``with serve(...) as server:``
server = stack.enter_context(serve(vendor, preset="clarifai", api_keys=["audit-key"], rate_limit=1_000))
api = RemoteModel.from_preset(
    "clarifai",
    base_url=server.base_url,
    api_key="audit-key",
    model_id="digits",
    labels=concepts,
    input_shape=(1, 16, 16),
    max_queries=20_000,
    price_per_query=0.0015,
)

# %%
# What the audit may cost, before it runs
# ---------------------------------------
# Twenty held-out images, two attacks (Square Attack on the scores, HopSkipJump on the labels
# alone), two budgets, at most 100 queries per image and run. :func:`~bar_sdk.plan.plan_audit`
# gives the upper bound; the audit itself refuses bad arguments before its first query.
x_audit, y_audit = x[:20], y[:20]
attacks, eps, cap = ["square", "hopskipjump"], [0.05, 0.15], 100
print(plan_audit(api, len(x_audit), attacks=attacks, eps=eps, max_queries=cap))

# %%
# Run it
# ------
out_dir = Path(tempfile.mkdtemp(prefix="bar-audit-"))
report = audit(
    api,
    x_audit,
    y_audit,
    attacks=attacks,
    eps=eps,
    max_queries=cap,
    out_dir=out_dir,
    price_per_query=0.0015,
    random_state=0,
)
stack.close()

# %%
# Reading the report
# ------------------
# ``clean_accuracy`` is the share of the images the model gets right with no attack; every other
# rate is taken over those. ``robust_accuracy[attack][i]`` is the accuracy left under that attack
# at ``eps[i]``; the row ``"any attack"`` counts an image as robust only if *every* attack failed on
# it, the number to quote. ``success_rate`` is the share of correctly classified images the attack
# fooled, and ``median_queries`` what a successful attack needed: a low number means a cheap
# attack. ``total_queries`` is every image sent, clean checks included, and ``cost`` its price.
print(f"clean accuracy {report.clean_accuracy:.2f} on {report.n_samples} images")
for attack, rates in report.robust_accuracy.items():
    cells = ", ".join(f"eps={e:g}: {r:.2f}" for e, r in zip(report.eps, rates, strict=True))
    print(f"robust accuracy, {attack:>12}: {cells}")
for attack in report.success_rate:
    print(f"{attack:>12}: success {report.success_rate[attack]}, median queries {report.median_queries[attack]}")
print(f"{report.total_queries:,} images sent (the API billed {api.ledger.billed:,}), cost ${report.cost:.2f}")
assert report.total_queries <= api.ledger.billed + api.ledger.cache_hits

# %%
# Each run keeps its per-image results: how many queries each image took and whether it was fooled.
square = report.results["square"][-1]
print(
    f"square at eps={report.eps[-1]:g}: fooled {int(np.sum(square.success))} of {len(square.success)}, "
    f"queries per image {square.queries.tolist()}"
)

# %%
# The files: ``report.json`` (the numbers above), ``report.md`` (the same in plain words, for the
# people who decide) and the plots (success against queries, accuracy against ``eps``, examples).
print(sorted(report.files))
print(json.dumps(json.loads((out_dir / "report.json").read_text())["robust_accuracy"], indent=1))
print((out_dir / "report.md").read_text()[:1500])

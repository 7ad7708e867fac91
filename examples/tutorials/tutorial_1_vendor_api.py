"""
Reprogram a vendor API for a medical task
=========================================

You can only *query* a vendor's image classifier, and you have a small labelled dataset for a
different task: breast-cancer diagnosis. This tutorial walks the whole job the way you would run it
for money:

1. **rehearse** against a local server that speaks the vendor's format (same requests, an API key,
   a rate limit and injected faults), so every mistake is free;
2. **plan** the bill before a single query;
3. run with a **hard budget**, a **checkpoint** and an answer **cache**: the budget runs out halfway,
   you top it up, and the run resumes without paying twice;
4. write a **report**.

For the paid run you change two lines: the server's ``base_url`` and ``api_key`` become the vendor's.
Here the "vendor model" is a logistic regression trained on scikit-learn's digits, so this page
builds in seconds; the same code runs against EfficientNet-Lite0 (``bar serve --model
efficientnet-lite0``) or a real Clarifai account.
"""

# %%
# The vendor's model and your task
# --------------------------------
# Any object with ``predict_proba``, ``n_classes`` and ``input_shape`` is a model; here a
# scikit-learn classifier of 16 x 16 digits, whose answers are named concepts like a vendor's.
import tempfile
from contextlib import ExitStack
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from bar_sdk import BARClassifier, QueryBudgetExceeded
from bar_sdk.adapters import RemoteModel, SklearnModel
from bar_sdk.adapters.nets import digits_images
from bar_sdk.adapters.server import Faults, serve
from bar_sdk.plan import plan_bar
from bar_sdk.reporting.files import write_json
from bar_sdk.reporting.plots import plot_learning_curve

x_digits, y_digits = digits_images(16)
concepts = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
vendor = SklearnModel(
    LogisticRegression(max_iter=300).fit(x_digits.reshape(len(x_digits), -1), y_digits),
    input_shape=(1, 16, 16),
    labels=concepts,
)

# Your task: 30 tabular features per patient (benign or malignant), laid out as a patch in the frame.
data = load_breast_cancer()
X_train, X_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.3, stratify=data.target, random_state=0
)
work = Path(tempfile.mkdtemp(prefix="bar-tutorial-"))

# %%
# Rehearsal: the vendor's API on loopback
# ---------------------------------------
# :func:`bar_sdk.adapters.server.serve` answers in Clarifai's format on 127.0.0.1, checks the API
# key, limits the rate and answers 5% of requests with 429 and 2% with 500, as real APIs do. It
# also counts what it bills, so you can check your own ledger against it.
#
# :class:`~bar_sdk.adapters.RemoteModel` is the client you will use for the paid run: it rounds
# each image to 8 bits, sends it as lossless PNG, retries 429/5xx under an explicit stop, and
# refuses any batch that would cross ``max_queries`` *before* it leaves.
# (In a script, ``with serve(...) as server:`` around the run; the page splits it into cells, so
# an ExitStack holds it open until the end.)
stack = ExitStack()
server = stack.enter_context(
    serve(
        vendor,
        preset="clarifai",
        api_keys=["rehearsal-key"],
        rate_limit=500,
        faults=Faults(rate_429=0.05, rate_500=0.02),
    )
)


def vendor_api(max_queries):
    """The client; for the paid run: base_url="https://api.clarifai.com", api_key=None (read from BAR_API_KEY)."""
    return RemoteModel.from_preset(
        "clarifai",
        base_url=server.base_url,
        api_key="rehearsal-key",
        model_id="general-image-recognition",
        labels=concepts,
        input_shape=(1, 16, 16),
        max_queries=max_queries,
        price_per_query=0.0015,
        cache_dir=work / "cache",
    )


print(server)
print(vendor_api(10))  # the key prints as ***

# %%
# The bill, before any query
# --------------------------
# :func:`~bar_sdk.plan.plan_bar` walks the rules ``fit`` follows (mapping pass, training steps,
# readout pass, then predictions) and prints the images, requests, dollars and hours.
clf = BARClassifier(vendor_api(10), max_queries=1_500, batch_size=10, random_state=0, checkpoint=work / "bar.ckpt")
print(plan_bar(clf, X_train, n_eval=len(X_test), rate_limit=10))  # at the vendor's 10 requests/s

# %%
# A run that hits the API budget
# ------------------------------
# The API's own cap (``max_queries`` of the client, 800 images) is set lower than what training
# needs. The client refuses the batch that would cross it, :class:`~bar_sdk.QueryBudgetExceeded`
# says how many images had left, and the checkpoint holds every step paid for.
api = vendor_api(800)
clf.set_params(model=api)
try:
    clf.fit(X_train, y_train)
except QueryBudgetExceeded as exc:
    print("stopped:", exc)
print(f"billed {api.ledger.billed} images, ${api.ledger.cost:.2f}; server billed {server.billed}")

# %%
# Top up and resume
# -----------------
# A new client with a larger cap, the same ``cache_dir`` and the same checkpoint: ``fit`` resumes
# from the last saved step, and the mapping pass is not paid again. The client's ledger lives in
# ``cache_dir`` beside the answers it paid for, so it counts both runs: the cap of 2,500 holds for
# the whole job, across the interruption.
api = vendor_api(2_500)
clf.set_params(model=api)
clf.fit(X_train, y_train)
accuracy = clf.score(X_test, y_test)
print(f"test accuracy {accuracy:.3f}; stop reason: {clf.stop_reason_}")
print(
    f"the client's ledger: {api.ledger.billed} images billed in both runs, ${api.ledger.cost:.2f}, "
    f"{api.ledger.cache_hits} answered from the cache; the server billed {server.billed}"
)
print("every image the estimator sent, by purpose:", clf.ledger_.by_purpose)
assert server.billed <= 2_500  # the cap held on what the vendor counted

# %%
# The report
# ----------
# A JSON document with what the run cost and scored, and the learning curve.
report = {
    "test_accuracy": accuracy,
    "fit_queries": clf.queries_,
    "billed": api.ledger.billed,
    "dollars": api.ledger.cost,
    "by_purpose": clf.ledger_.by_purpose,
    "stop_reason": clf.stop_reason_,
}
print(write_json(work / "report.json", report).read_text())
plot_learning_curve(work / "learning_curve.png", clf.history_, title="BAR through the vendor API")
stack.close()  # stops the server

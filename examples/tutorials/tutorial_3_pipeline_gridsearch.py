"""
BAR inside a scikit-learn Pipeline, tuned by grid search
========================================================

:class:`~bar_sdk.BARClassifier` is a scikit-learn estimator: it clones, sits at the end of a
:class:`~sklearn.pipeline.Pipeline`, and :class:`~sklearn.model_selection.GridSearchCV` tunes the
preprocessing and BAR's own parameters together by cross-validation.

Mind the bill: every candidate on every fold is a separate ``fit`` with its own ``max_queries``,
and scoring each fold queries the model too. A search costs many fits; this page counts every image
the model answered, so you see what a search would cost before you point it at a paid API.
"""

# %%
# The model you can only query, counted
# -------------------------------------
# ``GridSearchCV`` clones the estimator, and a clone deep-copies its model, so a counter kept
# *inside* the model would be copied too. The count lives in a function the model calls (functions
# are copied by reference), so every clone adds to the same tally.
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bar_sdk import BARClassifier
from bar_sdk.adapters import CallableModel, SklearnModel
from bar_sdk.adapters.nets import digits_images

x_digits, y_digits = digits_images(16)
vendor = SklearnModel(
    LogisticRegression(max_iter=300).fit(x_digits.reshape(len(x_digits), -1), y_digits), input_shape=(1, 16, 16)
)
tally = {"images": 0, "calls": 0}


def query(batch):
    tally["images"] += len(batch)
    tally["calls"] += 1
    return vendor.predict_proba(batch)


model = CallableModel(query, n_classes=10, input_shape=(1, 16, 16))

# %%
# The task and the pipeline
# -------------------------
# Wine cultivars (three classes, 13 chemical measurements): standardised, reduced by PCA, then
# laid out by BAR as a patch in the model's input frame.
X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
pipe = make_pipeline(StandardScaler(), PCA(random_state=0), BARClassifier(model, max_queries=600, random_state=0))
print(pipe)

# %%
# The search
# ----------
# Two PCA sizes times two learning rates, two folds: 8 fits, then one refit of the best on all
# the training data. ``n_jobs=1``: the counter above lives in this process (for workers sharing one
# budget, see ``bar_sdk.adapters.ray.PerProcessModel`` and a shared ledger).
grid = {"pca__n_components": [4, 10], "barclassifier__learning_rate": [0.05, 0.2]}
search = GridSearchCV(
    pipe, grid, cv=StratifiedKFold(2, shuffle=True, random_state=0), scoring="balanced_accuracy", n_jobs=1
)
search.fit(X_train, y_train)

for params, mean, std in zip(
    search.cv_results_["params"],
    search.cv_results_["mean_test_score"],
    search.cv_results_["std_test_score"],
    strict=True,
):
    print(f"{params}: balanced accuracy {mean:.3f} +/- {std:.3f}")
print("best:", search.best_params_)

# %%
# The result and what it cost
# ---------------------------
searched = tally["images"]
score = search.score(X_test, y_test)
best = search.best_estimator_[-1]
print(f"test balanced accuracy {score:.3f} (chance: {1 / 3:.3f})")
print(f"the refit used {best.queries_} queries; by purpose: {best.ledger_.by_purpose}")
fits = len(search.cv_results_["params"]) * search.n_splits_ + 1
print(
    f"the search sent {searched:,} images in {tally['calls']:,} calls: {fits} fits of at most 600 "
    f"queries each plus the scoring of every fold; the test score sent {tally['images'] - searched} more"
)
n_candidates = len(search.cv_results_["params"])
# each fit stays within its 600; scoring shows each training sample once per candidate (in its test fold)
assert searched <= fits * 600 + n_candidates * len(X_train)
assert tally["images"] - searched == len(X_test)
print(
    "learning curve of the refit (queries, minibatch accuracy):",
    [(int(q), round(float(a), 2)) for q, a in zip(best.history_["queries"], best.history_["accuracy"], strict=True)],
)

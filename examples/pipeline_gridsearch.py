"""BARClassifier inside a scikit-learn Pipeline, tuned with GridSearchCV, with every query counted.

BARClassifier is a scikit-learn estimator: it clones, takes part in a
Pipeline, and GridSearchCV can tune it with cross-validation. Each
candidate on each fold is a separate fit with its own max_queries, and
cross-validation scoring queries the model too, so a search costs far more
than one fit: the count below is what you would pay.

Run: python examples/pipeline_gridsearch.py   (about 30 s on 2 cores)
"""

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline

from bar_sdk import BARClassifier
from bar_sdk.adapters import CallableModel, TorchModel
from bar_sdk.adapters.nets import SmallCNN, digits_images, train_classifier

# 1. The model you can only query: a small CNN trained on scikit-learn's digits.
x, y = digits_images(16)
net = TorchModel(
    train_classifier(SmallCNN(1, 10, 16), x, y, epochs=8, lr=3e-3, batch_size=64, random_state=0),
    input_shape=(1, 16, 16),
)

# GridSearchCV clones the estimator, and cloning deep-copies its model; the counter lives in
# a function (copied by reference), so every copy adds to the same bill.
answered = {"images": 0}


def api(batch):
    answered["images"] += len(batch)
    return net.predict_proba(batch)


model = CallableModel(api, n_classes=10, input_shape=(1, 16, 16))

# 2. The new task: 30 tabular features (breast-cancer diagnosis), laid out as a patch in the frame.
data = load_breast_cancer()
X_train, X_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.3, stratify=data.target, random_state=0
)

# 3. Feature selection then BAR, tuned together by 3-fold cross-validation.
pipe = Pipeline([("select", SelectKBest(f_classif)), ("bar", BARClassifier(model, max_queries=4_000, random_state=0))])
grid = {"select__k": [10, 30], "bar__learning_rate": [0.05, 0.2]}
search = GridSearchCV(pipe, grid, cv=3, scoring="balanced_accuracy", n_jobs=1).fit(X_train, y_train)

print("cross-validated balanced accuracy per candidate:")
for params, mean in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True):
    print(f"  {params}: {mean:.3f}")
best = search.best_estimator_.named_steps["bar"]
print(f"best: {search.best_params_}")
print(f"test balanced accuracy {search.score(X_test, y_test):.3f}; the final refit used {best.queries_} queries")
fits = len(search.cv_results_["params"]) * search.n_splits_ + 1
print(
    f"the search sent {answered['images']:,} images to the model: {fits} fits of at most 4,000 queries each, "
    f"plus cross-validation scoring and the final test ({np.asarray(X_test).shape[0]} images)"
)

"""Reprogram a digits CNN for breast-cancer diagnosis, querying it only through predict_proba.

Run: python examples/quickstart.py   (about 15 s on 2 cores)
"""

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from bar_sdk import BARClassifier
from bar_sdk.adapters import TorchModel
from bar_sdk.adapters.nets import SmallCNN, digits_images, train_classifier

# 1. A source model: a small CNN trained on scikit-learn's digits (it stands for a model you can only query).
x, y = digits_images(16)
net = train_classifier(SmallCNN(1, 10, 16, random_state=0), x, y, epochs=8, lr=3e-3, batch_size=64, random_state=0)
model = TorchModel(net, input_shape=(1, 16, 16))

# 2. A different task: 30 tabular features, laid out as a patch inside the program's frame.
data = load_breast_cancer()
X_train, X_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.3, stratify=data.target, random_state=0
)

# 3. Black-box reprogramming under a hard query budget.
clf = BARClassifier(model, max_queries=60_000, random_state=0, verbose=True).fit(X_train, y_train)
print(
    f"test accuracy {clf.score(X_test, y_test):.3f} after {clf.queries_} queries "
    f"({clf.n_steps_} steps; mapping: {clf.mapping_.describe()})"
)
print("every image sent, by purpose:", clf.ledger_.by_purpose)

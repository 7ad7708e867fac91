"""Package list for setuptools; all other metadata lives in pyproject.toml.

The repository keeps the model adapters in the top-level folder ``adapters/``, but they install as
``bar_sdk.adapters``: a top-level ``adapters`` package would collide with the unrelated PyPI package of
that name (AdapterHub's), which transfer-learning users often have installed.
"""

from setuptools import find_packages, setup

CORE = find_packages(include=["bar_sdk", "bar_sdk.*"])
ADAPTERS = ["bar_sdk.adapters"] + [f"bar_sdk.adapters.{name}" for name in find_packages("adapters")]

setup(
    packages=CORE + ADAPTERS,
    package_dir={"bar_sdk.adapters": "adapters"},
    package_data={"bar_sdk": ["py.typed"], "bar_sdk.adapters": ["py.typed"]},
)

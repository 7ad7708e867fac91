"""Reports: every file the package writes for a person, in one place.

- :mod:`bar_sdk.reporting.files`: the output folder (checked before any query) and JSON documents;
- :mod:`bar_sdk.reporting.plots`: every plot, and the one rule for a missing matplotlib
  (:func:`~bar_sdk.reporting.plots.check_plots` refuses a report that needs plots before any query;
  :func:`~bar_sdk.reporting.plots.pyplot` raises :class:`~bar_sdk.errors.MissingDependencyError` naming
  ``pip install 'bar-sdk[report]'`` where a plot is drawn directly);
- :mod:`bar_sdk.reporting.audit`: the audit's ``report.json``, ``report.md`` and plots;
- :mod:`bar_sdk.reporting.transfer`: a transfer matrix's rows, JSON document, CSV and saved folder.
"""

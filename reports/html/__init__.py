"""`funnel report --html FILE`: every report in one self-contained HTML page (issue #17).

- :mod:`reports.html.fmt`: numbers, percentages, durations and money per locale (money
  through :func:`reports.money.format_money`, as the terminal tables show it);
- :mod:`reports.html.svg`: the chart primitives, each drawing one inline ``<svg>``;
- :mod:`reports.html.data`: everything the page shows, read through the report readers
  (``reports/queries.py``, ``reports/attribution.py``, ``reports/experiment_readout.py``);
- :mod:`reports.html.page`: the sections and the page around them.

The page needs no network and no script: the charts are SVG drawn here, the style sheet
is inline.
"""

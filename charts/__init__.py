"""Presentation shared by the monitor and the reports: what a chart of a run shows, apart from Dash or HTML.

- :mod:`charts.palette`: one colour per message type, the same in every chart of both products;
- :mod:`charts.spectrum`: the percentile-spectrum grid and its ``1 / (1 - p)`` axis;
- :mod:`charts.windows`: time windows chosen from a run's length (a bounded number of points per trace);
- :mod:`charts.server`: what an operator reads from scraped Prometheus samples (counter rates, percentiles
  from histogram buckets, gauges).

Everything here is pure: numbers and names in, numbers and names out.
"""

"""Scraping the target's Prometheus ``/metrics`` once a second, into the run store beside the client view.

Each scrape becomes ``{sample name with labels: value}`` (``wsgauge_frames_in_total{type="ping"}``), the
run store's ``server_metrics`` rows. Counters stay cumulative, as the server reports them; readers take
differences. A scrape that fails or times out is skipped (the gap is visible, nothing is invented); a target
that has no ``/metrics`` at all is left alone after a few tries.
"""

from __future__ import annotations

import logging
import math

from prometheus_client.parser import text_string_to_metric_families

from loadtest._target import http_get

__all__ = ["MetricsScraper", "parse_metrics", "sample_key"]

log = logging.getLogger(__name__)


def sample_key(name: str, labels: dict[str, str]) -> str:
    """``name{a="1",b="2"}`` with labels sorted, or the bare name without labels."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


def parse_metrics(text: str) -> dict[str, float]:
    """Parse the Prometheus text format into ``{sample key: value}`` (non-finite values dropped).

    Raises:
        ValueError: if ``text`` is not in the Prometheus text format.
    """
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            value = float(sample.value)
            if math.isfinite(value):
                values[sample_key(sample.name, dict(sample.labels))] = value
    return values


class MetricsScraper:
    """Scrapes ``{http_base}/metrics``.

    Args:
        http_base: the target's HTTP base URL.
        timeout: seconds one scrape may take (keep it well under the 1 s period).
        give_up_after: consecutive failures before the scraper stops trying (``0``: never), for targets
            without ``/metrics``.
    """

    def __init__(self, http_base: str, timeout: float = 0.5, give_up_after: int = 0) -> None:
        self.url = http_base.rstrip("/") + "/metrics"
        self.timeout = timeout
        self.give_up_after = give_up_after
        self.scrapes = 0
        self.failures = 0
        self._consecutive = 0
        self.gave_up = False

    def scrape(self) -> dict[str, float] | None:
        """One scrape; ``None`` if it failed (logged once per streak of failures)."""
        if self.gave_up:
            return None
        try:
            status, body = http_get(self.url, self.timeout)
            if status != 200:
                raise OSError(f"HTTP {status}")
            values = parse_metrics(body)
        except (OSError, ValueError) as exc:
            self.failures += 1
            self._consecutive += 1
            if self._consecutive == 1:
                log.info("cannot scrape %s: %s", self.url, exc)
            if self.give_up_after and self._consecutive >= self.give_up_after:
                self.gave_up = True
                log.warning("giving up scraping %s after %d failures", self.url, self._consecutive)
            return None
        self.scrapes += 1
        self._consecutive = 0
        return values

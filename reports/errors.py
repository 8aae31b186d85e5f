"""The one exception the reports raise for input they cannot use.

Every problem a user can cause -- a file that is not a wsgauge report, a damaged data block, an unknown schema
version, a run without samples, a thresholds file that does not parse, message types present in only one run
-- is a :class:`ReportError` whose ``str()`` is a one-line reason. The command line prints it and exits 2.
"""

from __future__ import annotations

__all__ = ["ReportError"]


class ReportError(Exception):
    """Input the reports cannot use; ``str()`` names the problem in one line."""

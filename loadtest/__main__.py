"""``python -m loadtest --help``: the wsgauge options of ``locust -f loadtest``, listed for real.

Locust prints its ``--help`` before it imports the locustfiles, so the options that wsgauge adds in
``init_command_line_parser`` never appear there. This command builds a parser of the same class with the same
hook (:func:`loadtest._settings.add_arguments`), so the list cannot drift from what Locust accepts. It imports
no locustfile and starts nothing. Wsgauge options given here are checked as Locust would check them (a bad
value: usage error, exit 2), then the list is printed.

The file's name starts with ``_``: Locust's directory loading (``-f loadtest``) skips it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import configargparse
from locust.argument_parser import LocustArgumentParser

from loadtest._settings import add_arguments

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
The wsgauge options of the load test. Give them to Locust:

    locust -f loadtest [Locust options] [wsgauge options]

Every option is also read from the environment variable shown, and from Locust's config files (without the
leading dashes). Locust's own options (-u, -r, -t, --processes, --master, --headless ...) are listed by
`locust --help`."""

EPILOG = """\
Examples:

    locust -f loadtest --headless -u 20 -r 10 -t 20s
    locust -f loadtest --headless -u 200 -t 1m --host ws://127.0.0.1:8765/ws --secret S --admin-token T
    locust -f loadtest --headless -u 50 -t 30s --open-total-rate 100 --processes 2

Documentation: docs/loadtest.md."""


def build_parser() -> LocustArgumentParser:
    """A parser holding exactly the wsgauge options, registered by the hook Locust's parser gets."""
    parser = LocustArgumentParser(
        prog="python -m loadtest",
        usage="python -m loadtest [--help] [wsgauge options]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=configargparse.RawDescriptionHelpFormatter,
        add_env_var_help=True,
        add_config_file_help=False,
        default_config_files=[],
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the option list (``--help``, or no arguments); exit 2 on an unusable wsgauge option value."""
    parser = build_parser()
    parser.parse_args(list(sys.argv[1:] if argv is None else argv))  # --help prints and exits 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

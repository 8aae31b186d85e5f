"""The back end: notifications for the students at ``--notification-rate`` in total, from every process.

No Locust user is defined here: the back end is part of the target's system, not one of its users, so
``-u N`` means N students (``loadtest/_backend.py`` says how the rate is shared across workers). Loading
this file (``-f loadtest`` does) switches it on; ``--notification-rate 0`` switches it off.
"""

import loadtest._integration  # (registers the run lifecycle once, with the monitor and report)

# isort: split
import loadtest._backend  # noqa: F401  (registers the back end's listeners once, after the lifecycle's)

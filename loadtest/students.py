"""Students: stay connected, chat with their peers, read notifications, report progress, ping.

``ChurnUser`` is a student who leaves now and then and comes back to what it missed.
"""

import loadtest._integration  # noqa: F401  (registers the run lifecycle once, with the monitor and report)

# isort: split
from locust import task

from loadtest._users import WsUser  # the seed's user, on the public API (loadtest.user_api) only


class StudentUser(WsUser):
    """A student who stays connected for the whole run."""

    weight = 8

    @task
    def session(self) -> None:
        """One action (seeded choice): read a due notification, chat, report progress or ping."""
        self.student_step()


class ChurnUser(WsUser):
    """A student who leaves for about ``--churn-away`` seconds (exponential), then comes back."""

    weight = 1
    leave_probability = 0.1
    """Chance, at each action, of leaving now."""

    @task
    def session(self) -> None:
        """Act like a student, or go away for a while and come back."""
        if self.rng.random() < self.leave_probability:
            self.go_away(self.rng.expovariate(1.0 / max(self.settings.churn_away_s, 0.001)))
        else:
            self.student_step()

"""The back end: creates notifications for the students through the target's HTTP API."""

import loadtest._integration  # noqa: F401  (registers the run lifecycle once, with the monitor and report)

# isort: split
from locust import task

from loadtest._users import NotificationBackend


class BackendUser(NotificationBackend):
    """One back-end process posting ``--notification-rate`` notifications per second."""

    fixed_count = 1

    @task
    def notify(self) -> None:
        """Wait for the next scheduled send, then POST one notification."""
        if self.wait_until_next():
            self.create_notification()

"""A user-supplied load shape for the shape-run test: 2 users, then 4, then stop (about 8 s)."""

from locust import LoadTestShape


class TwoSteps(LoadTestShape):
    """Locust's usual stage-table shape."""

    stages = [
        {"duration": 3, "users": 2, "spawn_rate": 10},
        {"duration": 8, "users": 4, "spawn_rate": 10},
    ]

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        for stage in self.stages:
            if run_time < stage["duration"]:
                return stage["users"], stage["spawn_rate"]
        return None

"""The wsgauge monitor: a Dash app over the run store, live during a run and after it."""

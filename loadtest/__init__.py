"""Locust users for wsgauge (``locust -f loadtest``).

Locust imports every ``*.py`` here whose name does not start with ``_`` as a locustfile, under its bare name;
shared code lives in ``_``-prefixed modules imported absolutely (``from loadtest._client import ...``). Each
entry file imports :mod:`loadtest._integration` first: it registers the run lifecycle once and wires the
monitor and the report into it, the only place where this package reaches past the run store.

``user_api.py`` is the public API for users of any WebSocket protocol (``docs/user-api.md``); Locust loads it
too under ``-f loadtest`` and finds no user in it (only the abstract ``ProtocolUser``, imported lazily).
"""

"""The run store: per-second samples of a load run, written by ``loadtest``, read by ``monitor``/``reports``.

Data flows one way: users -> samples (:mod:`runstore.samples`) -> SQLite (:mod:`runstore.store`) ->
monitor and reports -> gate verdict.
"""

"""The run store: per-second samples of a load run, written by ``loadtest`` and read by ``monitor`` and ``reports``.

Data flows one way: users -> samples (:mod:`runstore.samples`) -> SQLite (:mod:`runstore.store`) -> monitor and
reports -> gate verdict.
"""

"""Durable storage: SQLite in WAL mode, written by one thread with group commit.

The event loop never touches SQLite. Each operation (:meth:`Store.append_message`,
:meth:`Store.mark_read`, ...) queues a job for the store thread and names a callback. The jobs
of one event-loop pass cross to the thread together, as one list (one queue hand-off per pass,
not one per job). The thread takes every pending job (up to about ``batch_max``), runs them in
one transaction, commits, and only then hands all the results back to the loop in one
``call_soon_threadsafe``; the callbacks run there in submission order. So:

* an effect is reported (and acked) only after the commit that holds it;
* results arrive in the order the work was submitted, which is also sequence order;
* many writes share one commit: throughput grows with load, latency stays about one commit.

Consecutive chat-message inserts in a batch become one multi-row ``INSERT`` (few GIL hand-offs).
If a batch fails, it is rolled back and its jobs retried one transaction each, so one bad job
cannot fail its neighbours.

Sequence numbers (``seq``) are allocated on the loop, from one counter shared by chat messages
and notifications; they order each user's inbox and back the per-user delivery cursor.

Checkpoints (copying the WAL back into the database file) run on a thread of their own every
``checkpoint_interval`` seconds, in SQLite's PASSIVE mode, which never blocks the writer: a
checkpoint of tens of megabytes takes tens of milliseconds, and inside the writer it would stall
every commit (and every ack) behind it. The writer keeps SQLite's own automatic checkpoint only
as a backstop, at ``WAL_BACKSTOP_PAGES``: under continuous writes a concurrent checkpoint never
quite finishes, and the writer's quick one (the rest is already copied) lets the WAL restart.

``synchronous=NORMAL`` (the default) survives a process crash (SIGKILL): a committed WAL frame is
in the OS page cache. Use ``synchronous="FULL"`` to survive power loss too, at an fsync per
commit. ``path=":memory:"`` keeps everything in RAM (for speed tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar

import orjson

from .messages import (
    Backlog,
    InboxEntry,
    Notification,
    ProgressRecord,
    StoredChat,
    StoredMessage,
    StoredNotification,
    encode,
)

__all__ = ["Callback", "Store", "iso_utc"]

log = logging.getLogger(__name__)

_Result = TypeVar("_Result")
#: ``callback(result, exc)``: run on the event loop after the commit. On failure ``exc`` is set
#: and ``result`` is ``None``.
Callback: TypeAlias = Callable[[_Result | None, BaseException | None], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    receiver_id TEXT NOT NULL,
    content TEXT NOT NULL,
    timestamp TEXT NOT NULL,          -- the client's value, JSON-encoded
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_receiver ON messages (receiver_id);  -- + rowid = seq
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    read INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'  -- optional fields, JSON object
);
CREATE INDEX IF NOT EXISTS notifications_by_user ON notifications (user_id, seq);
CREATE TABLE IF NOT EXISTS progress (
    user_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    topic TEXT NOT NULL,
    completion REAL NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, subject, topic)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
    user_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL              -- highest inbox seq the user confirmed reading
) WITHOUT ROWID;
"""

#: The writer's own automatic checkpoint (pages of 4 KiB): a backstop for the checkpoint thread.
WAL_BACKSTOP_PAGES = 16384

_MAX_ROWS_PER_INSERT = 4000  # 7 * 4000 < SQLite's default 32766 variables

_last_ms = -1
_last_iso = ""


def iso_utc(t: float) -> str:
    """``t`` (Unix seconds) as JavaScript's ``toISOString()`` does: ``2026-11-25T22:05:46.123Z``."""
    global _last_ms, _last_iso
    ms = int(t * 1000)
    if ms != _last_ms:  # under load many messages share a millisecond
        sec, frac = divmod(ms, 1000)
        _last_iso = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(sec))}.{frac:03d}Z"
        _last_ms = ms
    return _last_iso


def _new_progress(user_id: str, subject: str, topic: str, completion: float) -> ProgressRecord:
    """The progress record ``save_progress`` stores (both back ends), stamped now."""
    return ProgressRecord(
        user_id=user_id,
        subject=subject,
        topic=topic,
        completion=completion,
        updated_at=iso_utc(time.time()),
    )


def _new_notification(user_id: str, title: str, body: str, extra: Mapping[str, Any]) -> Notification:
    """The unread notification ``create_notification`` stores (both back ends): a fresh id, stamped now."""
    now = iso_utc(time.time())
    return Notification(
        id=str(uuid.uuid4()),
        user_id=user_id,
        title=title,
        body=body,
        read=False,
        created_at=now,
        updated_at=now,
        **extra,
    )


# -- operations run on the store thread -------------------------------------------------------
# Each takes the connection and its arguments and returns the result handed to the callback.


def _op_insert_message(db: sqlite3.Connection, item: StoredChat) -> StoredChat:
    _insert_messages(db, [item])
    return item


def _insert_messages(db: sqlite3.Connection, items: list[StoredChat]) -> None:
    for start in range(0, len(items), _MAX_ROWS_PER_INSERT):
        chunk = items[start : start + _MAX_ROWS_PER_INSERT]
        params: list[Any] = []
        for item in chunk:
            m = item.message
            params += (item.seq, m.id, m.sender_id, m.receiver_id, m.content, _dump(m.timestamp))
            params.append(m.created_at)
        sql = "INSERT INTO messages VALUES " + ",".join(["(?,?,?,?,?,?,?)"] * len(chunk))
        db.execute(sql, params)


def _dump(value: Any) -> str:
    return encode(value).decode()


def _row_to_notification(row: tuple[Any, ...]) -> Notification:
    nid, _seq, user_id, title, body, read, created_at, updated_at, extra = row
    return Notification(
        id=nid,
        user_id=user_id,
        title=title,
        body=body,
        read=bool(read),
        created_at=created_at,
        updated_at=updated_at,
        **orjson.loads(extra),
    )


def _row_to_message(row: tuple[Any, ...]) -> StoredMessage:
    _seq, mid, sender, receiver, content, ts, created_at = row
    return StoredMessage(
        id=mid,
        sender_id=sender,
        receiver_id=receiver,
        content=content,
        timestamp=orjson.loads(ts),
        created_at=created_at,
    )


def _op_mark_read(db: sqlite3.Connection, user_id: str, nid: str, now: str) -> Notification | None:
    db.execute(
        "UPDATE notifications SET read = 1, updated_at = ? WHERE id = ? AND user_id = ? AND NOT read",
        (now, nid, user_id),
    )
    row = db.execute("SELECT * FROM notifications WHERE id = ? AND user_id = ?", (nid, user_id)).fetchone()
    return None if row is None else _row_to_notification(row)


def _op_save_progress(db: sqlite3.Connection, p: ProgressRecord) -> ProgressRecord:
    db.execute(
        "INSERT INTO progress VALUES (?,?,?,?,?) ON CONFLICT (user_id, subject, topic) "
        "DO UPDATE SET completion = excluded.completion, updated_at = excluded.updated_at",
        (p.user_id, p.subject, p.topic, p.completion, p.updated_at),
    )
    return p


def _op_create_notification(db: sqlite3.Connection, item: StoredNotification) -> StoredNotification:
    n = item.notification
    db.execute(
        "INSERT INTO notifications VALUES (?,?,?,?,?,?,?,?,?)",
        (
            n.id,
            item.seq,
            n.user_id,
            n.title,
            n.body,
            int(n.read),
            n.created_at,
            n.updated_at,
            _dump(n.extra()),
        ),
    )
    return item


def _op_advance_cursor(db: sqlite3.Connection, user_id: str, seq: int) -> None:
    db.execute(
        "INSERT INTO cursors VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET seq = max(seq, excluded.seq)",
        (user_id, seq),
    )


def _op_load_backlog(db: sqlite3.Connection, user_id: str, after: int | None, limit: int) -> Backlog:
    row = db.execute("SELECT seq FROM cursors WHERE user_id = ?", (user_id,)).fetchone()
    cursor = row[0] if row else 0
    start = cursor if after is None else max(cursor, after)
    msgs: list[InboxEntry] = [
        StoredChat(r[0], _row_to_message(r))
        for r in db.execute(
            "SELECT * FROM messages WHERE receiver_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (user_id, start, limit + 1),
        )
    ]
    notes: list[InboxEntry] = [
        StoredNotification(r[1], _row_to_notification(r))
        for r in db.execute(
            "SELECT * FROM notifications WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (user_id, start, limit + 1),
        )
    ]
    merged: list[InboxEntry] = list(heapq.merge(msgs, notes, key=_seq_of))
    return Backlog(cursor, merged[:limit], more=len(merged) > limit)


def _seq_of(entry: InboxEntry) -> int:
    return entry.seq


def _op_query(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return db.execute(sql, params).fetchall()


_STOP = object()


class _Checkpointer:
    """Runs PASSIVE WAL checkpoints on its own connection and thread, off the writer's path."""

    def __init__(self, path: str, interval: float) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wsgauge-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.warning("checkpoint thread cannot open %s: %r", self._path, exc)
            return
        try:
            db.execute("PRAGMA busy_timeout=1000")
            while not self._stop.wait(self._interval):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # e.g. busy: the next round catches up
                    log.debug("checkpoint skipped: %r", exc)
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Store:
    """SQLite store with a dedicated writer thread and group commit.

    Args:
        path: Database file, or ``":memory:"``.
        batch_max: Most jobs per transaction.
        synchronous: SQLite ``synchronous`` pragma: ``"NORMAL"`` (crash-safe) or ``"FULL"``
            (power-loss-safe).
        on_commit: Called on the loop after each commit with ``(seconds, jobs)`` (metrics).
        checkpoint_interval: Seconds between WAL checkpoints by the checkpoint thread.

    Call :meth:`start` from the event loop before use and ``await`` :meth:`close` at the end.
    """

    #: One counter numbers every inbox, in commit order of this one process: a user's ``seq``
    #: has gaps (other users' items), so sessions must not wait for the missing numbers.
    gapless = False

    def __init__(
        self,
        path: str,
        *,
        batch_max: int = 2000,
        synchronous: str = "NORMAL",
        on_commit: Callable[[float, int], None] | None = None,
        checkpoint_interval: float = 0.25,
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"bad synchronous mode {synchronous!r}")
        self.path = path
        self.batch_max = batch_max
        self.synchronous = synchronous.upper()
        self._on_commit = on_commit
        self.checkpoint_interval = checkpoint_interval
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()  # lists of jobs, then _STOP
        self._outgoing: list[Any] = []  # this loop pass's jobs, not yet handed to the thread
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._seq = 0
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self.pending = 0  #: jobs submitted and not yet reported back

    # -- lifecycle ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA cache_size=-65536")
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
        db.executescript(_SCHEMA)
        return db

    def start(self) -> None:
        """Open the database (creating the schema) and start the writer thread.

        Raises:
            sqlite3.Error: The database cannot be opened.
        """
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="wsgauge-store", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    async def close(self) -> None:
        """Commit everything queued, then stop the thread and close the database."""
        if self._thread is None:
            return
        self._hand_over()
        self._jobs.put(_STOP)
        thread, self._thread = self._thread, None
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        # Deliver results of the last batch, queued by the thread before it stopped.
        await asyncio.sleep(0)

    # -- submission (event loop) --------------------------------------------------------------

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], callback: Callback[Any]) -> None:
        loop = self._loop
        if self._thread is None or loop is None:
            raise RuntimeError("store is closed")
        self.pending += 1
        outgoing = self._outgoing
        if not outgoing:
            loop.call_soon(self._hand_over)
        outgoing.append((fn, args, callback))

    def _hand_over(self) -> None:
        """Pass this loop pass's jobs to the store thread in one queue operation."""
        if self._outgoing:
            jobs, self._outgoing = self._outgoing, []
            self._jobs.put(jobs)

    def next_seq(self) -> int:
        """Allocate the next inbox sequence number."""
        self._seq += 1
        return self._seq

    def append_message(
        self,
        sender_id: str,
        receiver_id: str,
        content: str,
        timestamp: Any,
        callback: Callback[StoredChat],
        *,
        now: float | None = None,
    ) -> StoredChat:
        """Store a chat message; ``callback`` gets the :class:`StoredChat` after the commit."""
        seq = self.next_seq()
        created_at = iso_utc(time.time() if now is None else now)
        m = StoredMessage(
            id=f"m{seq}",
            sender_id=sender_id,
            receiver_id=receiver_id,
            content=content,
            timestamp=created_at if timestamp is None else timestamp,
            created_at=created_at,
        )
        item = StoredChat(seq, m)
        self._submit(_op_insert_message, (item,), callback)
        return item

    def mark_read(self, user_id: str, notification_id: str, callback: Callback[Notification]) -> None:
        """Mark ``user_id``'s notification read; callback gets the Notification, or ``None`` if the
        user has no such notification."""
        self._submit(_op_mark_read, (user_id, notification_id, iso_utc(time.time())), callback)

    def save_progress(
        self, user_id: str, subject: str, topic: str, completion: float, callback: Callback[ProgressRecord]
    ) -> ProgressRecord:
        """Upsert progress for (user, subject, topic); callback gets the ProgressRecord."""
        p = _new_progress(user_id, subject, topic, completion)
        self._submit(_op_save_progress, (p,), callback)
        return p

    def create_notification(
        self,
        user_id: str,
        title: str,
        body: str,
        extra: Mapping[str, Any],
        callback: Callback[StoredNotification],
    ) -> StoredNotification:
        """Store a new unread notification; callback gets the :class:`StoredNotification`.

        ``extra`` holds the optional fields (``type``, ``link``, ``data``).
        """
        n = _new_notification(user_id, title, body, extra)
        item = StoredNotification(self.next_seq(), n)
        self._submit(_op_create_notification, (item,), callback)
        return item

    def advance_cursor(self, user_id: str, seq: int) -> None:
        """Record that ``user_id`` has read every inbox item up to ``seq`` (fire and forget)."""
        self._submit(_op_advance_cursor, (user_id, seq), _ignore)

    def load_backlog(
        self, user_id: str, callback: Callback[Backlog], *, after: int | None = None, limit: int = 1000
    ) -> None:
        """Read one page of ``user_id``'s undelivered inbox; callback gets a :class:`Backlog`."""
        self._submit(_op_load_backlog, (user_id, after, limit), callback)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(db, *args)`` on the store thread, in order with all other jobs; await it."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def done(result: Any, exc: BaseException | None) -> None:
            if fut.done():
                return
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)

        self._submit(fn, args, done)
        return await fut

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run a read-only SQL query (diagnostics and tests)."""
        return await self.call(_op_query, sql, params)

    # -- the store thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            db = self._connect()
            row = db.execute(
                "SELECT max(s) FROM (SELECT max(seq) AS s FROM messages "
                "UNION ALL SELECT max(seq) FROM notifications)"
            ).fetchone()
            self._seq = row[0] or 0
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        jobs = self._jobs
        batch_max = self.batch_max
        stopping = False
        checkpointer = None
        if self.path != ":memory:" and self.checkpoint_interval > 0:
            checkpointer = _Checkpointer(self.path, self.checkpoint_interval)
        try:
            while not stopping:
                item = jobs.get()
                batch: list[Any] = []
                try:
                    while True:
                        if item is _STOP:  # the last item ever: submit refuses after close
                            stopping = True
                            break
                        batch += item
                        if len(batch) >= batch_max:
                            break
                        item = jobs.get_nowait()
                except queue.Empty:
                    pass
                if batch:
                    self._run_batch(db, batch)
        finally:
            if checkpointer is not None:
                checkpointer.stop()
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            db.close()

    def _run_batch(self, db: sqlite3.Connection, batch: list[Any]) -> None:
        t0 = time.perf_counter()
        results: list[tuple[Callback[Any], Any, BaseException | None]] = []
        try:
            db.execute("BEGIN")
            run: list[StoredChat] = []
            pending: list[Callback[Any]] = []
            for fn, args, callback in batch:
                if fn is _op_insert_message:
                    run.append(args[0])
                    pending.append(callback)
                    continue
                if run:
                    _insert_messages(db, run)
                    results.extend(zip(pending, run, [None] * len(run), strict=True))
                    run, pending = [], []
                results.append((callback, fn(db, *args), None))
            if run:
                _insert_messages(db, run)
                results.extend(zip(pending, run, [None] * len(run), strict=True))
            db.execute("COMMIT")
        except Exception:
            log.exception("store batch of %d failed; retrying one by one", len(batch))
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            results = [self._run_one(db, job) for job in batch]
        elapsed = time.perf_counter() - t0
        loop = self._loop
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # loop closed: nobody to tell
            loop.call_soon_threadsafe(self._complete, results, elapsed)

    @staticmethod
    def _run_one(db: sqlite3.Connection, job: Any) -> tuple[Callback[Any], Any, BaseException | None]:
        fn, args, callback = job
        try:
            db.execute("BEGIN")
            result = fn(db, *args)
            db.execute("COMMIT")
            return callback, result, None
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            return callback, None, exc

    def _complete(
        self, results: list[tuple[Callback[Any], Any, BaseException | None]], elapsed: float
    ) -> None:
        self.pending -= len(results)
        if self._on_commit is not None:
            self._on_commit(elapsed, len(results))
        for callback, result, exc in results:
            try:
                callback(result, exc)
            except Exception:
                log.exception("store callback failed")


def _ignore(result: Any, exc: BaseException | None) -> None:
    if exc is not None:
        log.error("store write failed: %r", exc)

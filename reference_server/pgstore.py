"""Durable storage shared by several server processes: PostgreSQL, async psycopg, group commit.

The same interface as :class:`reference_server.store.Store` (operations queue a job and name a
callback run on the loop after the commit), so the connection driver does not know which one it
talks to. What changes when several processes write one database:

* **Per-user, gap-free inbox numbers.** The SQLite store numbers every inbox item from one
  counter on the loop, which orders commits only inside one process. Here each user has a row in
  ``inbox_heads``; a commit that adds items to a user's inbox bumps that row, so the row lock
  serialises every writer of that inbox, on any process, and a user's ``seq`` runs
  ``1, 2, 3, …`` in commit order, without gaps (a rolled-back bump is undone with its
  transaction). When ``seq`` N is visible, every item before it is committed: a session that
  receives N + 1 before N (pushes from two processes race through Redis) knows something is
  missing and can re-read the store (``gapless`` sessions, :mod:`reference_server.protocol`).
* **Group commit on one writer task.** The jobs queued while a transaction runs form the next
  one; consecutive chat inserts become one statement (one JSON parameter; the heads are bumped in
  user order, so two processes lock rows in the same order). A deadlock or serialisation failure
  is retried; any other failure rolls back and retries each job alone, so one bad job cannot
  fail its neighbours.
* **Reads run beside the writer** on pooled connections (the backlog needs no ordering with
  writes: gapless sessions de-duplicate and order by ``seq``).

Message ids are ``m<n>`` with ``n`` from a PostgreSQL sequence taken in blocks of
:data:`ID_BLOCK` (one ``nextval`` per block per process): unique per database, stable.

Durability is PostgreSQL's: with the default ``synchronous_commit = on`` a commit is on disk
before it is acknowledged, so acks survive a SIGKILL of any server process (and of PostgreSQL).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from .messages import (
    Backlog,
    InboxEntry,
    Notification,
    ProgressRecord,
    StoredChat,
    StoredMessage,
    StoredNotification,
)
from .store import (
    Callback,
    _dump,
    _ignore,
    _new_notification,
    _new_progress,
    _row_to_notification,
    _seq_of,
    iso_utc,
)

__all__ = ["ID_BLOCK", "PgStore", "is_postgres_url", "redact_url"]

log = logging.getLogger(__name__)

#: Message ids taken from the database per ``nextval`` (the sequence's increment).
ID_BLOCK = 1000

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS inbox_heads (
    user_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL               -- the user's last inbox seq (1, 2, 3, ... no gaps)
);
CREATE TABLE IF NOT EXISTS messages (
    receiver_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    sender_id TEXT NOT NULL,
    content TEXT NOT NULL,            -- JSON-encoded: PostgreSQL text cannot hold NUL
    timestamp TEXT NOT NULL,          -- the client's value, JSON-encoded
    created_at TEXT NOT NULL,
    PRIMARY KEY (receiver_id, seq)
);
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    read BOOLEAN NOT NULL DEFAULT false,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS notifications_by_user ON notifications (user_id, seq);
CREATE TABLE IF NOT EXISTS progress (
    user_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    topic TEXT NOT NULL,
    completion DOUBLE PRECISION NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, subject, topic)
);
CREATE TABLE IF NOT EXISTS cursors (
    user_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS message_ids INCREMENT BY {ID_BLOCK};
"""

#: One statement stores a run of chat messages: bump each receiver's head by its count (in
#: user order), number the messages under the new heads in submission order, insert them.
#: It returns only the new heads (one row per receiver); the caller numbers its messages the
#: same way (the last ``n`` of a head, in submission order). The rows travel as one JSON array
#: of arrays (orjson, one C call): psycopg's Python array dumper took ~28 % of the server's CPU
#: when they went as seven ``text[]`` parameters.
_CHAT_SQL = """
WITH input AS (
    SELECT (e->>0)::int AS ord, e->>1 AS receiver_id, e->>2 AS id, e->>3 AS sender_id,
           e->>4 AS content, e->>5 AS timestamp, e->>6 AS created_at
    FROM json_array_elements(%s::json) AS e
), counts AS (
    SELECT receiver_id, count(*) AS n FROM input GROUP BY receiver_id
), heads AS (
    INSERT INTO inbox_heads AS h (user_id, seq)
    SELECT receiver_id, n FROM counts ORDER BY receiver_id
    ON CONFLICT (user_id) DO UPDATE SET seq = h.seq + excluded.seq
    RETURNING h.user_id, h.seq
), stored AS (
    INSERT INTO messages (receiver_id, seq, id, sender_id, content, timestamp, created_at)
    SELECT i.receiver_id,
           heads.seq - c.n + row_number() OVER (PARTITION BY i.receiver_id ORDER BY i.ord),
           i.id, i.sender_id, i.content, i.timestamp, i.created_at
    FROM input i JOIN counts c USING (receiver_id) JOIN heads ON heads.user_id = i.receiver_id
)
SELECT user_id, seq FROM heads
"""

_NOTIFICATION_SQL = """
WITH head AS (
    INSERT INTO inbox_heads AS h (user_id, seq) VALUES (%s, 1)
    ON CONFLICT (user_id) DO UPDATE SET seq = h.seq + 1
    RETURNING h.seq
)
INSERT INTO notifications (id, seq, user_id, title, body, read, created_at, updated_at, extra)
SELECT %s, head.seq, %s, %s, %s, false, %s, %s, %s FROM head
RETURNING seq
"""

_CURSORS_SQL = """
INSERT INTO cursors AS c (user_id, seq)
SELECT e->>0, (e->>1)::bigint FROM json_array_elements(%s::json) AS e ORDER BY 1
ON CONFLICT (user_id) DO UPDATE SET seq = GREATEST(c.seq, excluded.seq)
"""

_NOTIFICATION_COLUMNS = "id, seq, user_id, title, body, read, created_at, updated_at, extra"

#: Errors after which the whole batch is simply run again.
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def is_postgres_url(db: str) -> bool:
    """``db`` names a PostgreSQL database (``postgresql://`` or ``postgres://``), not a file."""
    return db.startswith(("postgresql://", "postgres://"))


def redact_url(db: str) -> str:
    """``db`` with any password replaced by ``***`` (for logs and ``/healthz``)."""
    if not is_postgres_url(db) and "://" not in db:
        return db
    scheme, _, rest = db.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return db
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


class _Job:
    __slots__ = ("args", "callback", "kind")

    def __init__(self, kind: str, args: tuple[Any, ...], callback: Callback[Any]) -> None:
        self.kind = kind
        self.args = args
        self.callback = callback


class PgStore:
    """PostgreSQL store: one writer task with group commit, reads on pooled connections.

    Args:
        url: ``postgresql://user@host:port/dbname``.
        batch_max: Most jobs per transaction.
        on_commit: Called on the loop after each commit with ``(seconds, jobs)`` (metrics).
        pool_size: Most pooled connections (one writer, the rest for reads).

    ``await`` :meth:`open` on the event loop before use and :meth:`close` at the end.
    """

    #: Each user's inbox is numbered 1, 2, 3, … in commit order (sessions may rely on it).
    gapless = True

    def __init__(
        self,
        url: str,
        *,
        batch_max: int = 2000,
        on_commit: Callable[[float, int], None] | None = None,
        pool_size: int = 6,
    ) -> None:
        self.path = redact_url(url)
        self._url = url
        self.batch_max = batch_max
        self._on_commit = on_commit
        self._pool = AsyncConnectionPool(
            url, min_size=2, max_size=max(2, pool_size), open=False, kwargs={"autocommit": True}
        )
        self._queue: list[_Job] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._closing = False
        self._next_id = 0
        self._id_end = 0  # the block [next_id, id_end) is ours
        self.pending = 0  #: jobs submitted and not yet reported back

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self, timeout: float = 10.0) -> None:
        """Connect, create the schema if missing (one process at a time), start the writer.

        Raises:
            psycopg.Error: The database cannot be reached or set up.
        """
        try:
            await self._pool.open(wait=True, timeout=timeout)
        except Exception as exc:  # PoolTimeout hides the cause: connect once to show it
            await self._pool.close()
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, connect_timeout=5)
            except psycopg.Error as cause:
                raise cause from None
            await conn.close()
            raise psycopg.OperationalError(f"no connection to {self.path}: {exc}") from exc
        async with self._pool.connection() as conn, conn.transaction():
            # Several workers start at once: CREATE ... IF NOT EXISTS races without a lock.
            await conn.execute("SELECT pg_advisory_xact_lock(742017)")
            await conn.execute(_SCHEMA)
        self._writer = asyncio.create_task(self._write_loop(), name="wsgauge-pgstore-writer")

    async def close(self) -> None:
        """Commit everything queued, finish the reads, close the pool."""
        if self._writer is None:
            return
        self._closing = True
        self._wake.set()
        writer, self._writer = self._writer, None
        await writer
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        await self._pool.close()

    # -- submission (event loop) --------------------------------------------------------------

    def _submit(self, kind: str, args: tuple[Any, ...], callback: Callback[Any]) -> None:
        if self._writer is None or self._closing:
            raise RuntimeError("store is closed")
        self.pending += 1
        self._queue.append(_Job(kind, args, callback))
        self._wake.set()

    def append_message(
        self,
        sender_id: str,
        receiver_id: str,
        content: str,
        timestamp: Any,
        callback: Callback[StoredChat],
        *,
        now: float | None = None,
    ) -> None:
        """Store a chat message; ``callback`` gets the :class:`StoredChat` after the commit."""
        created_at = iso_utc(time.time() if now is None else now)
        ts = created_at if timestamp is None else timestamp
        self._submit("chat", (sender_id, receiver_id, content, ts, created_at), callback)

    def mark_read(self, user_id: str, notification_id: str, callback: Callback[Notification]) -> None:
        """Mark ``user_id``'s notification read; callback gets it, or ``None`` if there is none."""
        self._submit("read", (user_id, notification_id, iso_utc(time.time())), callback)

    def save_progress(
        self, user_id: str, subject: str, topic: str, completion: float, callback: Callback[ProgressRecord]
    ) -> ProgressRecord:
        """Upsert progress for (user, subject, topic); callback gets the ProgressRecord."""
        p = _new_progress(user_id, subject, topic, completion)
        self._submit("progress", (p,), callback)
        return p

    def create_notification(
        self,
        user_id: str,
        title: str,
        body: str,
        extra: Mapping[str, Any],
        callback: Callback[StoredNotification],
    ) -> None:
        """Store a new unread notification; callback gets the :class:`StoredNotification`."""
        self._submit("notification", (_new_notification(user_id, title, body, extra),), callback)

    def advance_cursor(self, user_id: str, seq: int) -> None:
        """Record that ``user_id`` has read every inbox item up to ``seq`` (fire and forget)."""
        self._submit("cursor", (user_id, seq), _ignore)

    def load_backlog(
        self, user_id: str, callback: Callback[Backlog], *, after: int | None = None, limit: int = 1000
    ) -> None:
        """Read one page of ``user_id``'s undelivered inbox; callback gets a :class:`Backlog`."""
        self._read(self._read_backlog, (user_id, after, limit), callback)

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run a read-only SQL query (diagnostics and tests; ``%s`` placeholders)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    # -- reads --------------------------------------------------------------------------------

    def _read(self, fn: Callable[..., Any], args: tuple[Any, ...], callback: Callback[Any]) -> None:
        if self._writer is None or self._closing:
            raise RuntimeError("store is closed")
        self.pending += 1

        async def run() -> None:
            try:
                async with self._pool.connection() as conn:
                    result = await fn(conn, *args)
            except Exception as exc:
                self.pending -= 1
                _call(callback, None, exc)
            else:
                self.pending -= 1
                _call(callback, result, None)

        task = asyncio.create_task(run())
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    @staticmethod
    async def _read_backlog(
        conn: psycopg.AsyncConnection[Any], user_id: str, after: int | None, limit: int
    ) -> Backlog:
        cur = await conn.execute("SELECT seq FROM cursors WHERE user_id = %s", (user_id,))
        row = await cur.fetchone()
        cursor = row[0] if row else 0
        start = cursor if after is None else max(cursor, after)
        cur = await conn.execute(
            "SELECT seq, id, sender_id, content, timestamp, created_at FROM messages "
            "WHERE receiver_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            (user_id, start, limit + 1),
        )
        msgs: list[InboxEntry] = [
            StoredChat(
                seq,
                StoredMessage(
                    id=mid,
                    sender_id=sender,
                    receiver_id=user_id,
                    content=orjson.loads(content),
                    timestamp=orjson.loads(ts),
                    created_at=created_at,
                ),
            )
            for seq, mid, sender, content, ts, created_at in await cur.fetchall()
        ]
        cur = await conn.execute(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE user_id = %s AND seq > %s "
            "ORDER BY seq LIMIT %s",
            (user_id, start, limit + 1),
        )
        notes: list[InboxEntry] = [
            StoredNotification(r[1], _row_to_notification(r)) for r in await cur.fetchall()
        ]
        merged: list[InboxEntry] = list(heapq.merge(msgs, notes, key=_seq_of))
        return Backlog(cursor, merged[:limit], more=len(merged) > limit)

    # -- the writer ---------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._queue = self._queue[: self.batch_max], self._queue[self.batch_max :]
            t0 = time.perf_counter()
            results = await self._run_batch(batch)
            self.pending -= len(batch)
            if self._on_commit is not None:
                self._on_commit(time.perf_counter() - t0, len(batch))
            for job, (result, exc) in zip(batch, results, strict=True):
                _call(job.callback, result, exc)

    async def _run_batch(self, batch: list[_Job]) -> list[tuple[Any, BaseException | None]]:
        for attempt in range(5):
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    results = await self._apply(conn, batch)
                return [(r, None) for r in results]
            except _RETRYABLE as exc:
                log.info("store batch retried after %r", exc)
                await asyncio.sleep(0.001 * (attempt + 1))
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:  # connection trouble
                log.error("store batch of %d failed: %r", len(batch), exc)
                return [(None, exc)] * len(batch)
            except Exception:
                break
        if len(batch) == 1:
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    return [((await self._apply(conn, batch))[0], None)]
            except Exception as exc:
                return [(None, exc)]
        log.exception("store batch of %d failed; retrying one by one", len(batch))
        out: list[tuple[Any, BaseException | None]] = []
        for job in batch:
            out += await self._run_batch([job])
        return out

    async def _ids(self, conn: psycopg.AsyncConnection[Any], n: int) -> list[str]:
        ids: list[str] = []
        while len(ids) < n:
            if self._next_id >= self._id_end:
                cur = await conn.execute("SELECT nextval('message_ids')")
                row = await cur.fetchone()
                assert row is not None
                self._next_id, self._id_end = row[0], row[0] + ID_BLOCK
            take = min(n - len(ids), self._id_end - self._next_id)
            ids += [f"m{i}" for i in range(self._next_id, self._next_id + take)]
            self._next_id += take
        return ids

    async def _apply(self, conn: psycopg.AsyncConnection[Any], batch: list[_Job]) -> list[Any]:
        """Run ``batch`` inside the caller's transaction; one result per job."""
        results: list[Any] = [None] * len(batch)
        chats = [i for i, job in enumerate(batch) if job.kind == "chat"]
        if chats:
            ids = await self._ids(conn, len(chats))
            rows = []
            for k, i in enumerate(chats):
                sender, receiver, content, ts, created = batch[i].args
                rows.append((k, receiver, ids[k], sender, _dump(content), _dump(ts), created))
            cur = await conn.execute(_CHAT_SQL, (orjson.dumps(rows).decode(),))
            nxt = dict(await cur.fetchall())  # receiver -> its new head
            for _, receiver, *_rest in rows:
                nxt[receiver] -= 1  # -> the seq before the batch's first message to it
            for k, i in enumerate(chats):
                sender, receiver, content, ts, created = batch[i].args
                seq = nxt[receiver] = nxt[receiver] + 1
                m = StoredMessage(
                    id=ids[k],
                    sender_id=sender,
                    receiver_id=receiver,
                    content=content,
                    timestamp=ts,
                    created_at=created,
                )
                results[i] = StoredChat(seq, m)
        cursors: dict[str, int] = {}
        for i, job in enumerate(batch):
            kind = job.kind
            if kind == "chat":
                continue
            if kind == "cursor":
                user_id, seq = job.args
                if seq > cursors.get(user_id, 0):
                    cursors[user_id] = seq
            elif kind == "notification":
                (n,) = job.args
                cur = await conn.execute(
                    _NOTIFICATION_SQL,
                    (
                        n.user_id,
                        n.id,
                        n.user_id,
                        n.title,
                        n.body,
                        n.created_at,
                        n.updated_at,
                        _dump(n.extra()),
                    ),
                )
                row = await cur.fetchone()
                assert row is not None
                results[i] = StoredNotification(row[0], n)
            elif kind == "read":
                user_id, nid, now = job.args
                await conn.execute(
                    "UPDATE notifications SET read = true, updated_at = %s "
                    "WHERE id = %s AND user_id = %s AND NOT read",
                    (now, nid, user_id),
                )
                cur = await conn.execute(
                    f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE id = %s AND user_id = %s",
                    (nid, user_id),
                )
                row = await cur.fetchone()
                results[i] = None if row is None else _row_to_notification(row)
            elif kind == "progress":
                (p,) = job.args
                await conn.execute(
                    "INSERT INTO progress VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id, subject, topic) "
                    "DO UPDATE SET completion = excluded.completion, updated_at = excluded.updated_at",
                    (p.user_id, p.subject, p.topic, p.completion, p.updated_at),
                )
                results[i] = p
        if cursors:
            users = sorted(cursors)
            await conn.execute(_CURSORS_SQL, (orjson.dumps([(u, cursors[u]) for u in users]).decode(),))
        return results


def _call(callback: Callback[Any], result: Any, exc: BaseException | None) -> None:
    try:
        callback(result, exc)
    except Exception:
        log.exception("store callback failed")

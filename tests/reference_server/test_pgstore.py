"""The PostgreSQL store against a real PostgreSQL (a fresh database per test)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reference_server.messages import Backlog, Notification, StoredChat, StoredNotification
from reference_server.pgstore import PgStore, redact_url

pytestmark = pytest.mark.timeout(60)


class Results:
    def __init__(self) -> None:
        self.items: list[tuple[Any, BaseException | None]] = []
        self.event = asyncio.Event()
        self.want = 0

    def __call__(self, result: Any, exc: BaseException | None) -> None:
        self.items.append((result, exc))
        if len(self.items) >= self.want:
            self.event.set()

    async def wait(self, n: int) -> list[Any]:
        self.want = n
        if len(self.items) < n:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), 30)
        assert all(exc is None for _, exc in self.items), self.items
        return [r for r, _ in self.items[:n]]


async def _backlog(store: PgStore, user: str, **kwargs: Any) -> Backlog:
    fut: asyncio.Future[Backlog] = asyncio.get_running_loop().create_future()
    store.load_backlog(user, lambda r, e: fut.set_exception(e) if e else fut.set_result(r), **kwargs)
    return await fut


def test_each_inbox_is_numbered_without_gaps_in_commit_order_across_two_stores(pg_url):
    """Two stores (as two processes would) write the same inboxes at once."""

    async def main() -> None:
        one, two = PgStore(pg_url, batch_max=50), PgStore(pg_url, batch_max=7)
        await one.open()
        await two.open()
        r1, r2 = Results(), Results()
        for i in range(400):
            one.append_message("a", f"r{i % 3}", f"one-{i}", None, r1)
            two.append_message("b", f"r{i % 3}", f"two-{i}", {"t": i}, r2)
        got = await r1.wait(400) + await r2.wait(400)
        for user in ("r0", "r1", "r2"):
            seqs = sorted(c.seq for c in got if c.message.receiver_id == user)
            assert seqs == list(range(1, len(seqs) + 1))
        assert len({c.message.id for c in got}) == 800
        # Each store's own messages to one user keep their submission order.
        mine = [c for c in got if c.message.receiver_id == "r0" and c.message.sender_id == "a"]
        assert [c.seq for c in mine] == sorted(c.seq for c in mine)
        page = await _backlog(one, "r1", limit=100)
        assert page.more and [e.seq for e in page.entries] == list(range(1, 101))
        stored = {(c.seq, c.message.id) for c in got if c.message.receiver_id == "r1"}
        assert {(e.seq, e.message.id) for e in page.entries} <= stored  # numbered alike here and there
        await one.close()
        await two.close()

    asyncio.run(main())


def test_notifications_share_the_inbox_numbers_and_reads_are_per_user(pg_url):
    async def main() -> None:
        store = PgStore(pg_url)
        await store.open()
        r = Results()
        store.append_message("a", "bob", "hi", "ts", r)
        store.create_notification("bob", "t", "b", {"type": "info", "data": {"k": 1}}, r)
        chat, note = await r.wait(2)
        assert isinstance(chat, StoredChat) and isinstance(note, StoredNotification)
        assert (chat.seq, note.seq) == (1, 2)
        store.mark_read("mallory", note.notification.id, r)
        store.mark_read("bob", note.notification.id, r)
        _, _, refused, read = await r.wait(4)
        assert refused is None
        assert isinstance(read, Notification) and read.read and read.data == {"k": 1}
        store.advance_cursor("bob", 2)
        store.advance_cursor("bob", 1)  # never moves back
        store.save_progress("bob", "Math", "Algebra", 40.0, r)
        await r.wait(5)
        assert await _backlog(store, "bob") == Backlog(2, [])
        assert [e.seq for e in (await _backlog(store, "bob", after=0)).entries] == []
        await store.close()
        again = PgStore(pg_url)  # durable: a new store (process) sees it all
        await again.open()
        rows = await again.query("SELECT completion FROM progress WHERE user_id = %s", "bob")
        assert rows == [(40.0,)]
        await again.close()

    asyncio.run(main())


def test_a_bad_job_fails_alone(pg_url):
    async def main() -> None:
        store = PgStore(pg_url)
        await store.open()
        r = Results()
        store.append_message("a", "bob", "ok-1", None, r)
        store.append_message("a", "bob\x00", "bad", None, r)  # PostgreSQL text refuses NUL
        store.append_message("a", "bob", "ok-2\x00", None, r)  # content is stored JSON-encoded
        await asyncio.wait_for(_until(lambda: len(r.items) == 3), 30)
        (first, e1), (bad, e2), (last, e3) = r.items
        assert e1 is None and e3 is None and bad is None and e2 is not None
        assert (first.seq, last.seq) == (1, 2)  # the failed one left no gap
        assert [e.message.content for e in (await _backlog(store, "bob")).entries] == ["ok-1", "ok-2\x00"]
        await store.close()

    asyncio.run(main())


async def _until(pred: Any) -> None:
    while not pred():
        await asyncio.sleep(0.01)


def test_password_is_redacted():
    assert redact_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("wsgauge.db") == "wsgauge.db"

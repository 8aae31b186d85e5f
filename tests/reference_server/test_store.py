"""The SQLite store: group commit, ordering, backlog, cursors, persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from reference_server.messages import Backlog, StoredChat, StoredNotification
from reference_server.store import Store, iso_utc


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def wait_all(futs: list[asyncio.Future[Any]]) -> list[Any]:
    return list(await asyncio.gather(*futs))


def collector(loop: asyncio.AbstractEventLoop, order: list[Any] | None = None):
    def make() -> tuple[asyncio.Future[Any], Any]:
        fut = loop.create_future()

        def cb(result: Any, exc: BaseException | None) -> None:
            if order is not None:
                order.append(result)
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)

        return fut, cb

    return make


def test_iso_utc_matches_javascript_to_iso_string():
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1764072000.1234) == "2025-11-25T12:00:00.123Z"


@pytest.mark.parametrize("path", [":memory:", "file"])
def test_many_writes_share_commits_and_report_in_submission_order(tmp_path: Path, path: str):
    commits: list[int] = []

    async def main() -> list[Any]:
        store = Store(
            str(tmp_path / "s.db") if path == "file" else path,
            on_commit=lambda seconds, jobs: commits.append(jobs),
        )
        store.start()
        order: list[Any] = []
        make = collector(asyncio.get_running_loop(), order)
        futs = []
        for i in range(500):
            fut, cb = make()
            store.append_message("a", f"r{i % 3}", f"c{i}", None, cb)
            futs.append(fut)
        results = await wait_all(futs)
        await store.close()
        assert order == results
        return results

    results = run(main())
    assert [r.seq for r in results] == list(range(1, 501))
    assert all(isinstance(r, StoredChat) and r.message.timestamp == r.message.created_at for r in results)
    assert sum(commits) == 500 and len(commits) < 500  # grouped


def test_backlog_merges_messages_and_notifications_and_respects_the_cursor(tmp_path: Path):
    async def main() -> None:
        store = Store(str(tmp_path / "b.db"))
        store.start()
        make = collector(asyncio.get_running_loop())
        futs = []
        for i in range(3):
            fut, cb = make()
            store.append_message("a", "bob", f"m{i}", "ts", cb)
            futs.append(fut)
            fut, cb = make()
            store.create_notification("bob", f"n{i}", "b", {"type": "info"}, cb)
            futs.append(fut)
        await wait_all(futs)
        fut, cb = make()
        store.load_backlog("bob", cb, limit=4)
        page = await fut
        assert isinstance(page, Backlog) and page.cursor == 0 and page.more
        assert [e.seq for e in page.entries] == [1, 2, 3, 4]
        note = page.entries[1]
        assert isinstance(note, StoredNotification) and note.notification.extra() == {"type": "info"}
        assert isinstance(page.entries[0], StoredChat) and page.entries[0].message.content == "m0"
        fut, cb = make()
        store.load_backlog("bob", cb, after=4, limit=4)
        page = await fut
        assert [e.seq for e in page.entries] == [5, 6] and not page.more
        store.advance_cursor("bob", 5)
        store.advance_cursor("bob", 2)  # never moves back
        fut, cb = make()
        store.load_backlog("bob", cb)
        page = await fut
        assert page.cursor == 5 and [e.seq for e in page.entries] == [6]
        await store.close()

    run(main())


def test_mark_read_only_touches_the_owners_notification(tmp_path: Path):
    async def main() -> None:
        store = Store(str(tmp_path / "n.db"))
        store.start()
        make = collector(asyncio.get_running_loop())
        fut, cb = make()
        store.create_notification("alice", "t", "b", {}, cb)
        n = (await fut).notification
        fut, cb = make()
        store.mark_read("mallory", n.id, cb)
        assert await fut is None
        fut, cb = make()
        store.mark_read("alice", n.id, cb)
        read = await fut
        assert read.read is True and read.id == n.id
        await store.close()

    run(main())


def test_data_and_sequence_survive_a_restart(tmp_path: Path):
    path = str(tmp_path / "p.db")

    async def write() -> None:
        store = Store(path)
        store.start()
        make = collector(asyncio.get_running_loop())
        fut, cb = make()
        store.append_message("a", "b", "x", 5, cb)
        await fut
        fut, cb = make()
        store.save_progress("a", "Math", "Algebra", 40, cb)
        await fut
        fut, cb = make()
        store.save_progress("a", "Math", "Algebra", 60, cb)
        await fut
        await store.close()

    async def read() -> None:
        store = Store(path)
        store.start()
        assert store.next_seq() == 2
        rows = await store.query("SELECT completion FROM progress WHERE user_id = ?", "a")
        assert rows == [(60.0,)]
        rows = await store.query("SELECT timestamp FROM messages")
        assert rows == [("5",)]
        await store.close()

    run(write())
    run(read())


def test_a_failing_job_does_not_fail_its_batch_neighbours(tmp_path: Path):
    def boom(db: Any) -> None:
        raise ValueError("boom")

    async def main() -> None:
        store = Store(str(tmp_path / "f.db"))
        store.start()
        make = collector(asyncio.get_running_loop())
        fut1, cb1 = make()
        store.append_message("a", "b", "before", None, cb1)
        bad = asyncio.ensure_future(store.call(boom))
        fut2, cb2 = make()
        store.append_message("a", "b", "after", None, cb2)
        assert (await fut1).message.content == "before"
        assert (await fut2).message.content == "after"
        with pytest.raises(ValueError, match="boom"):
            await bad
        assert (await store.query("SELECT count(*) FROM messages")) == [(2,)]
        await store.close()

    run(main())


def test_bad_synchronous_mode_is_refused():
    with pytest.raises(ValueError):
        Store(":memory:", synchronous="SOMETIMES")


@pytest.mark.parametrize("interval", [0.05, 0.0])
def test_the_checkpoint_thread_copies_the_wal_into_the_database_while_the_writer_runs(
    tmp_path: Path, interval: float
):
    path = tmp_path / f"c{interval}.db"

    async def main() -> int:
        store = Store(str(path), checkpoint_interval=interval)
        store.start()
        make = collector(asyncio.get_running_loop())
        futs = []
        for i in range(2000):
            fut, cb = make()
            store.append_message("a", f"r{i % 7}", "x" * 200, None, cb)
            futs.append(fut)
        await wait_all(futs)
        await asyncio.sleep(0.5)  # ten checkpoint rounds, the store still open
        size = path.stat().st_size
        await store.close()
        return size

    size = run(main())
    if interval:
        assert size > 400_000  # ~2000 rows of 200+ bytes are in the database file itself
    else:
        assert size < 100_000  # no checkpoint thread: everything is still in the WAL only

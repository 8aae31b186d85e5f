"""The I/O-free core: drive :class:`Session` directly, no sockets, no store."""

from __future__ import annotations

import functools
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_server.errors import ERROR_CODES, LocalProtocolError, SlowConsumer
from reference_server.messages import (
    Backlog,
    ChatMessage,
    Notification,
    NotificationRead,
    ProgressRecord,
    ProgressUpdate,
    StoredChat,
    StoredMessage,
    StoredNotification,
)
from reference_server.protocol import (
    TRANSITIONS,
    Event,
    Push,
    Session,
    State,
    StoreRequest,
    inbox_frame,
    notification_push,
)

NOW = 1_764_072_000.0


def make_session(**kwargs: Any) -> Session:
    kwargs.setdefault("now", NOW)
    return Session("alice", **kwargs)


def sent(session: Session) -> list[dict[str, Any]]:
    """assertFrameSent-style helper: the decoded frames the session wants written."""
    return [json.loads(f) for f in session.messages_to_send()]


def stored(req: StoreRequest, seq: int = 1) -> StoredChat:
    m = req.message
    assert isinstance(m, ChatMessage)
    return StoredChat(
        seq,
        StoredMessage(
            id=f"m{seq}",
            sender_id=req.user_id,
            receiver_id=m.receiver_id,
            content=m.content,
            timestamp=m.timestamp,
            created_at="2026-11-25T00:00:00.000Z",
        ),
    )


def inbox(seq: int) -> StoredChat:
    """A chat message to alice, as the store's backlog returns it."""
    return StoredChat(
        seq,
        StoredMessage(
            id=f"m{seq}", sender_id="bob", receiver_id="alice", content="x", timestamp=1, created_at="c"
        ),
    )


def ids(frames: list[dict[str, Any]]) -> list[Any]:
    """Each delivered frame's record id (other frames as they are)."""
    return [f["data"]["id"] if "data" in f else f for f in frames]


def notification(read: bool = True, nid: str = "n1") -> Notification:
    return Notification(
        id=nid, user_id="alice", title="t", body="b", read=read, created_at="c", updated_at="u"
    )


def progress(req: StoreRequest) -> ProgressRecord:
    m = req.message
    assert isinstance(m, ProgressUpdate)
    return ProgressRecord(
        user_id=req.user_id, subject=m.subject, topic=m.topic, completion=m.completion, updated_at="u"
    )


def complete(session: Session, req: StoreRequest, seq: int = 1) -> list[Push]:
    m = req.message
    if isinstance(m, ChatMessage):
        return session.event_completed(req, stored(req, seq))
    if isinstance(m, NotificationRead):
        return session.event_completed(req, notification(nid=m.id))
    return session.event_completed(req, progress(req))


def chat(receiver: str = "bob", content: str = "hi", **extra: Any) -> str:
    return json.dumps(
        {
            "type": "chat_message",
            "receiverId": receiver,
            "message": {"content": content, "timestamp": "T"},
            **extra,
        }
    )


# -- chat -------------------------------------------------------------------------------------


def test_chat_without_request_id_only_pushes_to_the_receiver():
    s = make_session()
    s.receive_text(chat(senderId="mallory"), NOW)
    (req,) = s.events_received()
    assert req.user_id == "alice" and req.message.receiver_id == "bob"
    assert sent(s) == []
    (push,) = complete(s, req)
    assert push.user_id == "bob" and push.seq == 1
    assert json.loads(push.frame) == {
        "type": "new_message",
        "data": {
            "id": "m1",
            "senderId": "alice",
            "receiverId": "bob",
            "content": "hi",
            "timestamp": "T",
            "createdAt": "2026-11-25T00:00:00.000Z",
        },
    }
    assert sent(s) == []


def test_ack_is_sent_only_after_completion():
    s = make_session()
    s.receive_text(chat(requestId="r1"), NOW)
    (req,) = s.events_received()
    assert sent(s) == []
    complete(s, req)
    (ack,) = sent(s)
    assert ack["type"] == "ack" and ack["requestId"] == "r1" and ack["data"]["id"] == "m1"


def test_replies_leave_in_the_order_of_the_frames_that_caused_them():
    s = make_session()
    s.receive_text(chat(requestId=1), NOW)
    s.receive_text("{bad", NOW)
    s.receive_text('{"type":"ping","ts":3}', NOW)
    s.receive_text(chat(requestId=4), NOW)
    r1, r4 = s.events_received()
    assert sent(s) == []  # everything waits for request 1
    complete(s, r1, 1)
    assert [f["type"] for f in sent(s)] == ["ack", "error", "pong"]
    complete(s, r4, 2)
    assert [f.get("requestId") for f in sent(s)] == [4]


def test_store_failure_becomes_an_error_reply():
    s = make_session()
    s.receive_text(chat(requestId="x"), NOW)
    (req,) = s.events_received()
    s.event_failed(req, LocalProtocolError("disk on fire"))
    assert sent(s) == [
        {"type": "error", "requestId": "x", "code": "internal_error", "message": "disk on fire"}
    ]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("nope", "invalid_json"),
        ("3", "invalid_message"),
        ('{"type":"x"}', "unknown_type"),
        (
            '{"type":"chat_message","receiverId":"b","message":{"content":"x","timestamp":[1]}}',
            "invalid_field",
        ),
        ('{"type":"chat_message","receiverId":null,"message":{"content":"x"}}', "invalid_receiver"),
        ('{"type":"progress_update","progress":{"subject":"s","topic":"t"}}', "invalid_field"),
        ('{"type":"progress_update","progress":{"subject":"","topic":"t","completion":1}}', "invalid_field"),
        (
            '{"type":"progress_update","progress":{"subject":"s","topic":"t","completion":NaN}}',
            "invalid_json",
        ),
    ],
)
def test_bad_frames_get_error_codes(frame, code):
    s = make_session()
    s.receive_text(frame, NOW)
    assert s.events_received() == []
    (err,) = sent(s)
    assert err["type"] == "error" and err["code"] == code
    assert s.state is State.OPEN


def test_content_limit_is_a_parameter():
    s = make_session(max_content_length=5)
    s.receive_text(chat(content="123456", requestId=1), NOW)
    assert sent(s)[0]["code"] == "content_too_long"
    s.receive_text(chat(content="12345"), NOW)
    assert len(s.events_received()) == 1


# -- notification and progress ------------------------------------------------------------------


def test_notification_read_pushes_to_own_user_before_the_ack():
    s = make_session()
    s.receive_text('{"type":"notification_read","id":"n1","requestId":"a"}', NOW)
    (req,) = s.events_received()
    (push,) = s.event_completed(req, notification())
    assert push.user_id == "alice" and push.seq is None
    s.deliver(push.seq, push.frame)  # the hub routes it back to this session
    s.backlog_loaded(Backlog(0, []))
    frames = sent(s)
    assert [f["type"] for f in frames] == ["notification_update", "ack"]


def test_unknown_or_foreign_notification_is_not_found():
    s = make_session()
    s.receive_text('{"type":"notification_read","id":"n9","requestId":"a"}', NOW)
    (req,) = s.events_received()
    assert s.event_completed(req, None) == []
    assert sent(s)[0]["code"] == "not_found"


def test_progress_update_pushes_progress_sync_to_own_user():
    s = make_session()
    s.receive_text(
        '{"type":"progress_update","progress":{"subject":"Math","topic":"Algebra","completion":75.5}}', NOW
    )
    (req,) = s.events_received()
    (push,) = complete(s, req)
    assert json.loads(push.frame)["data"] == {
        "userId": "alice",
        "subject": "Math",
        "topic": "Algebra",
        "completion": 75.5,
        "updatedAt": "u",
    }


# -- batch, ping, rate limit ------------------------------------------------------------------


def test_batch_items_are_handled_in_order_and_the_batch_ack_comes_last():
    s = make_session()
    items = [
        json.loads(chat(requestId=1)),
        {"type": "nope"},
        {"type": "ping", "ts": 2},
        {"type": "batch", "messages": []},
        json.loads(chat()),
    ]
    s.receive_text(json.dumps({"type": "batch", "messages": items, "requestId": "B"}), NOW)
    r1, r5 = s.events_received()
    complete(s, r1, 1)
    assert [f["type"] for f in sent(s)] == ["ack", "error", "pong", "error"]
    complete(s, r5, 2)
    assert sent(s) == [{"type": "ack", "requestId": "B", "data": {"count": 5}}]


def test_batch_limit_is_a_parameter():
    s = make_session(max_batch=2)
    s.receive_text(json.dumps({"type": "batch", "messages": [{"type": "ping"}] * 3}), NOW)
    assert sent(s)[0]["code"] == "batch_too_large"
    assert s.events_received() == []


def test_ping_response_echoes_ts():
    s = make_session()
    s.receive_text('{"type":"ping","ts":"abc","requestId":"p"}', NOW)
    assert sent(s) == [{"type": "pong", "ts": "abc", "requestId": "p"}]


def test_rate_limit_refills_over_time():
    s = make_session(rate_limit=10, rate_burst=2)
    for _ in range(4):
        s.receive_text('{"type":"ping"}', NOW)
    frames = sent(s)
    assert [f["type"] for f in frames] == ["pong", "pong", "error", "error"]
    assert frames[2]["code"] == "rate_limited"
    s.receive_text('{"type":"ping"}', NOW + 0.15)  # one token back
    assert sent(s) == [{"type": "pong", "ts": None}]


def test_rate_limit_zero_disables_it():
    s = make_session(rate_limit=0)
    for _ in range(5000):
        s.receive_text('{"type":"ping"}', NOW)
    assert len(sent(s)) == 5000


# -- state machine ------------------------------------------------------------------------------


def test_expired_session_closes_with_4001_and_drops_frames():
    s = make_session(expires_at=NOW + 10)
    assert not s.expire(NOW + 9)
    s.receive_text('{"type":"ping"}', NOW + 11)
    assert sent(s) == []
    assert s.state is State.CLOSING and s.close_code == 4001


def test_invalid_utf8_closes_with_1007():
    s = make_session()
    s.receive_text(b'{"type":"ping","ts":"\xff"}', NOW)
    assert s.state is State.CLOSING and s.close_code == 1007


def test_transition_table_rejects_events_by_name():
    s = make_session()
    s.connection_lost()
    assert s.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match=r"CONNECTION_LOST.*CLOSED"):
        s.connection_lost()
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.CLOSED] == {}


class RecordingSession(Session):
    """A Session that notes every transition it makes, as ``(state before, event)``."""

    def __init__(self, **kwargs: Any) -> None:
        self.transitions: set[tuple[State, Event]] = set()
        super().__init__("alice", now=NOW, expires_at=NOW + 10, **kwargs)

    def _transition(self, event: Event) -> None:
        before = self.state
        super()._transition(event)
        self.transitions.add((before, event))


def _stored_request(s: Session) -> list[StoreRequest]:
    s.state, state = State.OPEN, s.state  # queue one request whatever the state, then restore it
    s.receive_text(chat(requestId=1), NOW)
    s.state = state
    return s.events_received()


#: One frame of each kind a client can send, valid or not.
CLIENT_FRAMES: dict[str, str | bytes] = {
    "chat_message": chat(requestId=1),
    "notification_read": '{"type":"notification_read","id":"n1"}',
    "progress_update": json.dumps(
        {"type": "progress_update", "progress": {"subject": "s", "topic": "t", "completion": 1}}
    ),
    "ping": '{"type":"ping"}',
    "batch": '{"type":"batch","messages":[{"type":"ping"}]}',
    "bad json": "{",
    "bad utf-8": b'{"type":"ping","ts":"\xff"}',
    "too many": json.dumps({"type": "batch", "messages": [{"type": "ping"}] * 101}),
}


def _receive(frame: str | bytes, s: Session) -> None:
    s.receive_text(frame, NOW)


#: Every input a driver can give a Session, by name.
SESSION_INPUTS: dict[str, Any] = {
    **{f"receive {name}": functools.partial(_receive, frame) for name, frame in CLIENT_FRAMES.items()},
    "receive after expiry": lambda s: s.receive_text('{"type":"ping"}', NOW + 11),
    "expire early": lambda s: s.expire(NOW),
    "expire": lambda s: s.expire(NOW + 11),
    "fail": lambda s: s.fail(SlowConsumer("slow")),
    "close": lambda s: s.close(1001, "bye"),
    "connection_lost": lambda s: s.connection_lost(),
    "completed": lambda s: [complete(s, r) for r in _stored_request(s)],
    "failed": lambda s: [s.event_failed(r, LocalProtocolError("x")) for r in _stored_request(s)],
    "deliver": lambda s: s.deliver(1, b"{}"),
    "backlog": lambda s: s.backlog_loaded(Backlog(0, [inbox(1)])),
    "confirmation ping": lambda s: s.confirmation_ping(),
    "pong": lambda s: s.pong_received(b"wsgd" + (1).to_bytes(8, "big")),
    "send": lambda s: s.messages_to_send(),
}


def _session_in(state: State) -> RecordingSession:
    s = RecordingSession()
    if state is State.CLOSING:
        s.close()
    elif state is State.CLOSED:
        s.connection_lost()
    assert s.state is state
    s.transitions.clear()
    return s


def test_every_transition_row_is_reached_by_some_input_and_no_input_leaves_the_table():
    reached: set[tuple[State, Event]] = set()
    refused: set[tuple[State, str]] = set()
    for state in State:
        for name, apply in SESSION_INPUTS.items():
            s = _session_in(state)
            try:
                apply(s)
            except LocalProtocolError:
                refused.add((state, name))
            reached |= s.transitions
    assert reached == {(state, event) for state, row in TRANSITIONS.items() for event in row}
    # The one disallowed input: the driver reports a lost transport once (Connection.stop).
    assert refused == {(State.CLOSED, "connection_lost")}


# -- delivery -----------------------------------------------------------------------------------


def test_backlog_first_then_live_frames_without_duplicates():
    s = make_session()
    s.deliver(5, inbox_frame(inbox(5)))  # inbox frame while catching up: covered by the backlog
    s.deliver(None, b'{"live":1}')  # live-only frame: held
    assert sent(s) == []
    s.backlog_loaded(Backlog(2, [inbox(3), inbox(5)]))
    assert ids(sent(s)) == ["m3", "m5", {"live": 1}]
    s.deliver(5, inbox_frame(inbox(5)))
    s.deliver(6, inbox_frame(inbox(6)))
    assert ids(sent(s)) == ["m6"]


def test_backlog_pages():
    s = make_session()
    s.backlog_loaded(Backlog(0, [inbox(1)], more=True))
    assert s.catching_up and ids(sent(s)) == ["m1"]
    s.backlog_loaded(Backlog(0, [inbox(2)]))
    assert not s.catching_up and ids(sent(s)) == ["m2"]


def test_backlog_entries_become_the_frames_of_their_kind():
    s = make_session()
    note = StoredNotification(2, notification(read=False, nid="n2"))
    s.backlog_loaded(Backlog(0, [inbox(1), note]))
    message, update = sent(s)
    assert message == {
        "type": "new_message",
        "data": {
            "id": "m1",
            "senderId": "bob",
            "receiverId": "alice",
            "content": "x",
            "timestamp": 1,
            "createdAt": "c",
        },
    }
    assert update["type"] == "notification_update" and update["data"]["id"] == "n2"
    push = notification_push(note)
    assert (push.user_id, push.seq, push.kind) == ("alice", 2, "notification_update")
    assert json.loads(push.frame) == update


# -- gapless inboxes (PostgreSQL: per-user seq 1, 2, 3, ...; pushes race through Redis) --------


def _push(s: Session, *seqs: int) -> None:
    for seq in seqs:
        s.deliver(seq, inbox_frame(inbox(seq)))


def test_gapless_frames_leave_in_seq_order_whatever_order_they_arrive_in():
    s = make_session(gapless=True)
    s.backlog_loaded(Backlog(0, [inbox(1)]))
    _push(s, 3, 4)  # 2 is still in flight from another process
    assert ids(sent(s)) == ["m1"] and s.has_gap and s.sent_seq == 1
    _push(s, 2)
    assert ids(sent(s)) == ["m2", "m3", "m4"] and not s.has_gap
    _push(s, 3, 2)  # duplicates (e.g. also in a re-read) are dropped
    assert sent(s) == []


def test_a_confirmation_never_passes_a_missing_item():
    s = make_session(gapless=True)
    s.backlog_loaded(Backlog(0, []))
    _push(s, 1, 3)
    sent(s)
    payload = s.confirmation_ping()
    assert payload is not None
    assert s.pong_received(payload) == 1  # not 3: 2 was never sent


def test_a_gap_is_filled_by_a_reread_of_the_store():
    s = make_session(gapless=True)
    s.backlog_loaded(Backlog(0, []))
    _push(s, 1, 4)
    sent(s)
    assert s.has_gap
    assert s.request_reread() is True  # the driver loads the backlog after sent_seq
    assert s.catching_up and not s.has_gap
    s.deliver(None, b'{"live":1}')  # live-only frames wait behind the re-read
    _push(s, 5)
    s.backlog_loaded(Backlog(0, [inbox(2), inbox(3), inbox(4)]))
    assert ids(sent(s)) == ["m2", "m3", "m4", {"live": 1}, "m5"]
    assert not s.catching_up and not s.has_gap


def test_inbox_frames_arriving_during_the_first_backlog_are_kept_not_dropped():
    # Another process may commit after the backlog's snapshot and publish before it returns.
    s = make_session(gapless=True)
    _push(s, 3, 4)
    s.backlog_loaded(Backlog(1, [inbox(2)]))
    assert ids(sent(s)) == ["m2", "m3", "m4"]


def test_a_reread_asked_for_during_a_load_runs_after_it():
    s = make_session(gapless=True)
    assert s.request_reread() is False  # the first backlog load is running
    s.backlog_loaded(Backlog(0, [inbox(1)]))
    assert s.catching_up  # its snapshot may predate the ask: the driver loads again
    s.backlog_loaded(Backlog(0, [inbox(2)]))
    assert ids(sent(s)) == ["m1", "m2"] and not s.catching_up


def test_the_users_cursor_moves_a_lagging_connection_past_what_another_tab_confirmed():
    s = make_session(gapless=True)
    s.backlog_loaded(Backlog(0, []))
    _push(s, 4)
    assert s.request_reread()
    s.backlog_loaded(Backlog(3, [inbox(4)]))  # 1..3 confirmed on another tab
    assert ids(sent(s)) == ["m4"] and s.sent_seq == 4


def test_without_gapless_a_later_seq_is_sent_at_once():
    s = make_session()  # SQLite: one counter for all inboxes, so a user's seqs have gaps
    s.backlog_loaded(Backlog(0, []))
    _push(s, 3, 7)
    assert ids(sent(s)) == ["m3", "m7"] and not s.has_gap


def test_delivery_is_confirmed_by_a_matching_pong_only():
    s = make_session()
    s.backlog_loaded(Backlog(0, [inbox(7)]))
    sent(s)
    payload = s.confirmation_ping()
    assert payload is not None and s.confirmation_ping() is None  # one outstanding at a time
    assert s.pong_received(b"") is None
    assert s.pong_received(b"wsgd" + (6).to_bytes(8, "big")) is None
    assert s.pong_received(payload) == 7
    assert s.confirmation_ping() is None  # nothing new


# -- properties ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what orjson can decode and encode
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(json_values, st.sampled_from(["", "x" * 300, "bob", 50, 101, -1, True, None, 1e308]))
frames = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["chat_message", "notification_read", "progress_update", "batch", "ping", "pong", ""]
            )
        },
        optional={
            "receiverId": field_values,
            "message": st.fixed_dictionaries(
                {}, optional={"content": field_values, "timestamp": field_values}
            ),
            "id": field_values,
            "progress": st.fixed_dictionaries(
                {}, optional={"subject": field_values, "topic": field_values, "completion": field_values}
            ),
            "messages": st.lists(json_values, max_size=5),
            "ts": field_values,
            "requestId": field_values,
        },
    ),
)


def check_well_formed(frame: dict[str, Any]) -> None:
    assert frame["type"] in {"ack", "error", "pong"}
    if frame["type"] == "error":
        assert frame["code"] in ERROR_CODES
        assert isinstance(frame["message"], str) and frame["message"]
    if frame["type"] == "ack":
        assert "requestId" in frame and "data" in frame
    if "requestId" in frame:
        rid = frame["requestId"]
        assert (isinstance(rid, str) and 0 < len(rid) <= 128) or type(rid) is int


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, min_size=1, max_size=5))
def test_arbitrary_frames_never_raise_and_always_get_well_formed_replies(items):
    s = make_session(max_batch=3, max_content_length=50)
    for item in items:
        s.receive_text(orjson.dumps(item).decode(), NOW)
    for seq, req in enumerate(s.events_received(), 1):
        complete(s, req, seq)
    out = sent(s)
    for frame in out:
        check_well_formed(frame)
    assert s.state is State.OPEN
    assert s.pending_replies == 0 and s.unfinished_requests == 0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60) | st.binary(max_size=60))
def test_arbitrary_text_never_raises(data):
    s = make_session()
    s.receive_text(data, NOW)
    if s.state is State.OPEN:
        for frame in sent(s):
            check_well_formed(frame)
    else:
        assert s.close_code == 1007


def test_the_core_imports_no_io_library():
    """The sans-I/O core emits pushes; routing them (locally or through Redis) and storing them
    (SQLite or PostgreSQL) is the shell's business."""
    import subprocess
    import sys

    code = (
        "import sys, reference_server.protocol, reference_server.messages; "
        "print(sorted(m for m in ('redis', 'psycopg', 'psycopg_pool', 'sqlite3', 'aiohttp', 'asyncio') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""Frame dataclasses: parsing, checks when built, serialisation."""

from __future__ import annotations

import json

import orjson
import pytest

from reference_server.errors import (
    ERROR_CODES,
    InvalidBatch,
    InvalidField,
    InvalidJSON,
    InvalidMessage,
    InvalidPayloadData,
    InvalidReceiver,
    ProtocolError,
    UnknownType,
)
from reference_server.messages import (
    Ack,
    Batch,
    ChatMessage,
    Error,
    NewMessage,
    Notification,
    NotificationRead,
    Ping,
    ProgressUpdate,
    StoredMessage,
    decode_json,
    parse_message,
    request_id_of,
    validate_user_id,
)


def test_parse_builds_one_dataclass_per_type():
    chat = parse_message(
        {
            "type": "chat_message",
            "receiverId": "bob",
            "requestId": "r",
            "message": {"content": "hi", "timestamp": "T"},
        }
    )
    assert chat == ChatMessage(receiver_id="bob", content="hi", timestamp="T", request_id="r")
    assert parse_message({"type": "notification_read", "id": "n"}) == NotificationRead(id="n")
    progress = parse_message(
        {"type": "progress_update", "progress": {"subject": "s", "topic": "t", "completion": 0}}
    )
    assert progress == ProgressUpdate(subject="s", topic="t", completion=0)
    assert parse_message({"type": "ping", "ts": 5}) == Ping(ts=5)
    assert parse_message({"type": "batch", "messages": [1]}) == Batch(messages=(1,))


@pytest.mark.parametrize(
    ("obj", "exc"),
    [
        ([], InvalidMessage),
        ({"type": None}, InvalidMessage),
        ({"type": "nope"}, UnknownType),
        ({"type": "chat_message", "receiverId": "b", "message": []}, InvalidField),
        ({"type": "chat_message", "receiverId": ["b"], "message": {"content": "x"}}, InvalidReceiver),
        ({"type": "batch", "messages": "x"}, InvalidBatch),
        ({"type": "ping", "requestId": ""}, InvalidField),
        ({"type": "ping", "requestId": 2**60}, InvalidField),
        ({"type": "ping", "requestId": True}, InvalidField),
        ({"type": "ping", "ts": {"a": 1}}, InvalidField),
    ],
)
def test_bad_fields_raise_the_matching_error(obj, exc):
    with pytest.raises(exc) as info:
        parse_message(obj)
    assert info.value.code in ERROR_CODES and info.value.message


def test_checks_run_when_built_directly_too():
    with pytest.raises(InvalidField):
        ProgressUpdate(subject="s", topic="t", completion=float("nan"))
    with pytest.raises(InvalidReceiver):
        ChatMessage(receiver_id="", content="x")


def test_decode_json_distinguishes_bad_json_from_bad_utf8():
    with pytest.raises(InvalidJSON):
        decode_json("{")
    with pytest.raises(InvalidPayloadData) as info:
        decode_json(b'"\xff"')
    assert info.value.close_code == 1007


def test_user_ids_are_any_short_non_empty_string():
    assert validate_user_id("ユーザー") == "ユーザー"
    assert validate_user_id("x" * 256) == "x" * 256
    for bad in ("", "x" * 257, 5, None):
        with pytest.raises(InvalidReceiver):
            validate_user_id(bad)


def test_request_id_of_ignores_malformed_ids():
    assert request_id_of({"requestId": "a"}) == "a"
    assert request_id_of({"requestId": 7}) == 7
    assert request_id_of({"requestId": [1]}) is None
    assert request_id_of("not a dict") is None


def test_outbound_frames_serialise_to_the_documented_shapes():
    m = StoredMessage(
        seq=3,
        id="m3",
        sender_id="a",
        receiver_id="b",
        content="c",
        timestamp=1,
        created_at="2026-11-25T00:00:00.000Z",
    )
    assert json.loads(NewMessage(m).to_frame()) == {
        "type": "new_message",
        "data": {
            "id": "m3",
            "senderId": "a",
            "receiverId": "b",
            "content": "c",
            "timestamp": 1,
            "createdAt": "2026-11-25T00:00:00.000Z",
        },
    }
    fragment = orjson.Fragment(orjson.dumps(m.to_json()))
    assert NewMessage(m).to_frame(fragment) == NewMessage(m).to_frame()
    assert json.loads(Ack(request_id=1, data={"x": 1}).to_frame()) == {
        "type": "ack",
        "requestId": 1,
        "data": {"x": 1},
    }
    assert json.loads(Error(code="c", message="m").to_frame()) == {
        "type": "error",
        "code": "c",
        "message": "m",
    }
    n = Notification(
        seq=1,
        id="n",
        user_id="u",
        title="t",
        body="b",
        read=False,
        created_at="c",
        updated_at="u",
        extra={"link": "/x", "id": "spoof"},
    )
    assert n.to_json()["id"] == "n" and n.to_json()["link"] == "/x"  # fixed fields win


def test_every_error_class_says_whose_fault_it_is():
    for cls in ProtocolError.__subclasses__():
        assert cls.__doc__

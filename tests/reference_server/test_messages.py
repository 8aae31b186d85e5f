"""Frame schemas: decoding and checking, the error code each fault maps to, serialisation."""

from __future__ import annotations

import json

import msgspec
import pytest

from reference_server.errors import (
    ERROR_CODES,
    ContentTooLong,
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
    ChatContent,
    ChatMessage,
    Error,
    NewMessage,
    Notification,
    NotificationRead,
    NotificationUpdate,
    Ping,
    Pong,
    ProgressFields,
    ProgressUpdate,
    StoredMessage,
    decode_message,
    encode,
    request_id_of,
    validate_user_id,
)


def frame(obj: object) -> str:
    return json.dumps(obj)


def chat_with(**content: object) -> dict[str, object]:
    return {"type": "chat_message", "receiverId": "b", "message": {"content": "x", **content}}


def progress_with(completion: object) -> dict[str, object]:
    return {"type": "progress_update", "progress": {"subject": "s", "topic": "t", "completion": completion}}


def test_decode_builds_one_struct_per_type():
    chat = decode_message(
        frame(
            {
                "type": "chat_message",
                "receiverId": "bob",
                "requestId": "r",
                "senderId": "mallory",  # never trusted: not even kept
                "message": {"content": "hi", "timestamp": "T"},
            }
        )
    )
    assert chat == ChatMessage(
        receiver_id="bob", message=ChatContent(content="hi", timestamp="T"), request_id="r"
    )
    assert (chat.content, chat.timestamp) == ("hi", "T")
    assert decode_message(frame({"type": "notification_read", "id": "n"})) == NotificationRead(id="n")
    progress = decode_message(
        frame({"type": "progress_update", "progress": {"subject": "s", "topic": "t", "completion": 0}})
    )
    assert progress == ProgressUpdate(progress=ProgressFields(subject="s", topic="t", completion=0))
    assert (progress.subject, progress.topic, progress.completion) == ("s", "t", 0)
    assert decode_message(frame({"type": "ping", "ts": 5})) == Ping(ts=5)
    batch = decode_message(frame({"type": "batch", "messages": [1, {"a": 2}]}))
    assert isinstance(batch, Batch) and [bytes(m) for m in batch.messages] == [b"1", b'{"a": 2}']


@pytest.mark.parametrize(
    ("obj", "exc"),
    [
        ([], InvalidMessage),
        ("text", InvalidMessage),
        ({}, InvalidMessage),
        ({"type": None}, InvalidMessage),
        ({"type": "nope"}, UnknownType),
        ({"type": "chat_message", "receiverId": "b", "message": []}, InvalidField),
        ({"type": "chat_message", "receiverId": "b"}, InvalidField),
        ({"type": "chat_message", "receiverId": "b", "message": {}}, InvalidField),
        ({"type": "chat_message", "receiverId": "b", "message": {"content": 5}}, InvalidField),
        ({"type": "chat_message", "message": {"content": "x"}}, InvalidReceiver),
        ({"type": "chat_message", "receiverId": ["b"], "message": {"content": "x"}}, InvalidReceiver),
        ({"type": "chat_message", "receiverId": "", "message": {"content": "x"}}, InvalidReceiver),
        ({"type": "chat_message", "receiverId": "x" * 257, "message": {"content": "x"}}, InvalidReceiver),
        (
            {"type": "chat_message", "receiverId": "b", "message": {"content": "x", "timestamp": ""}},
            InvalidField,
        ),
        (
            {"type": "chat_message", "receiverId": "b", "message": {"content": "x", "timestamp": True}},
            InvalidField,
        ),
        ({"type": "notification_read"}, InvalidField),
        ({"type": "notification_read", "id": ""}, InvalidField),
        ({"type": "progress_update", "progress": {"subject": "s", "topic": "t"}}, InvalidField),
        (
            {"type": "progress_update", "progress": {"subject": "s", "topic": "t", "completion": 101}},
            InvalidField,
        ),
        (
            {"type": "progress_update", "progress": {"subject": "s", "topic": "t", "completion": "5"}},
            InvalidField,
        ),
        ({"type": "batch", "messages": "x"}, InvalidBatch),
        ({"type": "batch"}, InvalidBatch),
        ({"type": "ping", "requestId": ""}, InvalidField),
        ({"type": "ping", "requestId": 2**60}, InvalidField),
        ({"type": "ping", "requestId": True}, InvalidField),
        ({"type": "ping", "requestId": "r" * 129}, InvalidField),
        ({"type": "ping", "ts": {"a": 1}}, InvalidField),
    ],
)
def test_bad_fields_raise_the_matching_error(obj, exc):
    with pytest.raises(exc) as info:
        decode_message(frame(obj))
    assert info.value.code in ERROR_CODES and info.value.message


def test_decode_distinguishes_bad_json_from_bad_utf8():
    with pytest.raises(InvalidJSON):
        decode_message("{")
    with pytest.raises(InvalidJSON):
        decode_message('{"type": "ping", "ts": NaN}')
    with pytest.raises(InvalidPayloadData) as info:
        decode_message(b'{"type": "ping", "ts": "\xff"}')
    assert info.value.close_code == 1007


def test_numbers_that_json_cannot_round_trip_are_refused():
    with pytest.raises(InvalidField):
        decode_message('{"type": "ping", "ts": 1e400}')
    big = decode_message('{"type": "ping", "ts": 123456789012345678901234567890}')
    assert encode(big.response()) == b'{"type":"pong","ts":123456789012345678901234567890}'


def test_user_ids_are_any_short_non_empty_string():
    assert validate_user_id("ユーザー") == "ユーザー"
    assert validate_user_id("x" * 256) == "x" * 256
    for bad in ("", "x" * 257, 5, None):
        with pytest.raises(InvalidReceiver):
            validate_user_id(bad)


def test_request_id_of_ignores_malformed_ids():
    assert request_id_of('{"requestId": "a"}') == "a"
    assert request_id_of(b'{"requestId": 7}') == 7
    assert request_id_of(msgspec.Raw(b'{"requestId": 8}')) == 8
    assert request_id_of('{"requestId": [1]}') is None
    assert request_id_of('{"requestId": true}') is None
    assert request_id_of('"not an object"') is None
    assert request_id_of("{") is None


def test_outbound_frames_serialise_to_the_documented_shapes():
    m = StoredMessage(
        id="m3",
        sender_id="a",
        receiver_id="b",
        content="c",
        timestamp=1,
        created_at="2026-11-25T00:00:00.000Z",
    )
    assert json.loads(encode(NewMessage(data=m))) == {
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
    shared = msgspec.Raw(encode(m))
    assert encode(NewMessage(data=shared)) == encode(NewMessage(data=m))
    assert json.loads(encode(Ack(request_id=1, data={"x": 1}))) == {
        "type": "ack",
        "requestId": 1,
        "data": {"x": 1},
    }
    assert json.loads(encode(Ack(request_id="r"))) == {"type": "ack", "requestId": "r", "data": None}
    assert json.loads(encode(Error(code="c", message="m"))) == {"type": "error", "code": "c", "message": "m"}
    assert json.loads(encode(Error(code="c", message="m", request_id=2)))["requestId"] == 2
    assert json.loads(encode(Pong(ts=None))) == {"type": "pong", "ts": None}
    assert json.loads(encode(Pong(ts=1, request_id="p"))) == {"type": "pong", "ts": 1, "requestId": "p"}
    n = Notification(
        id="n", user_id="u", title="t", body="b", read=False, created_at="c", updated_at="u", link="/x"
    )
    assert json.loads(encode(NotificationUpdate(data=n)))["data"] == {
        "id": "n",
        "userId": "u",
        "title": "t",
        "body": "b",
        "read": False,
        "createdAt": "c",
        "updatedAt": "u",
        "link": "/x",  # optional fields appear only when set
    }
    assert n.extra() == {"link": "/x"}


def test_content_length_is_a_session_limit_not_a_schema_one():
    long = {"type": "chat_message", "receiverId": "b", "message": {"content": "x" * 20_000}}
    assert decode_message(frame(long)).content == "x" * 20_000
    assert ContentTooLong.code in ERROR_CODES


def test_every_error_class_says_whose_fault_it_is():
    for cls in ProtocolError.__subclasses__():
        assert cls.__doc__

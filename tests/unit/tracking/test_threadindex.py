"""Thread-Index: GUIDs of real Outlook/Exchange values, new and child values, never raising."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.tracking.threadindex import (
    child_thread_index,
    conversation_guid,
    new_thread_index,
)

# Exchange Online (modern header: 0x01, then FILETIME >> 24), Date 2022-07-20 19:58:07 UTC.
MODERN = "AQHYnHLVENTK1UHdsEyeUwZej/8cmg=="
# Outlook 2003 (classic header: FILETIME >> 16), with one reply block; Date 2006-06-02.
CLASSIC_REPLY = "AcaGRtIDk32mHzBMTdqcqq5tQbqNEwAR8Mzg"
CLASSIC_PARENT = "AcaGRtIDk32mHzBMTdqcqq5tQbqNEw=="


@pytest.mark.parametrize(
    ("value", "guid"),
    [
        (MODERN, "10d4cad5-41dd-b04c-9e53-065e8fff1c9a"),
        (CLASSIC_REPLY, "937da61f-304c-4dda-9caa-ae6d41ba8d13"),
        (CLASSIC_PARENT, "937da61f-304c-4dda-9caa-ae6d41ba8d13"),
        ("AcSvcQAwHXz0fOQjRPG8+rJerlZAkQ==", "1d7cf47c-e423-44f1-bcfa-b25eae564091"),
        (
            "AQHWW4kYTVU0hTDyYEitKlUuU5vZlKkKf2uAgAACLICAAR7YAIAAIxaAgAAB34CAAARBAIAAAV+AgAADXAA=",
            "4d553485-30f2-6048-ad2a-552e539bd994",
        ),
        (" AQHYnHLVENTK1UHdsEye\r\n UwZej/8cmg ", "10d4cad5-41dd-b04c-9e53-065e8fff1c9a"),
    ],
)
def test_guid_of_real_values(value: str, guid: str) -> None:
    assert conversation_guid(value) == guid


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "not base64 at all!",
        "AQHYnHLVENTK1UHdsEye",  # 15 bytes: shorter than the header
        "AQHYnHLVENTK1UHdsEyeUwZej/8cmgAA",  # 24 bytes: not 22 + 5n
        base64.b64encode(b"\x02" + bytes(range(1, 22))).decode(),  # reserved byte not 0x01
        base64.b64encode(b"\x01" + b"\x01\xd8\x9c\x72\xd5" + bytes(16)).decode(),  # zero GUID
        "A" * 5000,
    ],
)
def test_malformed_values_give_none(value: str | None) -> None:
    assert conversation_guid(value) is None


def test_new_thread_index_bytes() -> None:
    guid = uuid.UUID("10d4cad5-41dd-b04c-9e53-065e8fff1c9a")

    value = new_thread_index(datetime(2022, 7, 20, 19, 56, 42, 200_000, tzinfo=UTC), guid)

    # The same time bytes as Exchange's own value for that conversation.
    assert base64.b64decode(value) == base64.b64decode(MODERN)
    assert value == MODERN


def test_child_block_matches_outlook() -> None:
    parent = base64.b64decode(CLASSIC_PARENT)
    header_ticks = int.from_bytes(parent[:6], "big") << 16
    outlook_delta = 0x0011F0CC << 18  # the child block Outlook wrote, D=0
    ticks = header_ticks + outlook_delta + 100
    moment = datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=ticks // 10)

    child = base64.b64decode(child_thread_index(CLASSIC_PARENT, moment))

    assert child[:22] == parent
    assert child[22:26] == b"\x00\x11\xf0\xcc"
    assert len(child) == 27


def test_child_of_a_long_gap_uses_the_coarse_delta() -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    parent = new_thread_index(start, uuid.UUID(int=1))

    child = base64.b64decode(child_thread_index(parent, start + timedelta(days=3 * 365)))

    assert child[22] & 0x80  # D=1: the delta is shifted by 23 bits


def test_child_of_garbage_raises() -> None:
    with pytest.raises(ValueError, match="Thread-Index"):
        child_thread_index("garbage", datetime(2024, 1, 1, tzinfo=UTC))


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_conversation_guid_never_raises(value: str) -> None:
    result = conversation_guid(value)

    assert result is None or str(uuid.UUID(result)) == result


@settings(max_examples=100)
@given(st.binary(min_size=22, max_size=60))
def test_conversation_guid_of_any_bytes_never_raises(data: bytes) -> None:
    conversation_guid(base64.b64encode(data).decode())


moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1))


@settings(max_examples=200)
@given(
    moments,
    st.uuids().filter(lambda u: u.int != 0),
    st.lists(st.timedeltas(timedelta(0), timedelta(days=5000)), max_size=5),
)
def test_children_keep_the_guid(start: datetime, guid: uuid.UUID, gaps: list[timedelta]) -> None:
    value = new_thread_index(start.replace(tzinfo=UTC), guid)
    moment = start
    for generation, gap in enumerate(gaps, start=1):
        moment += gap
        value = child_thread_index(value, moment)
        assert len(base64.b64decode(value)) == 22 + 5 * generation

    assert conversation_guid(value) == str(guid)

"""Tracking tokens: format, find (exact digits), append under a length bound, strip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.tracking.token import (
    ELLIPSIS,
    TokenFormat,
    find_token,
    format_token,
    strip_token,
    subject_with_token,
)

FMT = TokenFormat()


def test_format_token() -> None:
    assert format_token(1234) == "CRM:0001234"
    assert format_token(0, TokenFormat("T-", 3)) == "T-000"
    with pytest.raises(ValueError, match="digits"):
        format_token(10_000_000)
    with pytest.raises(ValueError, match="digits"):
        format_token(-1)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Quote CRM:0001234", "CRM:0001234"),
        ("RE: Quote [crm:0001234]", "CRM:0001234"),
        ("(Crm:0001234) first", "CRM:0001234"),
        ("a CRM:0000001 b CRM:0000002.", "CRM:0000002"),
        ("CRM:0000001 then CRM:12345678", "CRM:0000001"),
        ("CRM:12345678", None),  # one digit too many
        ("CRM:123456", None),  # one too few
        ("XCRM:0001234", None),
        ("CRM:0001234abc", None),
        ("CRM: 0001234", None),
        ("CRM:٠٠٠١٢٣٤", None),  # Arabic-Indic digits are not token digits
        ("no token", None),
    ],
)
def test_find_token(subject: str, expected: str | None) -> None:
    assert find_token(subject, FMT) == expected


def test_find_token_other_format() -> None:
    fmt = TokenFormat("#", 4)

    assert find_token("Ticket #0042 (was #00421)", fmt) == "#0042"


def test_subject_with_token() -> None:
    assert subject_with_token("Quote", "CRM:0001234") == "Quote CRM:0001234"
    assert subject_with_token("", "CRM:0001234") == "CRM:0001234"
    assert subject_with_token("Quote CRM:0001234", "CRM:0001234") == "Quote CRM:0001234"
    assert subject_with_token("Quote [crm:0001234] May", "CRM:0001234") == "Quote May CRM:0001234"
    assert subject_with_token("A long subject", "CRM:0001234", 20) == "A long… CRM:0001234"
    assert subject_with_token("A long subject", "CRM:0001234", 12) == "CRM:0001234"


@pytest.mark.parametrize(
    ("subject", "room", "kept"),
    [
        ("ee\u0301\u0301e\u0301", 3, "e"),  # never split e + combining marks
        ("ee\u0301\u0301e\u0301", 4, "ee\u0301\u0301"),
        ("a\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea", 3, "a\U0001f1eb\U0001f1f7"),  # flags
        ("a\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea", 2, "a"),
        ("ab\U0001f468\u200d\U0001f469\u200d\U0001f467", 5, "ab"),  # a ZWJ family
        ("abc\u2764\ufe0fx", 4, "abc"),  # variation selector
        ("x\u1100\u1161\u11a8\u1100\u1161", 3, "x"),  # Hangul jamo
    ],
)
def test_shortening_keeps_graphemes_whole(subject: str, room: int, kept: str) -> None:
    token = "CRM:0001234"

    result = subject_with_token(subject, token, len(token) + 1 + len(ELLIPSIS) + room)

    assert result == f"{kept}{ELLIPSIS} {token}"


def test_strip_token() -> None:
    assert strip_token("Quote  [CRM:0001234]  x (crm:0000002)", FMT) == "Quote x"
    assert strip_token("  Quote  ", FMT) == "Quote"
    assert strip_token("CRM:12345678 stays", FMT) == "CRM:12345678 stays"


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="max_length"):
        subject_with_token("x", "CRM:0001234", 5)
    with pytest.raises(ValueError, match="token"):
        subject_with_token("x", " ")
    with pytest.raises(ValueError, match="prefix"):
        TokenFormat("", 7)
    with pytest.raises(ValueError, match="digits"):
        TokenFormat("CRM:", 0)


tokens = st.integers(0, 9_999_999).map(format_token)
lengths = st.integers(min_value=len("CRM:0000000"), max_value=300)


@settings(max_examples=400)
@given(st.text(max_size=300), tokens, lengths)
def test_appended_token_is_found_and_length_holds(subject: str, token: str, length: int) -> None:
    result = subject_with_token(subject, token, length)

    assert find_token(result, FMT) == token
    assert len(result) <= length
    assert result.upper().count(token) == 1


@settings(max_examples=200)
@given(st.text(max_size=100), tokens)
def test_adding_twice_changes_nothing(subject: str, token: str) -> None:
    once = subject_with_token(subject, token)

    assert subject_with_token(once, token) == once


@settings(max_examples=200)
@given(st.text(max_size=100), tokens)
def test_strip_undoes_append(subject: str, token: str) -> None:
    assert find_token(strip_token(subject_with_token(subject, token), FMT), FMT) is None


@settings(max_examples=200)
@given(st.text(alphabet="CRMcrm:0123456789 []()x", max_size=40), st.integers(1, 9))
def test_found_tokens_have_exactly_the_digits(subject: str, digits: int) -> None:
    fmt = TokenFormat("CRM:", digits)

    found = find_token(subject, fmt)

    if found is not None:
        assert found.startswith("CRM:")
        assert len(found) == 4 + digits
        assert found[4:].isdigit()

"""CRM tracking tokens in subjects: ``Quote for May CRM:0001234``.

Outgoing CRM email gets a token appended to its subject; a reply that keeps the subject
correlates by it even when In-Reply-To/References were lost. A token is the format's
prefix (matched case-insensitively) and exactly ``digits`` ASCII digits, standing alone:
not preceded by a letter or digit and not followed by one, so ``CRM:00012345`` (one digit
too many) and ``XCRM:0001234`` are not tokens. Spaces and brackets around it are fine.

Lengths are counted in code points (as a CRM subject column is); shortening never splits
a grapheme cluster (base + combining marks, ZWJ emoji sequences, flag pairs, variation
selectors, Hangul jamo). Pure: no I/O, no clock. Same idea as Dynamics 365's tracking
token (prefix, number, digits) in the subject.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from crmsync.core.tokens import TokenFormat, example_token, format_token

__all__ = [
    "TokenFormat",
    "exact_token_pattern",
    "example_token",
    "find_token",
    "format_token",
    "strip_token",
    "subject_with_token",
]

ELLIPSIS = "…"


def _boundaries(text: str) -> tuple[str, str]:
    before = r"(?<!\w)" if re.match(r"\w", text) else ""
    after = r"(?!\w)" if re.search(r"\w\Z", text) else ""
    return before, after


def _bracketed(core: str) -> str:
    return rf"\[\s*{core}\s*\]|\(\s*{core}\s*\)|{core}"


def _format_core(fmt: TokenFormat, capture: bool) -> str:
    before, _ = _boundaries(fmt.prefix)
    digits = f"[0-9]{{{fmt.digits}}}"
    return rf"{before}(?i:{re.escape(fmt.prefix)}){f'({digits})' if capture else digits}(?!\w)"


@functools.lru_cache(maxsize=64)
def _find_pattern(fmt: TokenFormat) -> re.Pattern[str]:
    return re.compile(_format_core(fmt, capture=True))


@functools.lru_cache(maxsize=64)
def _strip_pattern(fmt: TokenFormat) -> re.Pattern[str]:
    return re.compile(_bracketed(_format_core(fmt, capture=False)))


@functools.lru_cache(maxsize=64)
def exact_token_pattern(token: str) -> re.Pattern[str]:
    """One given token, any case, standing alone, with the brackets around it if any."""
    before, after = _boundaries(token)
    return re.compile(_bracketed(f"{before}{re.escape(token)}{after}"), re.IGNORECASE)


def find_token(subject: str, fmt: TokenFormat = TokenFormat()) -> str | None:
    """The last token in ``subject``, with the format's own prefix case, or None.

    ``'RE: Quote [crm:0001234]'`` → ``'CRM:0001234'``; ``'CRM:12345678'`` → None.
    """
    found = None
    for match in _find_pattern(fmt).finditer(subject):
        found = match.group(1)
    return None if found is None else f"{fmt.prefix}{found}"


def _remove(subject: str, pattern: re.Pattern[str]) -> str:
    """``subject`` without the matches; the text around each joined by one space."""
    pieces = (piece.strip() for piece in pattern.split(subject))
    return " ".join(piece for piece in pieces if piece)


def strip_token(subject: str, fmt: TokenFormat = TokenFormat()) -> str:
    """``subject`` without any token of ``fmt`` (or the brackets around it), trimmed.

    Where a token was removed, the text around it is joined by one space:
    ``'Quote  [CRM:0001234]  x'`` → ``'Quote x'``.
    """
    pattern = _strip_pattern(fmt)
    return _remove(subject, pattern) if pattern.search(subject) else subject.strip()


def _joins_previous(previous: str, char: str) -> bool:
    """Whether ``char`` continues the grapheme cluster ``previous`` belongs to."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or char in "\u200c\u200d"
        or previous == "\u200d"
        or (previous == "\r" and char == "\n")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin tones
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences
        or 0xE0100 <= code <= 0xE01EF  # variation selectors supplement
        or 0x1160 <= code <= 0x11FF  # Hangul medial vowels and final consonants
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _grapheme_prefix(text: str, limit: int) -> str:
    """The longest prefix of ``text`` of at most ``limit`` code points ending on a boundary."""
    cut = min(limit, len(text))
    while 0 < cut < len(text):
        if _joins_previous(text[cut - 1], text[cut]):
            cut -= 1
            continue
        if _is_regional_indicator(text[cut]):
            run = 0
            while run < cut and _is_regional_indicator(text[cut - 1 - run]):
                run += 1
            if run % 2:
                cut -= 1
                continue
        break
    return text[:cut]


def subject_with_token(subject: str, token: str, max_length: int = 255) -> str:
    """``subject`` + ``' '`` + ``token``, never longer than ``max_length`` code points.

    A copy of ``token`` already in the subject is moved to the end, never duplicated.
    A subject too long is shortened on a grapheme boundary and ends with ``'…'``:
    ``subject_with_token('A long subject', 'CRM:0001234', 20)`` → ``'A long… CRM:0001234'``.
    """
    token = token.strip()
    if not token or any(ch.isspace() for ch in token):
        raise ValueError("a token is non-empty and has no whitespace")
    if len(token) > max_length:
        raise ValueError("max_length is shorter than the token")
    existing = exact_token_pattern(token)
    base = _remove(subject, existing) if existing.search(subject) else subject.strip()
    if not base:
        return token
    if len(base) + 1 + len(token) <= max_length:
        return f"{base} {token}"
    room = max_length - len(token) - 1 - len(ELLIPSIS)
    shortened = _grapheme_prefix(base, room).rstrip() if room > 0 else ""
    if not shortened:
        return token
    return f"{shortened}{ELLIPSIS} {token}"

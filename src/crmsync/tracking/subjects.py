"""Normalised subjects: the conversation topic of an email, for smart matching.

``normalise_subject`` strips the reply/forward prefixes mail clients add in many languages
(``Re:``, ``AW:``, ``SV:``, ``Odp:``, ``ΑΠ:``, ``Ответ:``, ``回复:``…, also with full-width
colons and counters such as ``Re[2]:`` or ``Re^2:``) and leading list tags
(``[list-name]``), removes a given tracking token, collapses whitespace and case-folds
(Unicode NFKC_Casefold, so full-width letters and colons compare as their ASCII forms).
The result is idempotent and does not change when any chain of such prefixes is put in
front of the subject.

It must never be used to display a subject: it is a comparison key. Pure; no I/O.
The same idea as MAPI's PidTagNormalizedSubject (MS-OXPROPS) and Outlook's Thread-Topic
header, with more prefixes than either.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["REPLY_FORWARD_PREFIXES", "normalise_subject"]

# Case-folded; longer alternatives are tried first.
REPLY_FORWARD_PREFIXES: tuple[str, ...] = (
    # English, and the Latin-script ones Outlook, Gmail and Thunderbird localise to
    "re", "fwd", "fw", "aw", "wg", "antw", "antwort", "doorst", "sv", "vs", "vl", "fs",
    "rv", "res", "enc", "tr", "réf", "ref", "rif", "r", "i", "odp", "pd", "ynt", "ilt",
    "i\u0307lt", "vá", "válasz", "továbbítás", "trả lời", "chuyển tiếp",
    # Greek, Cyrillic, Hebrew, Arabic
    "απ", "σχετ", "πρθ", "пр", "ответ", "отв", "пересл", "відп", "השב", "הועבר", "رد",
    "توجيه", "إعادة توجيه",
    # Chinese, Japanese, Korean
    "回复", "回覆", "答复", "答覆", "转发", "轉寄", "轉發", "转寄", "返信", "転送", "회신",
    "전달",
)  # fmt: skip

_PREFIX = "|".join(re.escape(p) for p in sorted(REPLY_FORWARD_PREFIXES, key=len, reverse=True))
_COUNTER = r"(?:\[\d+\]|\^\d+|\(\d+\))?"
_LEADING = re.compile(rf"(?:(?:{_PREFIX})\.?\s*{_COUNTER}\s*:\s*|\[[^\[\]]*\]\s*)+")


def _fold(text: str) -> str:
    """Unicode NFKC_Casefold (approximately: NFKC, full case folding, NFKC again)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _without_token(subject: str, token: str) -> str:
    escaped = re.escape(token.strip())
    before = r"(?<!\w)" if re.match(r"\w", token.strip()) else ""
    after = r"(?!\w)" if re.search(r"\w$", token.strip()) else ""
    core = f"{before}{escaped}{after}"
    pattern = rf"\[\s*{core}\s*\]|\(\s*{core}\s*\)|{core}"
    return re.sub(pattern, " ", subject, flags=re.IGNORECASE)


def normalise_subject(subject: str, token: str | None = None) -> str:
    """``'RE: AW: [sales] Quote CRM:0001234'`` (token ``'CRM:0001234'``) → ``'quote'``."""
    if token and token.strip():
        subject = _without_token(subject, token)
    text = " ".join(_fold(subject).split())
    match = _LEADING.match(text)
    if match:
        text = text[match.end() :]
    return text.strip()

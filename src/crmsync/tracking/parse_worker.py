"""The function parser processes run: parse, or hand back the MalformedMessage.

A module of its own, importing nothing heavy, so that starting a parser process costs
a tenth of a second rather than the seconds the whole engine takes to import.
"""

from __future__ import annotations

from crmsync.tracking.parse import MalformedMessage, ParsedMessage, ParseLimits, parse_message


def parse_or_error(raw: bytes, limits: ParseLimits) -> ParsedMessage | MalformedMessage:
    try:
        return parse_message(raw, limits)
    except MalformedMessage as exc:
        return exc

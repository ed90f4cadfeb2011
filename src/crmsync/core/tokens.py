"""The shape of a CRM tracking token, ``CRM:0001234``: its format and how a number is
written in it.

Shared by crm/ (which numbers tokens) and tracking/ (which finds them in subjects). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TokenFormat:
    prefix: str = "CRM:"
    digits: int = 7

    def __post_init__(self) -> None:
        if not self.prefix or any(ch.isspace() for ch in self.prefix):
            raise ValueError("a token prefix must be non-empty and without whitespace")
        if not 1 <= self.digits <= 18:
            raise ValueError("a token has between 1 and 18 digits")


def format_token(number: int, fmt: TokenFormat = TokenFormat()) -> str:
    """``format_token(1234)`` → ``'CRM:0001234'``."""
    if not 0 <= number < 10**fmt.digits:
        raise ValueError(f"a token number has at most {fmt.digits} digits")
    return f"{fmt.prefix}{number:0{fmt.digits}d}"


EXAMPLE_NUMBER = 1234


def example_token(fmt: TokenFormat = TokenFormat()) -> str:
    """The token ``fmt`` puts in a subject, for people to see: ``'CRM:0001234'``
    (``'CRM:234'`` with three digits: the example number is cut to fit)."""
    return format_token(EXAMPLE_NUMBER % 10**fmt.digits, fmt)

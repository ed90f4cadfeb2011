"""normalise_subject: prefixes in many languages, list tags, tokens; idempotent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.tracking.subjects import REPLY_FORWARD_PREFIXES, normalise_subject


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Quote for May", "quote for may"),
        ("RE: AW: Fwd: Quote", "quote"),
        ("Re[2]: Re^3: Re(4): hello", "hello"),
        ("Re : TR : Réf. : Réunion", "réunion"),
        ("\uff32\uff45\uff1a\u3000Hello", "hello"),  # full-width Re, colon and space
        ("回复\uff1a转发: 你好", "你好"),
        ("答复: 轉寄: 回覆: x", "x"),
        ("ΑΠ: ΣΧΕΤ: Γεια", "γεια"),
        ("Ответ: ПР: привет", "привет"),
        ("İLT: YNT: Merhaba", "merhaba"),
        ("Vá: Továbbítás: Szia", "szia"),
        ("SV: VS: WG: Antw: Doorst: Odp: PD: RV: hej", "hej"),
        ("[sales] Re: [sales] Quote", "quote"),
        ("Re:   many    spaces\t here ", "many spaces here"),
        ("Review: not a prefix", "review: not a prefix"),
        ("Rev. 2: not a prefix", "rev. 2: not a prefix"),
        ("Re", "re"),
        ("", ""),
        ("[list]", ""),
    ],
)
def test_examples(subject: str, expected: str) -> None:
    assert normalise_subject(subject) == expected


def test_token_is_removed_with_its_brackets() -> None:
    token = "CRM:0001234"

    assert normalise_subject("RE: Quote [CRM:0001234]", token) == "quote"
    assert normalise_subject("RE: Quote (crm:0001234) May", token) == "quote may"
    assert normalise_subject("CRM:00012345 stays", token) == "crm:00012345 stays"


_SEPARATORS = st.sampled_from([":", ": ", " : ", "\uff1a", "\uff1a ", ":  "])
_COUNTERS = st.sampled_from(["", "[2]", "^3", "(12)"])
_CASES = st.sampled_from([str.upper, str.lower, str.title, lambda s: s])


@st.composite
def prefix_chains(draw: st.DrawFn) -> str:
    chain = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            case = draw(_CASES)
            prefix = case(draw(st.sampled_from(REPLY_FORWARD_PREFIXES)))
            chain.append(prefix + draw(_COUNTERS) + draw(_SEPARATORS))
        else:
            tag = draw(st.text(st.characters(exclude_characters="[]"), max_size=8))
            chain.append(f"[{tag}]" + draw(st.sampled_from(["", " "])))
    return "".join(chain)


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_idempotent(subject: str) -> None:
    once = normalise_subject(subject)

    assert normalise_subject(once) == once


@settings(max_examples=300)
@given(prefix_chains(), st.text(max_size=40))
def test_prefix_chains_do_not_change_the_result(chain: str, subject: str) -> None:
    assert normalise_subject(chain + subject) == normalise_subject(subject)

"""The side panel lookup's pure parts: reading header values and Message-IDs."""

from __future__ import annotations

from crmsync.core.types import Participation
from crmsync.crm.panel_lookup import Participant, message_id_forms, parse_participants

FROM, TO, CC = Participation.FROM, Participation.TO, Participation.CC


def test_header_values_become_participants_in_role_order() -> None:
    found = parse_participants(
        {
            CC: ["c@z.test"],
            TO: ["b@y.test, Cid <cid@z.test>", '"Doe, Jo" <jo@x.test>'],
            FROM: ["Ann Example <ann@x.test>"],
        }
    )
    assert found == [
        Participant("Ann Example", "ann@x.test", FROM),
        Participant("", "b@y.test", TO),
        Participant("Cid", "cid@z.test", TO),
        Participant("Doe, Jo", "jo@x.test", TO),
        Participant("", "c@z.test", CC),
    ]


def test_what_is_not_an_address_is_skipped() -> None:
    values = ["undisclosed-recipients:;", "no at sign", "a\x00b@x.test", "<>", "ok@x.test"]
    assert parse_participants({TO: values}) == [Participant("", "ok@x.test", TO)]


def test_message_ids_are_looked_for_bracketed_and_bare() -> None:
    assert message_id_forms("<a@x.test>") == ["<a@x.test>", "a@x.test"]
    assert message_id_forms(" a@x.test ") == ["<a@x.test>", "a@x.test"]
    assert message_id_forms("<a@x.\r\n test>") == ["<a@x.test>", "a@x.test"]
    for nothing in (None, "", "<>", "  ", "<a\x00@x>"):
        assert message_id_forms(nothing) == []

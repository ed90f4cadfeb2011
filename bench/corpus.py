"""A deterministic, realistic mail corpus for the ingest benchmark.

``generate(count, seed)`` yields RFC 5322 messages: most 2-20 KB of text or HTML, about
10% with a 50-500 KB attachment, ~2,000 distinct addresses, threads with In-Reply-To and
References, RFC 2047 encoded-word subjects in several languages. The same seed gives the
same bytes, so runs compare.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

WORDS = [
    "quote",
    "order",
    "invoice",
    "meeting",
    "contract",
    "renewal",
    "seats",
    "licence",
    "delivery",
    "support",
    "question",
    "thanks",
    "schedule",
    "proposal",
    "discount",
    "pilot",
    "onboarding",
    "price",
    "team",
    "update",
    "Angebot",
    "Rechnung",
    "Besprechung",
    "réunion",
    "facture",
    "commande",
    "見積もり",
    "会議",
    "предложение",
]
SUBJECT_LANGUAGES = ("Re: ", "AW: ", "RE: ", "Fwd: ", "SV: ", "TR: ", "")


def _addresses(rng: random.Random, count: int) -> list[tuple[str, str]]:
    domains = [f"customer{n}.example" for n in range(200)]
    return [(f"Person {n}", f"person{n}@{rng.choice(domains)}") for n in range(count)]


def _text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
        out.append(line)
        length += len(line) + 1
    return "\n".join(out)


def generate(count: int = 10_000, seed: int = 7) -> Iterator[bytes]:
    rng = random.Random(seed)
    people = _addresses(rng, 2000)
    staff = [("Ann Sales", "ann@acme.example"), ("Bob Support", "bob@acme.example")]
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    threads: list[list[str]] = []
    for number in range(count):
        message = EmailMessage()
        sender = rng.choice(people)
        recipient = rng.choice(staff)
        message["From"] = f'"{sender[0]}" <{sender[1]}>'
        message["To"] = f'"{recipient[0]}" <{recipient[1]}>'
        if rng.random() < 0.2:
            message["Cc"] = ", ".join(
                f"<{rng.choice(people)[1]}>" for _ in range(rng.randint(1, 3))
            )
        topic = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        subject = rng.choice(SUBJECT_LANGUAGES) + topic
        # Non-ASCII words make the policy write RFC 2047 encoded words.
        message["Subject"] = subject
        message["Date"] = format_datetime(start + timedelta(minutes=7 * number))
        message_id = f"<bench-{seed}-{number}@{sender[1].split('@')[1]}>"
        message["Message-ID"] = message_id
        if threads and rng.random() < 0.35:
            thread = rng.choice(threads)
            message["In-Reply-To"] = thread[-1]
            message["References"] = " ".join(thread[-10:])
            thread.append(message_id)
        else:
            threads.append([message_id])
        size = rng.randint(2_000, 20_000)
        body = _text(rng, size)
        if rng.random() < 0.5:
            message.set_content(body)
        else:
            message.set_content(body)
            paragraphs = "".join(f"<p>{line}</p>" for line in body.splitlines())
            message.add_alternative(f"<html><body>{paragraphs}</body></html>", subtype="html")
        if rng.random() < 0.1:
            payload = rng.randbytes(rng.randint(50_000, 500_000))
            message.add_attachment(
                payload, maintype="application", subtype="pdf", filename=f"document-{number}.pdf"
            )
        yield message.as_bytes()

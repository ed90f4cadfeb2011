"""The HTML an email activity shows: the message's HTML body made safe, or its text.

What it is for: the description of a tracked email is displayed in the CRM's web pages
and side panel, so it is computed once, when the email is tracked, and stored. HTML is
sanitized with nh3 (ammonia: an allow-list of tags and attributes, no scripts, no event
handlers, no ``javascript:`` URLs); plain text is escaped and its line breaks kept. HTML
that would keep nh3 busy for seconds (``htmlscan.too_complex``: deep nesting, thousands
of attributes on a tag) is not given to it: the text is shown instead, and ``parse``
has flagged the message with a defect saying so.

What it must never do: return anything derived from the message that nh3 has not
cleaned or ``html.escape`` has not escaped; hand nh3 HTML that ``too_complex`` refuses.
Pure: no I/O.
"""

from __future__ import annotations

import html

import nh3

from crmsync.tracking.htmlscan import too_complex
from crmsync.tracking.htmltext import html_to_text
from crmsync.tracking.parse import ParsedMessage

__all__ = ["display_html", "safe_html", "text_as_html"]


def safe_html(untrusted: str) -> str:
    """Any HTML made safe to show: the one sanitizer for every description displayed.

    Emails' descriptions are sanitized when they are tracked; descriptions written through
    the API are stored as given, so pages pass every description through this when they
    render it. ``<p onclick=x>Hi</p>`` → ``<p>Hi</p>``; HTML too complex for nh3 to clean
    quickly is shown as its escaped text.
    """
    if too_complex(untrusted) is not None:
        return text_as_html(html_to_text(untrusted))
    return nh3.clean(untrusted)


def text_as_html(text: str) -> str:
    """``a<b\\nc`` → ``a&lt;b<br>\\nc``."""
    return "<br>\n".join(html.escape(line) for line in text.splitlines())


def display_html(parsed: ParsedMessage) -> str:
    """What a tracked email shows: its HTML body made safe, else its text body escaped."""
    if parsed.html_body and too_complex(parsed.html_body) is None:
        return nh3.clean(parsed.html_body)
    return text_as_html(parsed.text_body)

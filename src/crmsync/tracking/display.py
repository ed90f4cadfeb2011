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
from crmsync.tracking.parse import ParsedMessage

__all__ = ["display_html"]


def display_html(parsed: ParsedMessage) -> str:
    """``<p onclick=x>Hi</p>`` → ``<p>Hi</p>``; text ``a<b\\nc`` → ``a&lt;b<br>\\nc``."""
    if parsed.html_body and too_complex(parsed.html_body) is None:
        return nh3.clean(parsed.html_body)
    return "<br>\n".join(html.escape(line) for line in parsed.text_body.splitlines())

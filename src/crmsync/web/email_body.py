"""An email's HTML body as a document of its own, for a sandboxed iframe; and how an
attachment may be served.

The email page shows the body in ``<iframe sandbox="allow-popups
allow-popups-to-escape-sandbox" src="/emails/<id>/body">``: a document with an opaque
origin, no scripts, no forms, no plugins, and its own Content-Security-Policy
(``body_policy``)::

    default-src 'none'; script-src 'none'; style-src 'sha256-<our style block>';
    img-src data: [https: — only when the reader asked]; form-action 'none';
    sandbox allow-popups allow-popups-to-escape-sandbox

The one permission is for links: the document's ``<base target="_blank">`` opens each in
a new tab (nh3 writes ``rel="noopener noreferrer"`` on every link), as a mail client
does; the tab is an ordinary page, not sandboxed, and learns nothing about crmsync.

Making it (``body_document``):

1. inline images: ``cid:`` references of the raw HTML become the address of the email's
   own attachment (``cid_rewritten``), a relative URL the sanitizer keeps;
2. the result goes through ``tracking.display.safe_html`` — the one sanitizer — exactly
   as every other displayed HTML;
3. every ``<img>`` of the *sanitized* HTML is then settled (``settle_images``): one of
   the email's inline image attachments becomes a ``data:`` URL of its bytes (the
   sandboxed document has no cookies, so it could not fetch them); an ``https:`` image
   stays only when the reader asked for remote images; any other ``src`` is taken away
   before the browser sees it, so nothing is requested — not even a request the policy
   would refuse. This step runs on nh3's output, whose serialisation it relies on:
   attributes are written ``name="value"`` with ``&``, ``"``, ``<`` and ``>`` escaped
   inside values, and ``<`` is escaped in text, so ``<img …>`` is always a real tag and
   its ``src="…"`` a real attribute; it only removes attributes or writes constants and
   base64 into them.

Attachments (``download_type``): only a PNG, JPEG, GIF or WebP image is served inline;
everything else is ``Content-Disposition: attachment``, and types a browser would run or
render as a page (HTML, SVG, XML, JavaScript …) go out as ``application/octet-stream``.

Pure: no I/O. Must never put into a document any HTML that ``safe_html`` has not
cleaned, nor an image source the reader did not ask for.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

from crmsync.tracking.display import safe_html, text_as_html
from crmsync.web.security import csp

SAFE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Types a browser would execute or render as a document of our origin.
BLOCKED_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
        "text/css",
        "application/pdf",  # renders in the browser's viewer, with its own scripting
        "multipart/x-mixed-replace",
    }
)
OCTET_STREAM = "application/octet-stream"
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")

# An inline image is embedded up to this size; a larger one shows as blocked.
MAX_INLINE_IMAGE = 5_000_000
MAX_INLINE_TOTAL = 20_000_000

# Our own styles for the body document: readable text, images within the width, and a
# visible box where an image was held back.
BODY_STYLE = """
html { color-scheme: light; }
body { margin: 0; padding: 16px 20px; font: 15px/1.55 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; color: #1b2232; background: #fff;
  overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; }
img[data-blocked] { display: inline-block; min-width: 24px; min-height: 24px;
  border: 1px dashed #c9cede; background: #f5f6fa; }
blockquote { margin: 0.5em 0 0.5em 0.25em; padding-left: 0.9em; border-left: 3px solid #e2e5ee;
  color: #5d667a; }
table { border-collapse: collapse; max-width: 100%; }
pre { white-space: pre-wrap; }
a { color: #2f54eb; }
"""
# What the body's sandbox allows, in the iframe's attribute and in its policy alike.
LINK_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
STYLE_HASH = base64.b64encode(hashlib.sha256(BODY_STYLE.encode("utf-8")).digest()).decode()

_IMG = re.compile(r"<img\b[^>]*>")
_SRC = re.compile(r' src="([^"]*)"')
_CID = re.compile(r"""\bcid:([^"'\s>]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class InlineImage:
    """One of the email's attachments that a ``cid:`` URL may show: where its bytes are
    addressed (``url``), its type (one of ``SAFE_IMAGE_TYPES``) and its bytes."""

    url: str
    content_type: str
    data: bytes

    @property
    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class BodyDocument:
    html: str  # the whole document
    blocked_remote: int  # remote images held back
    policy: str  # its Content-Security-Policy


def body_policy(remote_images: bool) -> str:
    """The body document's policy; ``https:`` images only when the reader asked."""
    return csp(
        default_src="'none'",
        script_src="'none'",
        style_src=f"'sha256-{STYLE_HASH}'",
        img_src="data: https:" if remote_images else "data:",
        form_action="'none'",
        sandbox=LINK_SANDBOX,
    )


def cid_rewritten(raw_html: str, urls_by_content_id: dict[str, str]) -> str:
    """``<img src="cid:logo@x">`` → ``<img src="/emails/…/attachments/…">`` for the
    Content-IDs the email has (RFC 2392: a ``cid:`` URL is the Content-ID, %-encoded);
    other ``cid:`` references stay as they are (the sanitizer removes them)."""
    if not urls_by_content_id:
        return raw_html
    folded = {key.strip("<>").lower(): url for key, url in urls_by_content_id.items()}

    def replace(match: re.Match[str]) -> str:
        return folded.get(unquote(match.group(1)).strip("<>").lower(), match.group(0))

    return _CID.sub(replace, raw_html)


def settle_images(
    sanitized: str, inline: dict[str, InlineImage], remote_images: bool
) -> tuple[str, int]:
    """Every ``<img>`` of sanitized HTML shown, embedded or held back; see the module
    docstring. Returns the HTML and how many remote images were held back."""
    blocked_remote = 0
    budget = MAX_INLINE_TOTAL

    def settle(match: re.Match[str]) -> str:
        nonlocal blocked_remote, budget
        tag = match.group(0)
        found = _SRC.search(tag)
        if found is None:
            return tag
        source = found.group(1).replace("&amp;", "&")
        image = inline.get(source)
        if image is not None and len(image.data) <= min(MAX_INLINE_IMAGE, budget):
            budget -= len(image.data)
            return f'{tag[: found.start()]} src="{image.data_url}"{tag[found.end() :]}'
        remote = source.lower().startswith("https://")
        if remote and remote_images:
            return tag
        if remote or source.lower().startswith(("http://", "//")):
            blocked_remote += 1
        return f'{tag[: found.start()]} data-blocked=""{tag[found.end() :]}'

    return _IMG.sub(settle, sanitized), blocked_remote


def body_document(
    raw_html: str,
    *,
    inline: dict[str, InlineImage] | None = None,
    remote_images: bool = False,
) -> BodyDocument:
    """The iframe's document for ``raw_html`` (any HTML: it is sanitized here), its
    ``cid:`` images from ``inline`` (by Content-ID) embedded."""
    images = inline or {}
    rewritten = cid_rewritten(raw_html, {cid: image.url for cid, image in images.items()})
    by_url = {image.url: image for image in images.values()}
    body, blocked = settle_images(safe_html(rewritten), by_url, remote_images)
    document = (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer"><base target="_blank">'
        f"<style>{BODY_STYLE}</style></head>\n<body>{body}</body></html>\n"
    )
    return BodyDocument(document, blocked, body_policy(remote_images))


def text_document(text: str) -> BodyDocument:
    """The document for an email that has only a text body."""
    return body_document(text_as_html(text))


def has_remote_images(sanitized_or_raw: str) -> bool:
    """Whether the HTML names images on other hosts (the page offers to show them)."""
    return any(
        (found := _SRC.search(tag)) is not None
        and found.group(1).lower().startswith(("https://", "http://", "//"))
        for tag in _IMG.findall(safe_html(sanitized_or_raw))
    )


def download_type(content_type: str) -> tuple[str, bool]:
    """``(media type to send, inline?)`` for an attachment of ``content_type``.

    ``image/png`` → ``('image/png', True)``; ``text/html`` → ``('application/octet-stream',
    False)``; ``application/zip`` → ``('application/zip', False)``.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media in SAFE_IMAGE_TYPES:
        return media, True
    if media in BLOCKED_TYPES or not _MEDIA_TYPE.match(media) or media.endswith("+xml"):
        return OCTET_STREAM, False
    return media, False


def human_size(size: int) -> str:
    """``532`` → ``532 bytes``; ``2048`` → ``2 KB``; ``5_300_000`` → ``5.1 MB``."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"

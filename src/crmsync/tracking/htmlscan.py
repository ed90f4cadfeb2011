"""HTML read once, in linear time: its tokens, and whether it is fit for the sanitizer.

For ``htmltext`` (the text of an HTML body) and for ``display`` and ``parse`` (whether a
body is sanitized with nh3 or shown as text). The parsers at hand are not linear: the
stdlib's ``html.parser`` rescans the rest of its input for every unterminated construct
(``'<a ' * 20_000`` takes half a minute), and html5ever, nh3's parser, does work in
proportion to its stack of open elements and its list of active formatting elements for
each tag, and to a tag's attributes for each attribute (20,000 nested ``<div>`` take two
seconds, 50,000 eleven). Here every construct is matched by a regular expression that
cannot backtrack (possessive quantifiers and atomic groups, Python 3.11), so each
character is read a bounded number of times.

``too_complex`` follows html5ever's tree construction closely enough to know how deep
its stack and list grow, and how often it fosters content out of a table (each time it
looks for the table among its parent's children). It is an approximation, made to err
towards "too complex" (an end tag it is unsure of closes nothing; where it cannot tell
svg from HTML it keeps open what either would) and held to html5ever by the tests in
tests/unit/tracking/test_htmlscan.py; the parser pool's time limit per message remains
the last bound.

What it must never do: raise, take more than linear time, or call HTML fit that it has
not checked against every limit here (a body of so few tags that html5ever cannot be
slow on it is the one shortcut).

Formats relied on, from the WHATWG HTML standard (https://html.spec.whatwg.org/):
- tokenization (13.2.5): a tag's quoted attribute values may hold ``>``; ``<!-->`` and
  ``<!--->`` are whole comments; ``<!x>``, ``<?x>`` and ``</ x>`` are bogus comments; the
  text of script, style, textarea, title and the like runs to its own end tag;
- tree construction (13.2.6): which end tags close which open elements ("has an element in
  scope", "any other end tag"), the adoption agency, active formatting elements
  reconstructed at the next tag or text (at most three alike: the Noah's Ark clause),
  foreign content (svg, math) where ``<x/>`` closes itself and some HTML tags break out.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_FOSTERED",
    "MAX_TAGS",
    "Kind",
    "Token",
    "tokens",
    "too_complex",
]

MAX_CHARS = 4_000_000
MAX_TAGS = 100_000
# Open elements, counted generously. Blink stops nesting its DOM at 512 too.
MAX_DEPTH = 512
MAX_ATTRIBUTES = 1_000  # on one tag, or added up over <html> and <body> tags (merged)
MAX_FOSTERED = 2_000  # text and tags found in a table outside its cells
# Markup that html5ever may read otherwise than this scan (a CDATA section, an escaped
# script, raw text in or after svg/math) is let through only this close to the end.
UNSURE_TAIL = 50_000
# How far down the stack an end tag looks for its element before it is taken as closing
# nothing; keeps the scan linear.
_REACH = 32

_WS = "\t\n\f\r "
_VALUE = rf"(?>\"[^\"]*+(?:\"|\Z)|'[^']*+(?:'|\Z)|[^{_WS}>]*+)"
_ATTRIBUTE = rf"[^{_WS}/>][^{_WS}/>=]*+(?>[{_WS}]*+=[{_WS}]*+{_VALUE})?"
# One token of markup (all but text): a tag (``gt`` empty when it runs to the end), a
# comment (``open_comment`` when it does), a bogus comment (``bogus_gt`` empty when it
# does), or ``</>``, which is nothing.
_MARKUP = re.compile(
    rf"<(?:(?P<end>/?)(?P<name>[A-Za-z][^{_WS}/>]*+)"
    rf"(?P<attributes>(?>[{_WS}]++|/(?!>)|{_ATTRIBUTE})*+)(?P<closing>/?)(?P<gt>>?)"
    r"|!--(?:-?>|.*?--!?>|(?P<open_comment>.*+))"
    r"|(?:[!?]|/(?![A-Za-z>]))[^>]*+(?P<bogus_gt>>?)"
    r"|/>)",
    re.DOTALL,
)
_ATTRIBUTES = re.compile(_ATTRIBUTE)


class Kind(enum.Enum):
    TEXT = "text"  # character data, character references not yet decoded
    RAW_TEXT = "raw text"  # the content of a raw-text element (``name`` says which)
    START = "start tag"
    END = "end tag"
    CDATA = "cdata"  # ``<![CDATA[``: a section in svg/math, a bogus comment elsewhere


class Token(NamedTuple):
    """One token: ``html[start:end]`` is its source; ``attributes`` is a tag's, as written."""

    kind: Kind
    start: int
    end: int
    name: str = ""
    attributes: str = ""
    self_closing: bool = False


@functools.lru_cache(maxsize=32)
def _end_of_raw_text(name: str) -> re.Pattern[str]:
    return re.compile(rf"</{re.escape(name)}(?=[{_WS}/>])", re.IGNORECASE)


def tokens(html: str, raw_text: frozenset[str]) -> Iterator[Token]:
    """The tokens of ``html``; the elements in ``raw_text`` hold raw text up to their end tag.

    A construct left open at the end (``a <b``, ``<!-- x``) is text, as ``html.parser``
    has it. ``list(tokens('a<b>c', frozenset()))`` → ``[Token(TEXT, 0, 1),
    Token(START, 1, 4, 'b'), Token(TEXT, 4, 5)]``.
    """
    position, length = 0, len(html)
    while position < length:
        for markup in _MARKUP.finditer(html, position):
            start = markup.start()
            if start > position:
                yield Token(Kind.TEXT, position, start)
            position = markup.end()
            name = markup["name"]
            if name is None:
                if markup["open_comment"] is not None or markup["bogus_gt"] == "":
                    yield Token(Kind.TEXT, start, length)  # a comment left open at the end
                    return
                if html.startswith("<![CDATA[", start):
                    yield Token(Kind.CDATA, start, position)
                continue
            if not markup["gt"]:
                yield Token(Kind.TEXT, start, length)  # a tag left open at the end
                return
            name = name.lower()
            if markup["end"]:
                yield Token(Kind.END, start, position, name, markup["attributes"])
                continue
            yield Token(
                Kind.START, start, position, name, markup["attributes"], bool(markup["closing"])
            )
            if name in raw_text:
                found = _end_of_raw_text(name).search(html, position)
                end = found.start() if found is not None else length
                if end > position:
                    yield Token(Kind.RAW_TEXT, position, end, name)
                position = end
                break  # go on after the raw text
        else:
            if position < length:
                yield Token(Kind.TEXT, position, length)
            return


# fmt: off
_VOID = frozenset({
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "image",
    "img", "input", "keygen", "link", "meta", "param", "source", "track", "wbr",
})
# Start tags that html5ever, parsing a fragment, merges into elements it has or ignores.
_MERGED = frozenset({"html", "body"})
_IGNORED = frozenset({"head", "frameset"})
_FORMATTING = frozenset({
    "a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong",
    "tt", "u",
})
_SPECIAL = frozenset({
    "address", "applet", "area", "article", "aside", "base", "basefont", "bgsound",
    "blockquote", "body", "br", "button", "caption", "center", "col", "colgroup", "dd",
    "details", "dir", "div", "dl", "dt", "embed", "fieldset", "figcaption", "figure",
    "footer", "form", "frame", "frameset", "h1", "h2", "h3", "h4", "h5", "h6", "head",
    "header", "hgroup", "hr", "html", "iframe", "img", "input", "keygen", "li", "link",
    "listing", "main", "marquee", "menu", "meta", "nav", "noembed", "noframes", "noscript",
    "object", "ol", "p", "param", "plaintext", "pre", "script", "search", "section",
    "select", "source", "style", "summary", "table", "tbody", "td", "template", "textarea",
    "tfoot", "th", "thead", "title", "tr", "track", "ul", "wbr", "xmp",
})
# Elements whose end tag may be left out, closed by the end tag of what holds them.
_IMPLIED = frozenset({"dd", "dt", "li", "optgroup", "option", "p", "rb", "rp", "rt", "rtc"})
_TABLE_PARTS = frozenset({
    "tbody", "thead", "tfoot", "tr", "td", "th", "caption", "colgroup", "col",
})
_TABLE = frozenset({"table"})
_IN_TABLE = frozenset({"table", "tbody", "thead", "tfoot", "tr"})
# What a table holds without foster parenting it (or reads as it would in the head).
_TABLE_CONTENT = _TABLE_PARTS | {"table", "form", "input", "script", "style", "template"}
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Start tags that close a <p> (html5ever: in button scope; here: when it is just open).
_CLOSES_P = frozenset({
    "address", "article", "aside", "blockquote", "center", "details", "dialog", "dir",
    "div", "dl", "fieldset", "figcaption", "figure", "footer", "header", "hgroup", "main",
    "menu", "nav", "ol", "p", "search", "section", "summary", "ul", "pre", "listing",
    "form", "li", "dd", "dt", "plaintext", "table", "hr", "xmp",
}) | _HEADINGS
# Start tags that close the element just open when it is one of these.
_CELL_CLOSERS = frozenset({"td", "th", "tr", "tbody", "thead", "tfoot"})
_CLOSES = {
    "li": frozenset({"li"}),
    "dd": frozenset({"dd", "dt"}),
    "dt": frozenset({"dd", "dt"}),
    "option": frozenset({"option"}),
    "optgroup": frozenset({"option"}),
    "a": frozenset({"a"}),
    "nobr": frozenset({"nobr"}),
    "button": frozenset({"button"}),
    **dict.fromkeys(_HEADINGS, _HEADINGS),
    "td": frozenset({"td", "th"}),
    "th": frozenset({"td", "th"}),
    "tr": frozenset({"td", "th", "tr"}),
    **dict.fromkeys(("tbody", "thead", "tfoot", "caption", "colgroup", "col"), _CELL_CLOSERS),
}
# Start tags after which html5ever reopens formatting elements: these special ones, and
# any that is not special but for ruby's.
_RECONSTRUCTING = _FORMATTING | {
    "applet", "area", "br", "button", "embed", "img", "input", "keygen", "marquee",
    "object", "select", "wbr", "xmp",
}
_RUBY = frozenset({"rb", "rp", "rt", "rtc"})
# In svg or math, these break out to HTML (and font, with some attributes).
_LEAVE_FOREIGN = frozenset({
    "b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em",
    "embed", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li",
    "listing", "menu", "meta", "nobr", "ol", "p", "pre", "ruby", "s", "small", "span",
    "strong", "strike", "sub", "sup", "table", "tt", "u", "ul", "var",
})
# Their content is HTML (in svg, or in MathML, by the name alone here).
_INTEGRATION_POINTS = frozenset({
    "foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext", "annotation-xml",
})
_FOREIGN = frozenset({"svg", "math"})
# What html5ever reads as raw text (scripting enabled, as in nh3).
SPEC_RAW_TEXT = frozenset({
    "script", "style", "xmp", "iframe", "noembed", "noframes", "noscript", "textarea",
    "title", "plaintext",
})
# fmt: on


def _attribute_count(attributes: str, at_least: int = 2 * MAX_ATTRIBUTES) -> int:
    """How many attributes, or 0 when fewer than ``at_least`` characters hold them."""
    # An attribute takes two characters at least (a name and what separates it), so a
    # short text cannot hold too many: counting is needed only for long ones.
    if len(attributes) < at_least:
        return 0
    return sum(1 for _ in _ATTRIBUTES.finditer(attributes))


class _Mode(enum.Enum):
    HTML = "html"
    FOREIGN = "foreign"  # in svg or math
    UNSURE = "unsure"  # in svg or math, or in HTML again: as html5ever may have it


class _Tree:
    """The open elements html5ever would have, or more, and the formatting elements it
    keeps to reopen at the next text or inline start tag.

    An element is closed here only where html5ever surely closes it too: by its end tag,
    passing only elements that html5ever closes on the way (formatting elements, and for a
    special element those with optional end tags such as ``<p>``, ``<li>``, a table
    cell); and by a start tag that closes an element (``<li>`` the ``<li>`` just open,
    ``<div>`` a ``<p>`` with only inline elements above it). Start tags html5ever ignores
    (a table cell outside a table, a form in a form) are ignored, until svg or math is
    seen: in foreign content they are elements like any other. Where it cannot tell svg
    from HTML (in an integration point such as ``<foreignObject>``, after an end tag that
    closes no svg element) it keeps open what either would, and closes only by an end tag
    for the element on top.
    """

    def __init__(self) -> None:
        self.open: list[tuple[str, str]] = []  # (name, attributes), from the bottom up
        self.counts = {"table": 0, "form": 0}  # open elements of these names
        self.reopen: list[tuple[str, str]] = []  # formatting elements closed early
        self.alike: dict[tuple[str, str], int] = {}  # how often each is in reopen
        self.mode = _Mode.HTML
        self.foreign = 0  # svg and math elements open, in foreign content
        self.seen_foreign = False
        # In an integration point: foreign content again once the stack is this short.
        self.foreign_at: int | None = None
        # Text and elements put before a table they were found in (foster parenting):
        # html5ever looks for the table among its parent's children each time.
        self.fostered = 0

    def text(self, text: str) -> None:
        if self.open and self.open[-1][0] in _IN_TABLE and not text.isspace():
            self.fostered += 1
        self._reconstruct()

    def start(self, name: str, attributes: str, self_closing: bool) -> None:
        if self.mode is _Mode.UNSURE:
            self._reconstruct()
            if not (name in _VOID and (self_closing or name in _LEAVE_FOREIGN)):
                self._push(name, attributes)  # what either svg or HTML would keep open
            return
        if self.mode is _Mode.FOREIGN:
            if name in _INTEGRATION_POINTS:  # HTML inside, svg again after it
                self.mode, self.foreign_at = _Mode.UNSURE, len(self.open)
                self._push(name, attributes)
                return
            if name == "font":  # breaks out with a color, face or size attribute only
                self.mode = _Mode.UNSURE
                self._push(name, attributes)
                return
            if name not in _LEAVE_FOREIGN:
                if not self_closing:  # in foreign content, <x/> closes itself
                    self.foreign += name in _FOREIGN
                    self._push(name, attributes)
                return
            self.mode = _Mode.HTML
        ignores = not self.seen_foreign
        if ignores and name in _TABLE_PARTS and not self.counts.get("table"):
            return  # outside a table html5ever ignores it
        if self.open and self.open[-1][0] in _IN_TABLE:
            if name == "form":
                return  # in a table, html5ever closes a form at once
            if name not in _TABLE_CONTENT:
                self.fostered += 1
        if name in _CLOSES_P:  # html5ever: a <p> in button scope; here: under no special
            paragraph = self._find("p", _FORMATTING, stops=_SPECIAL | _RUBY)
            if paragraph is not None:
                self._pop_to(paragraph)
        closes = _CLOSES.get(name)
        if closes is not None:
            self._close_top(closes)
        if name == "table" and self.open and self.open[-1][0] in _IN_TABLE:
            self._close_top(_IN_TABLE - _TABLE)  # a table straight in a table closes it
            self._pop_to(len(self.open) - 1)
        if name in _RECONSTRUCTING or (name not in _SPECIAL and name not in _RUBY):
            self._reconstruct()
        if name in _VOID or (ignores and name == "form" and self.counts.get("form")):
            return
        if self_closing and (name in _MERGED or name in _IGNORED):
            return
        if name in _FOREIGN:
            self.seen_foreign = True
            if self_closing:
                return
            self.mode, self.foreign = _Mode.FOREIGN, 1
        self._push(name, attributes)

    def end(self, name: str) -> None:
        on_top = bool(self.open) and self.open[-1][0] == name
        if self.mode is not _Mode.HTML:
            if on_top:
                self._pop_to(len(self.open) - 1)
                if self.mode is _Mode.FOREIGN and name in _FOREIGN:
                    self.foreign -= 1
                    self.mode = _Mode.FOREIGN if self.foreign else _Mode.HTML
                elif self.foreign_at is not None and len(self.open) <= self.foreign_at:
                    self.mode, self.foreign_at = _Mode.FOREIGN, None  # integration point closed
            else:  # html5ever may leave foreign content here, or not
                self.mode, self.foreign_at = _Mode.UNSURE, None
            return
        if name == "form":  # html5ever takes the form out, leaving what is inside open
            form = self._find(name, _FORMATTING | _IMPLIED)
            if form is not None:
                del self.open[form]
                self.counts["form"] -= 1
            return
        if name == "p":  # as a start tag that closes a <p> does
            index = self._find(name, _FORMATTING, stops=_SPECIAL | _RUBY)
        elif name in _TABLE_PARTS or name == "table":
            index = self._find(name, _FORMATTING | _IMPLIED | _TABLE_PARTS)
        elif name in _SPECIAL:
            index = self._find(name, _FORMATTING | _IMPLIED)
        else:  # any other end tag, and the adoption agency
            index = self._find(name, _FORMATTING)
        if index is not None:
            self._pop_to(index)

    def _push(self, name: str, attributes: str) -> None:
        self.open.append((name, attributes))
        if name in self.counts:
            self.counts[name] += 1

    def _reconstruct(self) -> None:
        if self.reopen:
            self.open.extend(self.reopen)  # formatting elements: none is counted
            self.reopen.clear()
            self.alike.clear()

    def _close_top(self, names: frozenset[str]) -> None:
        """Close the elements on top named one of ``names``."""
        while self.open and self.open[-1][0] in names:
            self._pop_to(len(self.open) - 1)

    def _find(
        self, name: str, passed: frozenset[str], stops: frozenset[str] | None = None
    ) -> int | None:
        """Where the topmost ``name`` element is, if only elements in ``passed`` (or, given
        ``stops``, not in ``stops``) are above it and it is near enough the top; else None.
        """
        bottom = max(-1, len(self.open) - 1 - _REACH)
        for index in range(len(self.open) - 1, bottom, -1):
            found = self.open[index][0]
            if found == name or (name in _HEADINGS and found in _HEADINGS):
                return index
            if found not in passed and (stops is None or found in stops):
                return None
        return None

    def _pop_to(self, index: int) -> None:
        """Close the element at ``index`` and those above it, keeping the formatting ones
        above it to reopen (the one closed is done with, as its end tag closes it)."""
        counts = self.counts
        for entry in self.open[index:]:
            if entry[0] in counts:
                counts[entry[0]] -= 1
        for entry in self.open[index + 1 :]:
            if entry[0] in _FORMATTING:
                alike = self.alike.get(entry, 0)
                if alike >= 3:  # the Noah's Ark clause keeps three alike
                    self.reopen.remove(entry)  # the earliest
                else:
                    self.alike[entry] = alike + 1
                self.reopen.append(entry)
        del self.open[index:]


@functools.lru_cache(maxsize=2)  # parse asks, then display: once per message
def too_complex(html: str) -> str | None:
    """Why nh3 must not be given ``html`` (it might take seconds), or None when it may.

    ``too_complex('<div>' * 5_000)`` → ``'nested deeper than 512 elements'``
    """
    if len(html) > MAX_CHARS:
        return f"over {MAX_CHARS} characters"
    # So few tags cannot nest deep enough, nor so few characters hold attributes enough,
    # for html5ever to take more than tenths of a second (the worst found, 2,000 tags of
    # formatting elements with attributes of their own, take 0.4 s; 25,000 attributes on
    # a tag 0.05 s); and nearly all mail is this small.
    if len(html) <= _FEW_CHARS and html.count("<") <= _FEW_TAGS:
        return None
    return _scan(html)


_FEW_CHARS = 100_000
_FEW_TAGS = 2_000


def _scan(html: str) -> str | None:
    tree = _Tree()
    open_ = tree.open
    tags = merged = 0
    for token in tokens(html, SPEC_RAW_TEXT):
        kind, name = token.kind, token.name
        if kind is Kind.TEXT:
            if tree.reopen or (open_ and open_[-1][0] in _IN_TABLE):
                tree.text(html[token.start : token.end])
                if tree.fostered > MAX_FOSTERED:
                    return f"over {MAX_FOSTERED} pieces of a table outside its cells"
        elif kind is Kind.END:
            tags += 1
            if tags > MAX_TAGS:
                return f"over {MAX_TAGS} tags"
            if open_ and open_[-1][0] == name and tree.mode is _Mode.HTML and name != "form":
                open_.pop()  # the end tag of the element just open
                if name == "table":
                    tree.counts[name] -= 1
            elif name not in _VOID and name not in _MERGED and name not in _IGNORED:
                tree.end(name)
        elif kind is Kind.START:
            tags += 1
            if tags > MAX_TAGS:
                return f"over {MAX_TAGS} tags"
            if name in _MERGED:  # each attribute is looked for among those merged before
                merged += _attribute_count(token.attributes, at_least=0)
                if merged > MAX_ATTRIBUTES:
                    return f"over {MAX_ATTRIBUTES} attributes on html and body tags"
            elif _attribute_count(token.attributes) > MAX_ATTRIBUTES:
                return f"over {MAX_ATTRIBUTES} attributes on one tag"
            if name == "template" and len(html) - token.start > UNSURE_TAIL:
                return _AMBIGUOUS  # its content has insertion modes of its own
            # In svg or math these are elements like any other, so once either is seen
            # they count (where html5ever ignores them, that only counts too many).
            if tree.seen_foreign or (name not in _MERGED and name not in _IGNORED):
                tree.start(name, token.attributes, token.self_closing)
                if len(open_) + len(tree.reopen) > MAX_DEPTH:
                    return f"nested deeper than {MAX_DEPTH} elements"
                if tree.fostered > MAX_FOSTERED:
                    return f"over {MAX_FOSTERED} pieces of a table outside its cells"
        else:  # CDATA, or raw text: does html5ever read it as this scan does?
            text = html[token.start : token.end]
            unsure = (
                kind is Kind.CDATA
                or (name == "script" and "<!--" in text)
                or (tree.seen_foreign and "<" in text)
            )
            if unsure and len(html) - token.start > UNSURE_TAIL:
                return _AMBIGUOUS
    return None


_AMBIGUOUS = "ambiguous markup (svg, math, template, CDATA or an escaped script)"

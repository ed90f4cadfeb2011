"""The Outlook add-in manifest: crmsync's side panel as an Office mail add-in.

An administrator installs the add-in in Exchange or Microsoft 365 (or a user sideloads it)
from ``GET /addin/manifest.xml``. Outlook then shows a "crmsync" button when a message is
read; it opens ``/panel?host=outlook`` in the reading pane, pinnable, and the panel reads
the item through Office.js (which it loads only when ``host=outlook`` says it is the
add-in).

The manifest is the XML add-in-only format ([MS-OWEMXML]): a ``MailApp`` that works in
every Outlook that knows add-ins, plus ``VersionOverrides`` 1.0 (the button on the
message read surface, Mailbox 1.3) wrapping ``VersionOverrides`` 1.1 (the same button,
pinnable, Mailbox 1.5). Office validates manifests against its schemas, which fix the
order of elements, so they are built here in exactly that order.

Every URL in it is the instance's own, from the public address the instance is reached
at (``Settings.public_url``, else the request's own origin). Office requires HTTPS; a
manifest asked for over plain HTTP is still served, so it can be inspected, with a
comment saying it will not install.

Must never name a host other than the instance's own, and never carry anything secret:
the manifest is public.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Request
from fastapi.responses import Response

from crmsync import __version__
from crmsync.config import Settings

OFFICE_APP: Final = "http://schemas.microsoft.com/office/appforoffice/1.1"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
BASIC_TYPES: Final = "http://schemas.microsoft.com/office/officeappbasictypes/1.0"
OVERRIDES_1_0: Final = "http://schemas.microsoft.com/office/mailappversionoverrides"
OVERRIDES_1_1: Final = "http://schemas.microsoft.com/office/mailappversionoverrides/1.1"

MANIFEST_PATH: Final = "/addin/manifest.xml"
# The panel loads Office.js only when told it runs as the add-in (web/pages/panel.py).
PANEL_PATH: Final = "/panel?host=outlook"
ICON_SIZES: Final = (16, 32, 64, 80, 128)
DISPLAY_NAME: Final = "crmsync"
DESCRIPTION: Final = (
    "See who the people in an email are in your CRM, add them as contacts or leads, and "
    "track the email against the right account, opportunity or case."
)

ET.register_namespace("", OFFICE_APP)
ET.register_namespace("xsi", XSI)
ET.register_namespace("bt", BASIC_TYPES)

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class ManifestSite:
    """Where the instance is: ``https://crm.example.com`` (no trailing slash)."""

    origin: str

    @property
    def add_in_id(self) -> uuid.UUID:
        # Stable for one address, different for two instances: Exchange refuses two
        # add-ins with one Id, and reinstalling must update, not duplicate.
        return uuid.uuid5(uuid.NAMESPACE_URL, self.origin + MANIFEST_PATH)

    def url(self, path: str) -> str:
        return self.origin + path


def office_version(version: str) -> str:
    """``0.1.0`` → ``0.1.0.0``: Office wants one to four dot-separated numbers."""
    numbers = [part for part in version.split(".") if part.isdigit()][:4]
    return ".".join(numbers + ["0"] * (4 - len(numbers)))


def _el(
    parent: ET.Element, namespace: str, tag: str, text: str | None = None, **attrs: str
) -> ET.Element:
    element = ET.SubElement(parent, f"{{{namespace}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _typed(parent: ET.Element, namespace: str, tag: str, xsi_type: str, **attrs: str) -> ET.Element:
    return _el(parent, namespace, tag, **{f"{{{XSI}}}type": xsi_type, **attrs})


def _command_surface(parent: ET.Element, ns: str, *, pinnable: bool) -> None:
    """Hosts → the one button on the message read surface, and the resources it names."""
    if pinnable:
        requirements = _el(parent, ns, "Requirements")
        sets = _el(requirements, BASIC_TYPES, "Sets", DefaultMinVersion="1.5")
        _el(sets, BASIC_TYPES, "Set", Name="Mailbox")
    else:
        requirements = _el(parent, ns, "Requirements")
        sets = _el(requirements, BASIC_TYPES, "Sets", DefaultMinVersion="1.3")
        _el(sets, BASIC_TYPES, "Set", Name="Mailbox")
    hosts = _el(parent, ns, "Hosts")
    host = _typed(hosts, ns, "Host", "MailHost")
    form_factor = _el(host, ns, "DesktopFormFactor")
    surface = _typed(form_factor, ns, "ExtensionPoint", "MessageReadCommandSurface")
    tab = _el(surface, ns, "OfficeTab", id="TabDefault")
    group = _el(tab, ns, "Group", id="crmsyncReadGroup")
    _el(group, ns, "Label", resid="Group.Label")
    button = _typed(group, ns, "Control", "Button", id="crmsyncOpenPanel")
    _el(button, ns, "Label", resid="Button.Label")
    supertip = _el(button, ns, "Supertip")
    _el(supertip, ns, "Title", resid="Button.Label")
    _el(supertip, ns, "Description", resid="Button.Tooltip")
    icon = _el(button, ns, "Icon")
    for size in (16, 32, 80):
        _el(icon, BASIC_TYPES, "Image", size=str(size), resid=f"Icon.{size}")
    action = _typed(button, ns, "Action", "ShowTaskpane")
    _el(action, ns, "SourceLocation", resid="Panel.Url")
    if pinnable:
        _el(action, ns, "SupportsPinning", "true")


def _resources(parent: ET.Element, ns: str, site: ManifestSite) -> None:
    resources = _el(parent, ns, "Resources")
    images = _el(resources, BASIC_TYPES, "Images")
    for size in (16, 32, 80):
        _el(images, BASIC_TYPES, "Image", id=f"Icon.{size}", DefaultValue=_icon(site, size))
    urls = _el(resources, BASIC_TYPES, "Urls")
    _el(urls, BASIC_TYPES, "Url", id="Panel.Url", DefaultValue=site.url(PANEL_PATH))
    short = _el(resources, BASIC_TYPES, "ShortStrings")
    _el(short, BASIC_TYPES, "String", id="Group.Label", DefaultValue=DISPLAY_NAME)
    _el(short, BASIC_TYPES, "String", id="Button.Label", DefaultValue="Open crmsync")
    long = _el(resources, BASIC_TYPES, "LongStrings")
    _el(
        long,
        BASIC_TYPES,
        "String",
        id="Button.Tooltip",
        DefaultValue="Show the people in this email as CRM records and track it.",
    )


def _icon(site: ManifestSite, size: int) -> str:
    return site.url(f"/static/addin/icon-{size}.png")


def build_manifest(site: ManifestSite, version: str = __version__) -> ET.Element:
    """The ``OfficeApp`` element, children in the order the schema requires."""
    root = ET.Element(f"{{{OFFICE_APP}}}OfficeApp", {f"{{{XSI}}}type": "MailApp"})
    _el(root, OFFICE_APP, "Id", str(site.add_in_id))
    _el(root, OFFICE_APP, "Version", office_version(version))
    _el(root, OFFICE_APP, "ProviderName", "crmsync")
    _el(root, OFFICE_APP, "DefaultLocale", "en-US")
    _el(root, OFFICE_APP, "DisplayName", DefaultValue=DISPLAY_NAME)
    _el(root, OFFICE_APP, "Description", DefaultValue=DESCRIPTION)
    _el(root, OFFICE_APP, "IconUrl", DefaultValue=_icon(site, 64))
    _el(root, OFFICE_APP, "HighResolutionIconUrl", DefaultValue=_icon(site, 128))
    _el(root, OFFICE_APP, "SupportUrl", DefaultValue=site.url("/"))
    domains = _el(root, OFFICE_APP, "AppDomains")
    _el(domains, OFFICE_APP, "AppDomain", site.origin)
    hosts = _el(root, OFFICE_APP, "Hosts")
    _el(hosts, OFFICE_APP, "Host", Name="Mailbox")
    requirements = _el(root, OFFICE_APP, "Requirements")
    sets = _el(requirements, OFFICE_APP, "Sets")
    _el(sets, OFFICE_APP, "Set", Name="Mailbox", MinVersion="1.1")
    # Outlook clients without add-in commands show the panel for every message read.
    forms = _el(root, OFFICE_APP, "FormSettings")
    read = _typed(forms, OFFICE_APP, "Form", "ItemRead")
    desktop = _el(read, OFFICE_APP, "DesktopSettings")
    _el(desktop, OFFICE_APP, "SourceLocation", DefaultValue=site.url(PANEL_PATH))
    _el(desktop, OFFICE_APP, "RequestedHeight", "250")
    # The panel reads the item's ids, addresses and subject; it never writes to the mailbox.
    _el(root, OFFICE_APP, "Permissions", "ReadItem")
    rules = _typed(root, OFFICE_APP, "Rule", "RuleCollection", Mode="Or")
    _typed(rules, OFFICE_APP, "Rule", "ItemIs", ItemType="Message", FormType="Read")
    _el(root, OFFICE_APP, "DisableEntityHighlighting", "false")

    overrides = _typed(root, OVERRIDES_1_0, "VersionOverrides", "VersionOverridesV1_0")
    _command_surface(overrides, OVERRIDES_1_0, pinnable=False)
    _resources(overrides, OVERRIDES_1_0, site)
    pinnable = _typed(overrides, OVERRIDES_1_1, "VersionOverrides", "VersionOverridesV1_1")
    _command_surface(pinnable, OVERRIDES_1_1, pinnable=True)
    _resources(pinnable, OVERRIDES_1_1, site)
    return root


def manifest_xml(site: ManifestSite, *, note: str | None = None) -> bytes:
    root = build_manifest(site)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    comment = f"<!-- {note} -->\n" if note else ""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{comment}{body}\n'.encode()


def site_for(request: Request, settings: Settings) -> ManifestSite:
    public = (settings.public_url or "").rstrip("/")
    if public:
        return ManifestSite(public)
    return ManifestSite(f"{request.url.scheme}://{request.url.netloc}")


@router.get(MANIFEST_PATH)
def manifest(request: Request) -> Response:
    """The add-in manifest for this instance (public: it holds no secret)."""
    settings: Settings = request.app.state.settings
    site = site_for(request, settings)
    note = None
    if not site.origin.startswith("https://"):
        note = (
            "Outlook installs add-ins only from HTTPS addresses: set CRMSYNC_PUBLIC_URL to "
            "this instance's https:// address, or serve it behind a TLS proxy."
        )
    return Response(
        manifest_xml(site, note=note),
        media_type="application/xml",
        headers={"Content-Disposition": 'inline; filename="crmsync-outlook.xml"'},
    )

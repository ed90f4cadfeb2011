"""The Outlook add-in manifest, checked offline for what Office's validator checks.

Microsoft's validator needs the network, and the manifest schemas are not published as a
set that compiles on its own, so the structure [MS-OWEMXML] fixes is checked element by
element here: namespaces and ``xsi:type``s, children in the schema's order and number,
the value types (GUID, version, culture, URL, string lengths), and that every ``resid``
names a resource. Every URL must be the instance's own, over HTTPS.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from xml.etree import ElementTree as ET

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmsync.config import Settings
from crmsync.web import addin
from crmsync.web.addin import (
    BASIC_TYPES,
    OFFICE_APP,
    OVERRIDES_1_0,
    OVERRIDES_1_1,
    XSI,
    ManifestSite,
    manifest_xml,
)

SITE = ManifestSite("https://crm.example.com")
XSI_TYPE = f"{{{XSI}}}type"


@dataclass(frozen=True)
class Child:
    tag: str
    namespace: str
    least: int = 1
    most: int = 1


def _children(element: ET.Element, expected: list[Child]) -> dict[str, list[ET.Element]]:
    """Check ``element``'s children are ``expected`` in order and number; group them."""
    found = list(element)
    grouped: dict[str, list[ET.Element]] = {}
    index = 0
    for child in expected:
        name = f"{{{child.namespace}}}{child.tag}"
        run = []
        while index < len(found) and found[index].tag == name:
            run.append(found[index])
            index += 1
        assert child.least <= len(run) <= child.most, (element.tag, child.tag, len(run))
        grouped[child.tag] = run
    leftover = [item.tag for item in found[index:]]
    assert not leftover, f"{element.tag}: unexpected or out-of-order children {leftover}"
    return grouped


def _one(grouped: dict[str, list[ET.Element]], tag: str) -> ET.Element:
    (element,) = grouped[tag]
    return element


# OfficeApp (MailApp) in the order of [MS-OWEMXML] 2.2.21 and 2.2.32.
MAIL_APP = [
    Child("Id", OFFICE_APP),
    Child("AlternateId", OFFICE_APP, 0),
    Child("Version", OFFICE_APP),
    Child("ProviderName", OFFICE_APP),
    Child("DefaultLocale", OFFICE_APP),
    Child("DisplayName", OFFICE_APP),
    Child("Description", OFFICE_APP),
    Child("IconUrl", OFFICE_APP, 0),
    Child("HighResolutionIconUrl", OFFICE_APP, 0),
    Child("SupportUrl", OFFICE_APP, 0),
    Child("AppDomains", OFFICE_APP, 0),
    Child("Hosts", OFFICE_APP, 0),
    Child("Requirements", OFFICE_APP, 0),
    Child("FormSettings", OFFICE_APP),
    Child("Permissions", OFFICE_APP),
    Child("Rule", OFFICE_APP),
    Child("DisableEntityHighlighting", OFFICE_APP, 0),
    Child("VersionOverrides", OVERRIDES_1_0, 0),
]


def _overrides_children(namespace: str, nested: bool) -> list[Child]:
    children = [
        Child("Description", namespace, 0),
        Child("Requirements", namespace, 0),
        Child("Hosts", namespace),
        Child("Resources", namespace),
    ]
    if nested:
        children.append(Child("VersionOverrides", OVERRIDES_1_1, 0))
    return children


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()


def _https_own(url: str) -> None:
    assert url.startswith(SITE.origin + "/") or url == SITE.origin, url
    assert len(url) <= 2048


@pytest.fixture(scope="module")
def root() -> ET.Element:
    return ET.fromstring(manifest_xml(SITE))


def test_the_base_manifest_follows_the_schema(root: ET.Element) -> None:
    assert root.tag == f"{{{OFFICE_APP}}}OfficeApp"
    assert root.get(XSI_TYPE) == "MailApp"
    parts = _children(root, MAIL_APP)
    assert uuid.UUID(_text(_one(parts, "Id")))
    assert re.fullmatch(r"\d{1,5}(\.\d{1,5}){0,3}", _text(_one(parts, "Version")))
    assert re.fullmatch(r"[a-z]{2}(-[A-Z]{2})?", _text(_one(parts, "DefaultLocale")))
    assert 0 < len(_text(_one(parts, "ProviderName"))) <= 125
    assert 0 < len(_one(parts, "DisplayName").get("DefaultValue", "")) <= 125
    assert 0 < len(_one(parts, "Description").get("DefaultValue", "")) <= 250
    for name in ("IconUrl", "HighResolutionIconUrl", "SupportUrl"):
        _https_own(_one(parts, name).get("DefaultValue", ""))
    domains = _children(_one(parts, "AppDomains"), [Child("AppDomain", OFFICE_APP, 1, 99)])
    assert [_text(d) for d in domains["AppDomain"]] == [SITE.origin]
    hosts = _children(_one(parts, "Hosts"), [Child("Host", OFFICE_APP, 1, 9)])
    assert [h.get("Name") for h in hosts["Host"]] == ["Mailbox"]
    requirements = _children(_one(parts, "Requirements"), [Child("Sets", OFFICE_APP)])
    sets = _children(_one(requirements, "Sets"), [Child("Set", OFFICE_APP, 1, 99)])
    assert {(s.get("Name"), s.get("MinVersion")) for s in sets["Set"]} == {("Mailbox", "1.1")}
    forms = _children(_one(parts, "FormSettings"), [Child("Form", OFFICE_APP, 1, 4)])
    (read,) = forms["Form"]
    assert read.get(XSI_TYPE) == "ItemRead"
    desktop = _children(
        read,
        [
            Child("DesktopSettings", OFFICE_APP),
            Child("TabletSettings", OFFICE_APP, 0),
            Child("PhoneSettings", OFFICE_APP, 0),
        ],
    )
    settings = _children(
        _one(desktop, "DesktopSettings"),
        [Child("SourceLocation", OFFICE_APP), Child("RequestedHeight", OFFICE_APP)],
    )
    assert _one(settings, "SourceLocation").get("DefaultValue") == SITE.url("/panel?host=outlook")
    assert 32 <= int(_text(_one(settings, "RequestedHeight"))) <= 450
    # The least the panel needs: it reads the item, it never writes to the mailbox.
    assert _text(_one(parts, "Permissions")) == "ReadItem"
    rule = _one(parts, "Rule")
    assert rule.get(XSI_TYPE) == "RuleCollection"
    assert rule.get("Mode") in ("And", "Or")
    rules = _children(rule, [Child("Rule", OFFICE_APP, 1, 15)])
    assert [(r.get(XSI_TYPE), r.get("ItemType"), r.get("FormType")) for r in rules["Rule"]] == [
        ("ItemIs", "Message", "Read")
    ]
    assert _text(_one(parts, "DisableEntityHighlighting")) in ("true", "false")


def _check_overrides(overrides: ET.Element, namespace: str, *, pinnable: bool) -> None:
    parts = _children(overrides, _overrides_children(namespace, nested=not pinnable))
    resources = _resource_ids(_one(parts, "Resources"), namespace)
    referenced: set[str] = set()
    for element in overrides.iter():
        if element.get("resid") is not None and not _inside(
            overrides, element, OVERRIDES_1_1, namespace
        ):
            resid = element.get("resid", "")
            assert 0 < len(resid) <= 32, resid
            referenced.add(resid)
    assert referenced <= set(resources), referenced - set(resources)
    hosts = _children(_one(parts, "Hosts"), [Child("Host", namespace, 1, 9)])
    (host,) = hosts["Host"]
    assert host.get(XSI_TYPE) == "MailHost"
    factor = _children(host, [Child("DesktopFormFactor", namespace)])
    points = _children(
        _one(factor, "DesktopFormFactor"),
        [Child("FunctionFile", namespace, 0), Child("ExtensionPoint", namespace, 1, 20)],
    )
    (surface,) = points["ExtensionPoint"]
    assert surface.get(XSI_TYPE) == "MessageReadCommandSurface"
    tab = _one(_children(surface, [Child("OfficeTab", namespace)]), "OfficeTab")
    assert tab.get("id") == "TabDefault"
    group = _one(_children(tab, [Child("Group", namespace)]), "Group")
    controls = _children(group, [Child("Label", namespace), Child("Control", namespace, 1, 6)])
    (button,) = controls["Control"]
    assert button.get(XSI_TYPE) == "Button"
    assert 0 < len(button.get("id", "")) <= 125
    parts_of_button = _children(
        button,
        [
            Child("Label", namespace),
            Child("Supertip", namespace),
            Child("Icon", namespace),
            Child("Action", namespace),
        ],
    )
    supertip = _one(parts_of_button, "Supertip")
    _children(supertip, [Child("Title", namespace), Child("Description", namespace)])
    icons = _children(_one(parts_of_button, "Icon"), [Child("Image", BASIC_TYPES, 3, 3)])
    assert sorted(int(i.get("size", "0")) for i in icons["Image"]) == [16, 32, 80]
    action = _one(parts_of_button, "Action")
    assert action.get(XSI_TYPE) == "ShowTaskpane"
    pinning = [Child("SupportsPinning", namespace)] if pinnable else []
    steps = _children(action, [Child("SourceLocation", namespace), *pinning])
    assert _one(steps, "SourceLocation").get("resid") in resources
    if pinnable:
        assert _text(_one(steps, "SupportsPinning")) == "true"
    assert resources[_one(steps, "SourceLocation").get("resid", "")] == SITE.url(
        "/panel?host=outlook"
    )


def _inside(top: ET.Element, element: ET.Element, namespace: str, own: str) -> bool:
    """Whether ``element`` belongs to a nested VersionOverrides of another namespace."""
    if namespace == own:
        return False
    nested = top.find(f"{{{namespace}}}VersionOverrides")
    return nested is not None and any(element is item for item in nested.iter())


def _resource_ids(resources: ET.Element, namespace: str) -> dict[str, str]:
    groups = _children(
        resources,
        [
            Child("Images", BASIC_TYPES),
            Child("Urls", BASIC_TYPES),
            Child("ShortStrings", BASIC_TYPES, 0),
            Child("LongStrings", BASIC_TYPES, 0),
        ],
    )
    found: dict[str, str] = {}
    limits = {
        "Images": ("Image", 2048),
        "Urls": ("Url", 2048),
        "ShortStrings": ("String", 125),
        "LongStrings": ("String", 250),
    }
    for group, (tag, longest) in limits.items():
        for container in groups[group]:
            for item in _children(container, [Child(tag, BASIC_TYPES, 1, 999)])[tag]:
                resid, value = item.get("id", ""), item.get("DefaultValue", "")
                assert resid, "a resource without an id"
                assert resid not in found, f"duplicate resource id {resid}"
                assert 0 < len(value) <= longest, (resid, value)
                if group in ("Images", "Urls"):
                    _https_own(value)
                found[resid] = value
    return found


def test_the_command_surface_and_the_pinnable_panel(root: ET.Element) -> None:
    outer = root.find(f"{{{OVERRIDES_1_0}}}VersionOverrides")
    assert outer is not None
    assert outer.get(XSI_TYPE) == "VersionOverridesV1_0"
    _check_overrides(outer, OVERRIDES_1_0, pinnable=False)
    inner = outer.find(f"{{{OVERRIDES_1_1}}}VersionOverrides")
    assert inner is not None
    assert inner.get(XSI_TYPE) == "VersionOverridesV1_1"
    _check_overrides(inner, OVERRIDES_1_1, pinnable=True)


def test_no_url_names_another_host(root: ET.Element) -> None:
    text = ET.tostring(root, encoding="unicode")
    for url in re.findall(r"https?://[^\"<\s]+", text):
        if url.startswith("http://schemas.microsoft.com/") or url.startswith("http://www.w3.org/"):
            continue  # namespaces, not addresses
        _https_own(url)


def test_the_id_is_stable_per_instance_and_differs_between_instances() -> None:
    assert SITE.add_in_id == ManifestSite("https://crm.example.com").add_in_id
    assert SITE.add_in_id != ManifestSite("https://crm.other.example").add_in_id


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    app.include_router(addin.router)
    return app


def test_the_instance_serves_its_manifest_at_its_public_address() -> None:
    settings = Settings(public_url="https://crm.example.com/")
    with TestClient(_app(settings)) as client:
        served = client.get(addin.MANIFEST_PATH)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/xml")
    assert ET.fromstring(served.content).find(f"{{{OFFICE_APP}}}Id") is not None
    assert b"https://crm.example.com/panel" in served.content
    assert b"<!--" not in served.content


def test_a_manifest_asked_for_over_http_says_it_will_not_install() -> None:
    with TestClient(_app(Settings())) as client:
        served = client.get(addin.MANIFEST_PATH)
    assert served.status_code == 200
    assert b"http://testserver/panel" in served.content
    assert b"HTTPS" in served.content


def test_every_icon_the_manifest_names_is_in_the_package() -> None:
    from importlib.resources import files

    static = files("crmsync.web") / "static" / "addin"
    for size in addin.ICON_SIZES:
        icon = static / f"icon-{size}.png"
        data = icon.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (size, size)

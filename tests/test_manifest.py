"""The Office add-in manifests: generated from one template, valid against Microsoft's XSDs, stable ids.

The validator is proven real on the reference manifests copied into `tests/reference/` (its README
gives their sources and licences): the known-good samples listed as valid must pass, the broken ones must
fail, and the samples that only use post-2020 elements must fail on exactly those elements. The generated
manifests are checked against both the reference schemas and the copy packaged in `addin_manifest/xsd/`,
which must be identical.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from deskpilot.addin_manifest import (
    ASSETS_DIR,
    HOSTS,
    ICON_SIZES,
    SCHEMA_DIR,
    addin_id,
    manifest_filename,
    render,
    validate,
    write_manifests,
)
from deskpilot.addin_manifest._icons import draw_icon
from deskpilot.addin_manifest.cli import manifest

pytestmark = pytest.mark.unit

# Copies of Microsoft's schemas and sample manifests (tests/reference/README.md: sources and licences).
REFERENCE = Path(__file__).resolve().parent / "reference"
REFERENCE_XSD = REFERENCE / "office-manifest-xsd" / "combined"
SAMPLES = REFERENCE / "office-manifests"

NS = {
    "o": "http://schemas.microsoft.com/office/appforoffice/1.1",
    "bt": "http://schemas.microsoft.com/office/officeappbasictypes/1.0",
    "mail": "http://schemas.microsoft.com/office/mailappversionoverrides",
    "tp": "http://schemas.microsoft.com/office/taskpaneappversionoverrides",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
BASE_URL = "https://localhost:48123"

# office-manifests/README.md: "8 VALID" under the 2020 schemas.
KNOWN_GOOD = [
    "Office-Add-in-samples/hello-world__outlook-hello-world__manifest.xml",
    "Office-Add-in-samples/auth__Outlook-Add-in-SSO-NAA__manifest.xml",
    "Office-Add-in-samples/tutorials__outlook-tutorial__Git__the__gist__manifest.xml",
    "Office-Add-in-samples/hello-world__word-hello-world__manifest.xml",
    "Office-Add-in-samples/tutorials__word-tutorial__My__Office__Add-in__manifest.xml",
    "Office-Add-in-samples/office-add-in-commands__word__manifest.xml",
    "Office-Add-in-samples/word-import-template__manifest.xml",
    "Office-Add-in-samples/word-citation-management__manifest-configurations__add-in-only__manifest.xml",
]
# README: "8 INVALID only because they use post-2020 elements"; the error must name one of those.
NEWER_THAN_SCHEMA = [
    "Office-Add-in-samples/auth__Outlook-Add-in-SSO-events__manifest.xml",
    "Office-Add-in-samples/outlook-check-item-categories__manifest.xml",
    "Office-Add-in-samples/outlook-encrypt-attachments__manifest.xml",
    "Office-Add-in-samples/outlook-set-signature__manifest.xml",
    "Office-Add-in-samples/outlook-spam-reporting__manifest.xml",
    "Office-Add-in-samples/outlook-tag-external__manifest.xml",
    "Office-Add-in-samples/outlook-verify-sensitivity-label__manifest.xml",
    "Office-Add-in-samples/word-add-label-on-open__manifest.xml",
]
POST_2020_ELEMENTS = (
    "Runtimes",
    "LaunchEvent",
    "ExtendedPermissions",
    "WebApplicationInfo",
    "SupportsPinning",
)
# Broken on purpose, with a fragment of the error each must produce.
BROKEN = {
    "Office-Addin-Scripts-negative/manifest.incorrect-end-tag.xml": "not well-formed XML",
    "derived-negative/outlook-hello-world__Id-Version-swapped.xml": "Version': This element is not expected",
    "derived-negative/outlook-hello-world__bad-permissions.xml": "'EverythingPlease' is not an element",
}


@pytest.fixture(params=["reference", "packaged"])
def schema_dir(request: pytest.FixtureRequest) -> Path:
    return SCHEMA_DIR if request.param == "packaged" else REFERENCE_XSD


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


# --- the generated manifests are valid ---------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_generated_manifest_is_valid(host: str, schema_dir: Path) -> None:
    assert validate(render(host, BASE_URL), schema_dir) == []


def test_packaged_schemas_are_identical_to_the_reference_copy() -> None:
    packaged = {p.name: p.read_bytes() for p in SCHEMA_DIR.glob("*.xsd")}
    reference = {p.name: p.read_bytes() for p in REFERENCE_XSD.glob("*.xsd")}
    assert "OfficeAppManifestV1_1.xsd" in packaged
    assert packaged == reference


# --- the validator is real ---------------------------------------------------------------------------


def test_every_reference_manifest_is_classified() -> None:
    on_disk = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*.xml")}
    assert on_disk == set(KNOWN_GOOD) | set(NEWER_THAN_SCHEMA) | set(BROKEN)


@pytest.mark.parametrize("name", KNOWN_GOOD)
def test_known_good_sample_passes(name: str, schema_dir: Path) -> None:
    assert validate((SAMPLES / name).read_bytes(), schema_dir) == []


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_manifest_fails(name: str, schema_dir: Path) -> None:
    errors = validate((SAMPLES / name).read_bytes(), schema_dir)
    assert errors, f"{name} should be rejected"
    assert any(BROKEN[name] in error for error in errors), errors


@pytest.mark.parametrize("name", NEWER_THAN_SCHEMA)
def test_sample_using_post_2020_elements_fails_on_them(name: str, schema_dir: Path) -> None:
    errors = validate((SAMPLES / name).read_bytes(), schema_dir)
    assert errors
    assert all(any(f"}}{element}'" in error for element in POST_2020_ELEMENTS) for error in errors), errors


def test_validator_reports_a_resid_that_names_no_resource() -> None:
    xml = render("outlook", BASE_URL).replace(b'resid="Deskpilot.Read.Tooltip"', b'resid="Deskpilot.Typo"')
    errors = validate(xml)
    assert len(errors) == 1
    assert "'Deskpilot.Typo' is not an id in bt:LongStrings" in errors[0]


# --- ids, URLs and host-specific content -------------------------------------------------------------


def test_ids_are_stable_and_differ_per_host() -> None:
    ids = {host: parse(render(host, BASE_URL)).findtext("o:Id", namespaces=NS) for host in HOSTS}
    assert ids == {host: addin_id(host) for host in HOSTS}
    # Pinned: Office knows an installed add-in by its id, so changing these orphans every installation.
    assert ids == {
        "outlook": "6ba341dd-f7a1-59bb-bf9c-2c5dadeaa692",
        "word": "c32e943c-a105-5895-b989-7666ca43ca8c",
    }
    for host in HOSTS:
        again = parse(render(host, "https://127.0.0.1:9999")).findtext("o:Id", namespaces=NS)
        assert again == ids[host]


@pytest.mark.parametrize("host", HOSTS)
def test_render_is_deterministic(host: str) -> None:
    assert render(host, BASE_URL) == render(host, BASE_URL)


@pytest.mark.parametrize("host", HOSTS)
def test_every_url_is_under_the_base_url_with_its_port(host: str) -> None:
    root = parse(render(host, BASE_URL))
    values = [v for element in root.iter(etree.Element) for v in element.attrib.values()]
    values += [element.text for element in root.iter(etree.Element) if element.text]
    urls = [v.strip() for v in values if "://" in v]
    assert len(urls) >= 8
    assert all(url.startswith(BASE_URL) for url in urls), urls
    assert root.findtext("o:AppDomains/o:AppDomain", namespaces=NS) == BASE_URL


@pytest.mark.parametrize("host", HOSTS)
def test_no_template_markup_is_left(host: str) -> None:
    xml = render(host, BASE_URL)
    assert b"manifest-template" not in xml
    assert b"${" not in xml
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')


def taskpane_urls(root: etree._Element, surfaces: str) -> list[str]:
    """The URL each ribbon button on the given command surfaces opens."""
    urls = {u.get("id"): u.get("DefaultValue") for u in root.iterfind(".//bt:Urls/bt:Url", NS)}
    actions = root.xpath(
        f"//*[local-name()='ExtensionPoint'][{surfaces}]//*[local-name()='Action'][@xsi:type='ShowTaskpane']"
        "/*[local-name()='SourceLocation']/@resid",
        namespaces=NS,
    )
    return [urls[resid] for resid in actions]


def test_outlook_manifest_opens_the_pane_from_read_and_compose() -> None:
    root = parse(render("outlook", BASE_URL))
    pane = f"{BASE_URL}/taskpane/index.html?host=outlook"
    assert root.get(f"{{{NS['xsi']}}}type") == "MailApp"
    assert root.findtext("o:Permissions", namespaces=NS) == "ReadWriteItem"
    assert root.find("o:Requirements/o:Sets/o:Set", NS).attrib == {"Name": "Mailbox", "MinVersion": "1.3"}
    assert taskpane_urls(root, "@xsi:type='MessageReadCommandSurface'") == [pane]
    assert taskpane_urls(root, "@xsi:type='MessageComposeCommandSurface'") == [pane]
    forms = root.findall("o:FormSettings/o:Form", NS)
    assert [f.get(f"{{{NS['xsi']}}}type") for f in forms] == ["ItemRead", "ItemEdit"]
    assert {f.find(".//o:SourceLocation", NS).get("DefaultValue") for f in forms} == {pane}
    assert root.findtext("o:DefaultLocale", namespaces=NS) == "en-US"
    assert root.findtext("o:ProviderName", namespaces=NS) == "Deskpilot"
    assert root.find("o:SupportUrl", NS).get("DefaultValue") == f"{BASE_URL}/"


def test_word_manifest_has_a_ribbon_button_for_the_pane() -> None:
    root = parse(render("word", BASE_URL))
    pane = f"{BASE_URL}/taskpane/index.html?host=word"
    assert root.get(f"{{{NS['xsi']}}}type") == "TaskPaneApp"
    assert root.findtext("o:Permissions", namespaces=NS) == "ReadWriteDocument"
    assert root.find("o:Requirements/o:Sets/o:Set", NS).attrib == {"Name": "WordApi", "MinVersion": "1.3"}
    assert root.find("o:DefaultSettings/o:SourceLocation", NS).get("DefaultValue") == pane
    assert taskpane_urls(root, "@xsi:type='PrimaryCommandSurface'") == [pane]
    assert root.find("o:FormSettings", NS) is None


def test_base_url_is_normalised_and_escaped() -> None:
    root = parse(render("word", "https://xn--dsk-pilot.test:8443/desk&pilot/"))
    source = root.find("o:DefaultSettings/o:SourceLocation", NS).get("DefaultValue")
    assert source == "https://xn--dsk-pilot.test:8443/desk&pilot/taskpane/index.html?host=word"
    assert root.findtext("o:AppDomains/o:AppDomain", namespaces=NS) == "https://xn--dsk-pilot.test:8443"


@pytest.mark.parametrize(
    "base_url", ["localhost:8765", "ftp://localhost:8765", "https://localhost:8765/?x=1", "https://u:p@h:1"]
)
def test_render_rejects_a_base_url_office_could_not_use(base_url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        render("outlook", base_url)


def test_render_rejects_an_unknown_host() -> None:
    with pytest.raises(ValueError, match="unknown add-in host 'excel'"):
        render("excel", BASE_URL)  # type: ignore[arg-type]


# --- icons -------------------------------------------------------------------------------------------


def read_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGBA pixels of an unfiltered 8-bit RGBA PNG (what _icons.encode_png writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, header = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, payload = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        header = payload if kind == b"IHDR" else header
        idat += payload if kind == b"IDAT" else b""
        offset += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert (depth, colour_type) == (8, 6)
    raw, stride = zlib.decompress(idat), width * 4 + 1
    assert all(raw[row * stride] == 0 for row in range(height))
    return width, height, b"".join(raw[row * stride + 1 : (row + 1) * stride] for row in range(height))


@pytest.mark.parametrize("size", ICON_SIZES)
def test_checked_in_icon_matches_its_drawing(size: int) -> None:
    width, height, pixels = read_png((ASSETS_DIR / f"icon-{size}.png").read_bytes())
    assert (width, height) == (size, size)
    assert pixels == draw_icon(size), "run `python -m deskpilot.addin_manifest._icons` to regenerate"


@pytest.mark.parametrize("host", HOSTS)
def test_every_icon_the_manifest_names_exists(host: str) -> None:
    xml = render(host, BASE_URL).decode()
    prefix = f"{BASE_URL}/taskpane/assets/"
    names = {part.split('"')[0] for part in xml.split(prefix)[1:]}
    assert names and all((ASSETS_DIR / name).is_file() for name in names), names


# --- writing files and the CLI -----------------------------------------------------------------------


def test_write_manifests_writes_one_file_per_host(tmp_path: Path) -> None:
    paths = write_manifests(tmp_path / "out", BASE_URL)
    assert paths == [tmp_path / "out" / manifest_filename(host) for host in HOSTS]
    for host, path in zip(HOSTS, paths, strict=True):
        assert path.read_bytes() == render(host, BASE_URL)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)


@pytest.fixture
def deskpilot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DESKPILOT_HOME", str(tmp_path))
    for name in ("PORT", "HOST", "HTTPS"):
        monkeypatch.delenv(f"DESKPILOT_{name}", raising=False)
    return tmp_path


def test_cli_writes_both_manifests_to_the_app_data_folder(deskpilot_home: Path) -> None:
    result = CliRunner().invoke(manifest, ["--port", "48123"])
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert paths == [deskpilot_home / "manifests" / manifest_filename(host) for host in HOSTS]
    for path in paths:
        xml = path.read_bytes()
        assert b"https://localhost:48123/taskpane/index.html?host=" in xml
        assert validate(xml) == []


def test_cli_out_option_and_configured_port(deskpilot_home: Path) -> None:
    (deskpilot_home / "config.toml").write_text("port = 9123\n")
    out = deskpilot_home / "elsewhere"
    result = CliRunner().invoke(manifest, ["--out", str(out), "--validate"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(manifest_filename(host) for host in HOSTS)
    assert all(b"https://localhost:9123/" in p.read_bytes() for p in out.iterdir())
    assert not (deskpilot_home / "manifests").exists()


def test_cli_rejects_a_port_out_of_range(deskpilot_home: Path) -> None:
    result = CliRunner().invoke(manifest, ["--port", "70000"])
    assert result.exit_code == 2
    assert not (deskpilot_home / "manifests").exists()

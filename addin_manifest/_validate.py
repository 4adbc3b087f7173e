"""Validate an add-in manifest offline: Microsoft's XSD, plus the one check the XSD cannot express.

The schemas are Microsoft's public 2020 copies with the documented local fixes (`xsd/README.md`); they
ship inside the package so `deskpilot manifest --validate` works on a machine without this repository.
The XSD accepts a manifest whose `resid` points at no resource of the right kind, yet Office refuses it at
install time with little explanation, so `validate` reports that too.

lxml keeps a schema's error log on the schema object, so validation is serialized with a lock.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from lxml import etree

__all__ = ["SCHEMA_DIR", "validate"]

SCHEMA_DIR = Path(__file__).with_name("xsd")
ROOT_SCHEMA = "OfficeAppManifestV1_1.xsd"

_BT = "http://schemas.microsoft.com/office/officeappbasictypes/1.0"
# Which resource collection a `resid` must name, by the local name of the element that carries it.
_RESOURCE_KIND = {
    "Image": "Images",
    "SourceLocation": "Urls",
    "FunctionFile": "Urls",
    "LearnMoreUrl": "Urls",
    "Label": "ShortStrings",
    "Title": "ShortStrings",
    "Description": "LongStrings",
}
_lock = threading.Lock()


def _parser() -> etree.XMLParser:
    # A manifest may come from anywhere: no DTDs, no entity expansion, no network.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@functools.lru_cache(maxsize=4)
def _schema(schema_dir: Path) -> etree.XMLSchema:
    # Parsed from a file path so that xs:import schemaLocation resolves next to it.
    return etree.XMLSchema(etree.parse(str(schema_dir / ROOT_SCHEMA), _parser()))


def validate(xml_bytes: bytes, schema_dir: Path | None = None) -> list[str]:
    """Every problem found in the manifest, as "line N: message" strings; an empty list means valid.

    `schema_dir` is a folder holding OfficeAppManifestV1_1.xsd and the schemas it imports; the copy
    packaged with Deskpilot by default.
    """
    try:
        document = etree.fromstring(xml_bytes, _parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        return [f"line {exc.lineno}: not well-formed XML: {exc.msg}"]
    schema = _schema(Path(schema_dir or SCHEMA_DIR).resolve())
    with _lock:
        schema.validate(document)
        errors = [f"line {e.line}: {e.message}" for e in schema.error_log]
    return errors + _dangling_resids(document)


def _dangling_resids(document: etree._ElementTree) -> list[str]:
    resources: dict[str, set[str]] = {}
    for collection in document.iter(f"{{{_BT}}}*"):
        collection_kind = etree.QName(collection).localname
        if collection_kind in ("Images", "Urls", "ShortStrings", "LongStrings"):
            ids = resources.setdefault(collection_kind, set())
            ids.update(child.get("id", "") for child in collection.iterchildren(etree.Element))
    errors = []
    for element in document.iter(etree.Element):
        resid = element.get("resid")
        if resid is None:
            continue
        name = etree.QName(element).localname
        kind = _RESOURCE_KIND.get(name)
        known = resources.get(kind, set()) if kind else set().union(*resources.values())
        if resid not in known:
            where = f"bt:{kind}" if kind else "the Resources"
            errors.append(f"line {element.sourceline}: {name} resid {resid!r} is not an id in {where}")
    return errors

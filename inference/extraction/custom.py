"""Custom schemas: JSON Schema files a user drops in the schemas folder, turned into msgspec Structs.

`<folder>/<name>.json` becomes the schema `name`. We accept the part of JSON Schema that the llama.cpp grammar
can enforce, so that what the model writes always validates (see `schemas.py`):

- the root is an object with `properties` (and optionally `required`, `title`, `description`);
- a property has `type` string, number, integer, boolean, array or object (nested objects need
  `properties`), or a list of one of those and "null", or `anyOf` of one of those and {"type": "null"};
- strings may have `enum` (of strings), `maxLength` (at most 2000; 200 when absent, so output stays
  bounded) and `format` "date" (the grammar then forces YYYY-MM-DD) or "email";
- arrays need `items` and may have `maxItems` (at most 100; 20 when absent);
- any property may have `description` (it goes into the prompt) and `x-kind` (see `schemas.py`);
- a property that is not required may be null.

Anything else (`pattern`, `minimum`, `$ref`, `oneOf` ...) is refused with the path of the keyword, rather
than silently ignored. A file's `x-version` (an integer, default 1) is the version lineage shows.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import GenericAlias
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from deskpilot.inference.extraction.schemas import BUILT_IN, ExtractionSchema, SchemaError

__all__ = ["custom_schema", "list_schemas", "load_schema"]

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
DEFAULT_MAX_LENGTH, MAX_MAX_LENGTH = 200, 2000
DEFAULT_MAX_ITEMS, MAX_MAX_ITEMS = 20, 100
_COMMON = {"type", "description", "title", "x-kind", "default", "examples"}
_ALLOWED = {
    "string": _COMMON | {"enum", "maxLength", "format"},
    "number": _COMMON,
    "integer": _COMMON,
    "boolean": _COMMON,
    "array": _COMMON | {"items", "maxItems"},
    "object": _COMMON | {"properties", "required", "additionalProperties"},
}
_SCALARS: dict[str, Any] = {"number": float, "integer": int, "boolean": bool}


def _nullable_type(prop: dict[str, Any], where: str) -> tuple[dict[str, Any], bool]:
    """The property's schema without its null alternative, and whether null was allowed."""
    if "anyOf" in prop:
        options = prop["anyOf"]
        extra = set(prop) - {"anyOf", "description", "title", "x-kind"}
        non_null = [o for o in options if o != {"type": "null"}]
        if extra or len(non_null) != 1 or len(options) != 2:
            raise SchemaError(f'{where}: anyOf is supported only as [<schema>, {{"type": "null"}}]')
        return {**{k: v for k, v in prop.items() if k != "anyOf"}, **non_null[0]}, True
    kind = prop.get("type")
    if isinstance(kind, list):
        non_null = [t for t in kind if t != "null"]
        if len(non_null) != 1 or len(kind) > 2:
            raise SchemaError(f'{where}: a type list must be one type and optionally "null"')
        return {**prop, "type": non_null[0]}, "null" in kind
    return prop, False


def _python_type(prop: dict[str, Any], where: str, depth: int) -> Any:
    if depth > 4:
        raise SchemaError(f"{where}: nested too deeply (at most 4 levels)")
    kind = prop.get("type")
    if kind not in _ALLOWED:
        raise SchemaError(f"{where}: type must be one of {sorted(_ALLOWED)}, not {kind!r}")
    unsupported = set(prop) - _ALLOWED[kind]
    if unsupported:
        raise SchemaError(
            f"{where}: unsupported keyword(s) {sorted(unsupported)}; the supported part of JSON "
            "Schema is listed in the Deskpilot documentation of custom schemas"
        )
    extra = {k: prop[k] for k in ("x-kind",) if k in prop}
    meta = Meta(description=prop.get("description"), extra_json_schema=extra or None)
    if kind == "string":
        return Annotated[_string_type(prop, where), meta]
    if kind in _SCALARS:
        return Annotated[_SCALARS[kind], meta]
    if kind == "array":
        items = prop.get("items")
        if not isinstance(items, dict):
            raise SchemaError(f"{where}: an array needs `items` (one schema)")
        max_items = _limit(prop, "maxItems", DEFAULT_MAX_ITEMS, MAX_MAX_ITEMS, where)
        item_type = _python_type(_nullable_type(items, f"{where}[]")[0], f"{where}[]", depth + 1)
        # GenericAlias(list, ...) is list[item_type]; spelled so because the item type is built at run time.
        items_list = GenericAlias(list, (item_type,))
        return Annotated[items_list, Meta(max_length=max_items, description=prop.get("description"))]
    return Annotated[_struct(prop, where, depth + 1), meta]


def _string_type(prop: dict[str, Any], where: str) -> Any:
    if "enum" in prop:
        values = prop["enum"]
        if not values or not all(isinstance(v, str) for v in values):
            raise SchemaError(f"{where}: enum must be a non-empty list of strings")
        return Literal[tuple(values)]
    max_length = _limit(prop, "maxLength", DEFAULT_MAX_LENGTH, MAX_MAX_LENGTH, where)
    fmt = prop.get("format")
    if fmt not in (None, "date", "email"):
        raise SchemaError(f'{where}: format must be "date" or "email", not {fmt!r}')
    return Annotated[str, Meta(max_length=max_length, extra_json_schema={"format": fmt} if fmt else None)]


def _limit(prop: dict[str, Any], key: str, default: int, ceiling: int, where: str) -> int:
    value = prop.get(key, default)
    if not isinstance(value, int) or not 1 <= value <= ceiling:
        raise SchemaError(f"{where}: {key} must be an integer from 1 to {ceiling}")
    return value


def _struct(schema: dict[str, Any], where: str, depth: int) -> type[msgspec.Struct]:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        raise SchemaError(f"{where or 'the root'}: an object needs `properties`")
    required = set(schema.get("required", []))
    unknown = required - properties.keys()
    if unknown:
        raise SchemaError(f"{where or 'the root'}: required names unknown properties {sorted(unknown)}")
    fields: list[tuple[Any, ...]] = []
    rename: dict[str, str] = {}
    for index, (name, prop) in enumerate(properties.items()):
        path = f"{where}.{name}" if where else name
        if not isinstance(prop, dict):
            raise SchemaError(f"{path}: a property must be a JSON Schema object")
        inner, nullable = _nullable_type(prop, path)
        kind = _python_type(inner, path, depth)
        attribute = f"f{index}"  # JSON names need not be Python identifiers
        rename[attribute] = name
        if name in required and not nullable:
            fields.append((attribute, kind))
        elif inner.get("type") == "array":
            fields.append(
                (
                    attribute,
                    kind | None if nullable else kind,
                    None if nullable else msgspec.field(default_factory=list),
                )
            )
        else:
            fields.append((attribute, kind | None, None))
    title = re.sub(r"\W", "", str(schema.get("title") or "")) or "Custom"
    return msgspec.defstruct(title, fields, kw_only=True, rename=rename, forbid_unknown_fields=True)


def custom_schema(name: str, document: Any, origin: str) -> ExtractionSchema:
    """The schema `name` from a parsed JSON Schema document; `SchemaError` says what is not supported."""
    if not NAME.match(name):
        raise SchemaError(f"{origin}: a schema name is lower case letters, digits, '_' or '-', at most 40")
    if name in BUILT_IN:
        raise SchemaError(f"{origin}: {name!r} is a built-in schema; give the file another name")
    if not isinstance(document, dict) or document.get("type", "object") != "object":
        raise SchemaError(f"{origin}: the root must be an object schema")
    version = document.get("x-version", 1)
    if not isinstance(version, int) or version < 1:
        raise SchemaError(f"{origin}: x-version must be a positive integer")
    root = {k: v for k, v in document.items() if k not in ("$schema", "$id", "x-version")}
    root.setdefault("type", "object")
    try:
        struct = _struct(root, "", 0)
    except SchemaError as exc:
        raise SchemaError(f"{origin}: {exc}") from exc
    return ExtractionSchema(
        name,
        version,
        str(document.get("description") or document.get("title") or name),
        struct,
        "extract_custom",
        origin=origin,
    )


_cache: dict[Path, tuple[tuple[int, int], ExtractionSchema]] = {}


def _load_file(path: Path) -> ExtractionSchema:
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached and cached[0] == key:
        return cached[1]
    try:
        document = msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON: {exc}") from exc
    schema = custom_schema(path.stem, document, str(path))
    _cache[path] = (key, schema)
    return schema


def load_schema(name: str, folder: Path | None = None) -> ExtractionSchema:
    """A built-in schema, or `<folder>/<name>.json`. Files are re-read when they change."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    path = folder / f"{name}.json" if folder is not None and NAME.match(name) else None
    if path is None or not path.is_file():
        known = ", ".join([*BUILT_IN, *(s.name for s in list_schemas(folder)[0] if s.name not in BUILT_IN)])
        raise SchemaError(f"no schema {name!r}; known: {known}")
    return _load_file(path)


def list_schemas(folder: Path | None = None) -> tuple[list[ExtractionSchema], dict[str, str]]:
    """Every usable schema (built-in first), and the files in `folder` that could not be used, with why."""
    schemas, problems = list(BUILT_IN.values()), {}
    if folder is not None and folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            try:
                schemas.append(_load_file(path))
            except SchemaError as exc:
                problems[path.name] = str(exc)
    return schemas, problems

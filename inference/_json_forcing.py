"""What a JSON Schema leaves the model no choice about: the text that must come next.

Constrained decoding spends a decode step on every token, the ones the grammar forces included: the keys
of an object whose properties are all required (so they come in a fixed order), the quotes, colons and
commas between values, the rest of an enum value once its first characters single it out, the closing
quote of a string at its maxLength. `JsonForcing` follows the output as it is written and says which text
must come next, so that the backend can put those tokens in the KV cache as one batch (llama.cpp evaluates
a batch of n tokens in a fraction of the time of n single steps) instead of sampling them one by one.

It follows the subset of JSON Schema that llama.cpp's converter (`json_schema_to_gbnf`) turns into a
grammar, spelling literals as that grammar does (`json.dumps`, whose `\\uXXXX` escapes the grammar reads
as the characters themselves), and where that grammar allows a space it writes JSON's usual layout,
`{"a": 1, "b": [2, 3]}`. A forced text never ends in a space, so the model's next token is never split
from its usual leading space. This follower decides nothing on its own: the grammar
checks every forced token before it is used, and on anything the follower does not model (an optional
property, a pattern, a `$ref`) or does not expect, it stops forcing for the rest of the output (`lost`).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["JsonForcing"]

# A prefix of a JSON number as the grammar writes it (the grammar's own limits on digits are not needed:
# a number is never forced, only followed).
_NUMBER_PREFIX = re.compile(r"-?(?:0|[1-9]\d*)?(?:\.\d*)?(?:[eE][-+]?\d*)?")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")


class _Lost(Exception):
    """The output went somewhere this follower does not model: stop forcing."""


# --- the schema, as alternatives the output can take at one position -------------------------------------
# ("literal", text) | ("string", max_length or None) | ("number",) | ("object", [(key, alts)]) |
# ("array", alts, min, max or None) | ("unknown",)

Alt = tuple[Any, ...]


_UNKNOWN: Alt = ("unknown",)


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _alternatives(schema: Any) -> list[Alt]:
    """The schema's alternatives, in the order `json_schema_to_gbnf.visit` tests its keywords."""
    if not isinstance(schema, dict) or "$ref" in schema:
        return [_UNKNOWN]
    kind = schema.get("type")
    if "oneOf" in schema or "anyOf" in schema:
        return [alt for sub in schema.get("oneOf") or schema["anyOf"] for alt in _alternatives(sub)]
    if isinstance(kind, list):
        return [alt for t in kind for alt in _alternatives({"type": t})]
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        return [("literal", _literal(value)) for value in values]
    if kind in (None, "object") and any(k in schema for k in ("properties", "additionalProperties", "allOf")):
        return [_object(schema)]
    if kind in (None, "array") and ("items" in schema or "prefixItems" in schema):
        items = schema.get("items") or schema["prefixItems"]
        if not isinstance(items, dict):
            return [_UNKNOWN]
        return [("array", _alternatives(items), schema.get("minItems", 0), schema.get("maxItems"))]
    return _scalar(schema, kind)


def _object(schema: dict[str, Any]) -> Alt:
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    if properties is None and "allOf" in schema:
        return _UNKNOWN
    properties = properties or {}
    if set(schema.get("required", [])) != set(properties) or extra is True or isinstance(extra, dict):
        return _UNKNOWN  # optional keys or any key: which key comes next is the model's choice
    return ("object", [(_literal(key), _alternatives(sub)) for key, sub in properties.items()])


def _scalar(schema: dict[str, Any], kind: Any) -> list[Alt]:
    if kind in (None, "string") and ("pattern" in schema or re.match(r"^uuid", schema.get("format", ""))):
        return [_UNKNOWN]
    if kind == "string" or (kind is None and "format" in schema):
        return [("string", schema.get("maxLength"))]
    if kind in ("number", "integer"):
        return [("number",)]
    if kind == "boolean":
        return [("literal", "true"), ("literal", "false")]
    if kind == "null":
        return [("literal", "null")]
    return [_UNKNOWN]


def _common_prefix(texts: list[str]) -> str:
    if not texts:
        return ""
    first, last = min(texts), max(texts)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]


# --- frames: one per value being written, innermost last ---------------------------------------------------
# `feed(char)` answers TAKEN, DONE (taken, and the frame is complete), REFUSED (the frame is complete and
# `char` is its parent's), or a child frame to push (`_Push`). Anything else raises `_Lost`.

TAKEN, DONE, REFUSED = "taken", "done", "refused"


class _Push:
    def __init__(self, child: _Value, taken: bool) -> None:
        self.child, self.taken = child, taken


class _Value:
    """A value not yet known to be a container: a literal, an open string or number, or the opening bracket
    that turns it into an `_Object` or `_Array`. `gap` is the layout before it: " " after a colon or a
    comma, "" elsewhere."""

    def __init__(self, alts: list[Alt], gap: str) -> None:
        self.alts, self.gap = alts, gap
        self.text = ""
        self.spaced = False
        self.literals = [a[1] for a in alts if a[0] == "literal"]
        self.string_alt: Alt | None = next((a for a in alts if a[0] == "string"), None)
        self.in_string = False  # inside an open (non-enum) string
        self.number = any(a[0] == "number" for a in alts)
        self.unknown = any(a[0] == "unknown" for a in alts)
        self.string_chars = 0  # of an open string, an escape counting as one (the grammar's `char`)
        self.escape = ""  # the escape sequence being read
        self.closed = False  # an open string met its closing quote

    def container(self, char: str) -> Alt | None:
        if self.text or char not in "{[":
            return None
        found = [a for a in self.alts if a[0] == ("object" if char == "{" else "array")]
        if len(found) > 1:
            raise _Lost
        return found[0] if found else None

    def feed(self, char: str) -> str:
        if not self.text and char == " " and not self.spaced:
            self.spaced = True
            return TAKEN
        if self.unknown:
            raise _Lost
        if self.closed:
            return REFUSED
        text = self.text + char
        literals = [lit for lit in self.literals if lit.startswith(text)]
        if self.in_string:
            self._read_string_char(char)
            self.text, self.literals = text, literals
            return TAKEN
        opens_string = self.string_alt is not None and not self.text and char == '"'
        number = self.number and bool(_NUMBER_PREFIX.fullmatch(text))
        if not (literals or opens_string or number):
            if self.complete_now():
                return REFUSED
            raise _Lost
        self.text, self.literals, self.in_string, self.number = text, literals, opens_string, number
        return TAKEN

    def _read_string_char(self, char: str) -> None:
        if self.escape:
            self.escape += char
            if self.escape[1] != "u" or len(self.escape) == 6:
                self.escape = ""
                self.string_chars += 1
        elif char == "\\":
            self.escape = char
        elif char == '"':
            self.closed, self.in_string = True, False
        else:
            self.string_chars += 1

    def complete_now(self) -> bool:
        """The text so far is a whole value (more characters might still extend it)."""
        return (
            self.closed or self.text in self.literals or (self.number and bool(_NUMBER.fullmatch(self.text)))
        )

    def finished(self) -> bool:
        """Nothing can be added to this value any more."""
        if self.closed:
            return True
        return not (self.in_string or self.number) and self.literals == [self.text]

    def forced(self) -> str:
        if self.unknown or self.closed:
            return ""
        gap = "" if self.spaced else self.gap
        if not self.text:
            containers = [a for a in self.alts if a[0] in ("object", "array")]
            if self.string_alt is not None or self.number or (containers and self.literals):
                return ""
            if containers:
                return gap + ("{" if containers[0][0] == "object" else "[") if len(containers) == 1 else ""
            prefix = _common_prefix(self.literals)
            return gap + prefix if prefix else ""
        if self.in_string:
            limit = self.string_alt[1] if self.string_alt else None
            full = limit is not None and self.string_chars >= limit and not self.escape
            return '"' if full and not self.literals else ""
        if self.number:
            return ""
        return _common_prefix(self.literals)[len(self.text) :]


class _Object:
    """An object whose keys are all required, so that they come in schema order."""

    def __init__(self, keys: list[tuple[str, list[Alt]]]) -> None:
        self.keys = keys  # (the key as the grammar spells it, quotes included; its value's alternatives)
        self.index = 0  # the key being written, or whose value was written last
        self.state = "start"  # start, key, colon, value, after, comma
        self.key_text = ""
        self.spaced = False

    def feed(self, char: str) -> str | _Push:
        state = self.state
        if state in ("start", "comma", "colon", "after") and char == " " and not self.spaced:
            self.spaced = True
            return TAKEN
        if state == "start" and not self.keys and char == "}":
            return DONE
        if state in ("start", "comma") and char == '"' and self.keys:
            self.state, self.key_text = "key", '"'
            return TAKEN
        if state == "key":
            expected = self.keys[self.index][0]
            if expected.startswith(self.key_text + char):
                self.key_text += char
                if self.key_text == expected:
                    self.state, self.spaced = "colon", False
                return TAKEN
        if state == "colon" and char == ":":
            self.state = "value"
            return _Push(_Value(self.keys[self.index][1], " "), taken=True)
        if state == "after":
            if char == "," and self.index + 1 < len(self.keys):
                self.index, self.state, self.spaced = self.index + 1, "comma", False
                return TAKEN
            if char == "}" and self.index + 1 == len(self.keys):
                return DONE
        raise _Lost

    def child_done(self) -> None:
        self.state, self.spaced = "after", False

    def forced(self) -> str:
        state = self.state
        if state == "start":
            return f"{self.keys[0][0]}:" if self.keys else "}"
        if state == "comma":
            return ("" if self.spaced else " ") + f"{self.keys[self.index][0]}:"
        if state == "key":
            return self.keys[self.index][0][len(self.key_text) :] + ":"
        if state == "colon":
            return ":"
        if state == "after":
            return "," if self.index + 1 < len(self.keys) else "}"
        return ""


class _Array:
    def __init__(self, items: list[Alt], min_items: int, max_items: int | None) -> None:
        self.items, self.min, self.max = items, min_items, max_items
        self.count = 0
        self.state = "start"  # start, item, after, comma
        self.spaced = False

    def feed(self, char: str) -> str | _Push:
        state = self.state
        if state in ("start", "after", "comma") and char == " " and not self.spaced:
            self.spaced = True
            return TAKEN
        if state == "start" and char == "]" and self.min == 0:
            return DONE
        if state == "start" and self.max == 0:
            raise _Lost
        if state in ("start", "comma"):
            self.state = "item"
            return _Push(_Value(self.items, ""), taken=False)  # `char` is the item's first character
        if state == "after":
            if char == "," and (self.max is None or self.count < self.max):
                self.state, self.spaced = "comma", False
                return TAKEN
            if char == "]" and self.count >= self.min:
                return DONE
        raise _Lost

    def child_done(self) -> None:
        self.count += 1
        self.state, self.spaced = "after", False

    def forced(self) -> str:
        if self.state == "start":
            if self.max == 0:
                return "]"
            return _Value(self.items, "").forced() if self.min > 0 else ""
        if self.state == "after":
            if self.max is not None and self.count >= self.max:
                return "]"
            return "," if self.count < self.min else ""
        if self.state == "comma":
            item = _Value(self.items, "").forced()
            return ("" if self.spaced else " ") + item if item else ""
        return ""


class JsonForcing:
    """Follows JSON output under `schema`, character by character, and says what must come next."""

    def __init__(self, schema: Any) -> None:
        self._stack: list[_Value | _Object | _Array] = [_Value(_alternatives(schema), "")]
        self.lost = False
        self.done = False  # the root value is complete and nothing can extend it

    def feed(self, text: str) -> None:
        for char in text:
            if self.done and char == " ":
                continue  # the grammar allows a space after the root value
            if self.lost or self.done:
                self.lost = True
                continue
            try:
                self._feed(char)
            except _Lost:
                self.lost = True

    def _feed(self, char: str) -> None:
        while True:
            if not self._stack:
                raise _Lost
            top = self._stack[-1]
            alt = top.container(char) if isinstance(top, _Value) else None
            if alt is not None:
                self._stack[-1] = _Object(alt[1]) if alt[0] == "object" else _Array(alt[1], alt[2], alt[3])
                return
            answer = top.feed(char)
            if isinstance(answer, _Push):
                self._stack.append(answer.child)
                if answer.taken:
                    return
                continue
            if answer == TAKEN:
                self._settle()
                return
            if answer == DONE:
                self._pop()
                self._settle()
                return
            self._pop()  # REFUSED: `top` is complete and `char` is its parent's

    def _settle(self) -> None:
        """Pop the values nothing can extend any more, so that `forced` asks their parent."""
        while self._stack and isinstance(self._stack[-1], _Value) and self._stack[-1].finished():
            self._pop()

    def _pop(self) -> None:
        self._stack.pop()
        if self._stack:
            parent = self._stack[-1]
            assert not isinstance(parent, _Value)
            parent.child_done()
        else:
            self.done = True

    def forced(self) -> str:
        """The text that must come next: "" when the model has a choice, and once lost or done."""
        if self.lost or self.done:
            return ""
        return self._stack[-1].forced()

    def take_forced(self) -> str:
        """All the text forced from here on, fed to this follower as it goes (so only for text that will
        be written)."""
        out = ""
        while chunk := self.forced():
            self.feed(chunk)
            out += chunk
        return out

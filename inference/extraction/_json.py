"""Reading the model's JSON: where each value sits in the text, and what to do with JSON cut short.

Two things `msgspec.json.decode` cannot give us. First, the character span of every value, so that the
tokens that wrote a value (and their probabilities) can be found. Second, leniency where the llama.cpp JSON
grammar is looser than JSON: its string rule admits raw control characters (a line break copied from a
multi-line address), which strict JSON refuses. Otherwise this is plain JSON.

`close_truncated` handles output that stopped at the token limit: it cuts back to the last complete value
and closes the open objects and arrays, so that what the model did finish survives. The grammar guarantees
that the text is a prefix of valid JSON, which is what makes the cut points below sufficient.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

__all__ = ["JSONReadError", "Node", "close_truncated", "read_json"]

_WS = " \t\r\n"
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class JSONReadError(ValueError):
    pass


class Node(msgspec.Struct, frozen=True):
    """One value: its path ("lineItems[0].amount", "" for the root), the span of its content in the text
    (inside the quotes for a string) and its Python value. Containers are nodes too."""

    path: str
    start: int
    end: int
    value: Any


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.nodes: list[Node] = []

    def fail(self, what: str) -> JSONReadError:
        return JSONReadError(f"{what} at character {self.pos}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def value(self, path: str) -> Any:
        self.skip_ws()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end")
        start = self.pos
        char = self.text[self.pos]
        if char == "{":
            value: Any = self.object(path)
        elif char == "[":
            value = self.array(path)
        elif char == '"':
            value = self.string()
            self.nodes.append(Node(path, start + 1, self.pos - 1, value))
            return value
        else:
            value = self.scalar()
        self.nodes.append(Node(path, start, self.pos, value))
        return value

    def object(self, path: str) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        self.skip_ws()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return result
        while True:
            self.skip_ws()
            if not self.text.startswith('"', self.pos):
                raise self.fail("expected a key")
            key = self.string()
            self.skip_ws()
            if not self.text.startswith(":", self.pos):
                raise self.fail("expected ':'")
            self.pos += 1
            result[key] = self.value(f"{path}.{key}" if path else key)
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.text.startswith("}", self.pos):
                self.pos += 1
                return result
            else:
                raise self.fail("expected ',' or '}'")

    def array(self, path: str) -> list[Any]:
        self.pos += 1
        result: list[Any] = []
        self.skip_ws()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return result
        while True:
            result.append(self.value(f"{path}[{len(result)}]"))
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.text.startswith("]", self.pos):
                self.pos += 1
                return result
            else:
                raise self.fail("expected ',' or ']'")

    def string(self) -> str:
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(out)
            if char == "\\":
                escape = text[self.pos + 1 : self.pos + 2]
                if escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[self.pos + 2 : self.pos + 6]):
                    out.append(chr(int(text[self.pos + 2 : self.pos + 6], 16)))
                    self.pos += 6
                    continue
                if escape not in _ESCAPES:
                    raise self.fail("bad escape")
                out.append(_ESCAPES[escape])
                self.pos += 2
                continue
            out.append(char)  # raw control characters included: see the module docstring
            self.pos += 1
        raise self.fail("unterminated string")

    def scalar(self) -> Any:
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a value")
        self.pos = match.end()
        raw = match.group()
        if re.fullmatch(r"-?\d+", raw):
            return int(raw)
        number = float(raw)
        return number if math.isfinite(number) else None  # 1e999: no usable number


def read_json(text: str) -> tuple[Any, list[Node]]:
    """The value and every node in it (children before their container). `JSONReadError` if not JSON."""
    reader = _Reader(text)
    value = reader.value("")
    reader.skip_ws()
    if reader.pos != len(text):
        raise reader.fail("extra text after the value")
    return value, reader.nodes


def _cut_points(text: str) -> tuple[list[tuple[int, str]], list[str], bool]:
    """Where a cut leaves complete values (with the brackets that close it there), the brackets still open
    at the end, and whether the text ends inside a string."""
    stack: list[str] = []
    cuts: list[tuple[int, str]] = []
    in_string = escaped = False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
            if char == "[" or len(stack) == 1:  # an empty list is a value; a half-written object is not
                cuts.append((i + 1, "".join(reversed(stack))))
        elif char in "}]" and stack:
            stack.pop()
        elif char == ",":
            cuts.append((i, "".join(reversed(stack))))
    return cuts, stack, in_string


def close_truncated(text: str) -> str | None:
    """The longest cut of `text` that is valid JSON once its open containers are closed, or None.

    Candidate cuts, tried from the longest: the whole text (unless it ends inside a number, which may have
    been cut mid-digits), just before each comma, and just after each `[` and the root `{`. Everything
    after a cut is dropped: a half-written value (an object in a list included) is not a value.
    """
    cuts, stack, in_string = _cut_points(text)
    stripped = text.rstrip()
    if not in_string and stripped and not (stripped[-1].isdigit() or stripped[-1] in ".-+eE"):
        cuts.append((len(stripped), "".join(reversed(stack))))
    for end, closers in sorted(cuts, key=lambda cut: cut[0], reverse=True):
        candidate = text[:end].rstrip().rstrip(",") + closers
        try:
            read_json(candidate)
        except JSONReadError:
            continue
        return candidate
    return None

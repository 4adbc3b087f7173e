"""The JSON follower that tells the llama.cpp backend which text a schema forces (`_json_forcing.py`)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from deskpilot.inference._json_forcing import JsonForcing
from deskpilot.inference.extraction import BUILT_IN
from deskpilot.inference.extraction.extract import extraction_job

pytestmark = pytest.mark.unit

STORY = {
    "type": "object",
    "required": ["keeper", "mood", "ships"],
    "properties": {
        "keeper": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]},
        "mood": {"enum": ["calm", "stormy", "storm"]},
        "ships": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
    },
}


def write(forcing: JsonForcing, *model: str) -> str:
    """The text written when the model writes each of `model` in turn and the forced text is added."""
    out = forcing.take_forced()
    for piece in model:
        forcing.feed(piece)
        out += piece + forcing.take_forced()
    return out


def test_keys_punctuation_and_the_rest_of_an_enum_value_are_forced() -> None:
    forcing = JsonForcing(STORY)
    assert forcing.take_forced() == '{"keeper":'  # the model chooses between a string and null
    forcing.feed(' "Ann"')
    assert forcing.take_forced() == ', "mood": "'  # every mood starts with a quote
    forcing.feed("c")
    assert forcing.take_forced() == 'alm", "ships": ['  # a list, never null: its bracket is forced too
    assert not forcing.done and not forcing.lost
    assert write(forcing, "1", ",", " 2") == "1, 2"  # "2" may go on ("23"): the model closes the list
    assert write(forcing, "]") == "]}" and forcing.done


def test_an_enum_value_that_is_a_prefix_of_another_leaves_the_choice_to_the_model() -> None:
    forcing = JsonForcing(STORY)
    text = write(forcing, " null", "st")
    assert text.endswith('"storm') and forcing.forced() == ""  # "storm" or "stormy"
    assert write(forcing, '"') == '", "ships": ['


def test_an_open_string_is_closed_at_its_max_length_and_nothing_else_is_forced_inside() -> None:
    forcing = JsonForcing(STORY)
    forcing.take_forced()
    forcing.feed(' "Ann')
    assert forcing.forced() == ""
    forcing.feed("\\u00e9e")  # an escape is one character, as in the grammar: five characters now
    assert forcing.take_forced() == '", "mood": "'


def test_whitespace_the_model_chooses_is_followed_and_never_doubled() -> None:
    forcing = JsonForcing(
        {
            "type": "object",
            "required": ["a", "b"],
            "properties": {
                "a": {"type": "number"},
                "b": {"type": "array", "items": {"enum": [2, 3]}, "maxItems": 2},
            },
        }
    )
    # the space the model wrote before the comma stays single, and the one after it is not added again
    assert write(forcing, "1", " ") == '{"a":1 , "b": ['
    assert write(forcing, " ", "2", " ", ",", " 3") == " 2 , 3]}"  # maxItems reached: "]" is forced
    assert forcing.done and not forcing.lost


def test_a_forced_text_never_ends_in_a_space() -> None:
    forcing = JsonForcing(STORY)
    write(forcing, " null", "c")  # "calm"
    assert not forcing.take_forced().endswith(" ")


def test_a_root_enum_is_finished_by_its_first_distinguishing_characters() -> None:
    forcing = JsonForcing({"enum": ["invoice", "contract", "fyi"]})
    assert forcing.take_forced() == '"'
    assert write(forcing, "con") == 'contract"' and forcing.done


def test_a_literal_is_spelled_as_the_grammar_reads_it_with_its_characters_unescaped() -> None:
    # json_schema_to_gbnf writes json.dumps("é") as "\u00e9", which the grammar reads as "é" itself
    forcing = JsonForcing(
        {
            "type": "object",
            "required": ["caf\u00e9"],
            "properties": {"caf\u00e9": {"enum": ["Caf\u00e9 Noir", "Cafe"]}},
        }
    )
    assert write(forcing, "\u00e9") == '{"caf\u00e9": "Caf\u00e9 Noir"}' and forcing.done


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}}},  # optional key: the model's choice
        {
            "type": "object",
            "required": ["a"],
            "properties": {"a": {"type": "string"}},
            "additionalProperties": True,
        },
        {"type": "string", "pattern": "^[a-z]+$"},
        {"$ref": "#/$defs/x"},
    ],
)
def test_what_the_follower_does_not_model_is_never_forced(schema: dict[str, Any]) -> None:
    forcing = JsonForcing(schema)
    assert forcing.forced() in ("", "{")  # at most the object's own bracket
    forcing.feed('{"a": "x"}')
    assert forcing.take_forced() == ""


def test_text_the_schema_does_not_allow_stops_forcing_for_good() -> None:
    forcing = JsonForcing(STORY)
    forcing.take_forced()
    forcing.feed(" 42")  # keeper is a string or null
    assert forcing.lost and forcing.take_forced() == ""
    forcing.feed(', "mood":')
    assert forcing.take_forced() == ""


def _sample(schema: dict[str, Any], rng: random.Random) -> Any:
    if "anyOf" in schema:
        return _sample(rng.choice(schema["anyOf"]), rng)
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return None
    if kind == "string":
        return "".join(rng.choice('ab "\\é\n1') for _ in range(rng.randint(0, schema.get("maxLength", 6))))
    if kind in ("number", "integer"):
        return rng.choice([0, 1.5, -2, 12345, 1e5, 7])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [_sample(schema["items"], rng) for _ in range(rng.randint(0, schema.get("maxItems", 3)))]
    return {key: _sample(sub, rng) for key, sub in schema["properties"].items()}


INVOICE_TEXT = (
    "Northwind Traders Ltd\n12 Harbour Road, Bristol BS1 4DJ\nInvoice No: NW-2041\nDate: 03/02/2025\n"
    "Paper 2 x 12.50 25.00\nToner 1 x 60.00 60.00\nTotal 85.00\nCash 100.00\n"
)
GROUNDED = extraction_job(BUILT_IN["invoice"], text=INVOICE_TEXT, context_length=4096).request.json_schema
SCHEMAS = {
    "story": STORY,
    "grounded_invoice": GROUNDED,
    **{name: schema.decode_schema for name, schema in BUILT_IN.items()},
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_forced_text_is_always_how_a_valid_document_goes_on(name: str) -> None:
    """For many valid documents in JSON's usual layout, written a few characters at a time: whatever the
    follower forces is exactly the document's next text, and it never loses its place."""
    schema, rng = SCHEMAS[name], random.Random(7)
    for _ in range(200):
        document = json.dumps(_sample(schema, rng))
        forcing, position = JsonForcing(schema), 0
        while position < len(document):
            forced = forcing.take_forced()
            assert document.startswith(forced, position), (document, position, forced)
            position += len(forced)
            step = rng.randint(1, 4)
            forcing.feed(document[position : position + step])
            position += step
            assert not forcing.lost, (document, position)
        assert forcing.done or document[-1].isdigit()  # a number at the root ends only with the output

"""Structured extraction and triage: schemas, constrained decoding, validation, rule checks, confidence.

The pieces, each pure and usable without a server:

- `schemas` / `custom`: the built-in schemas (invoice, contract, email_actions, meeting_notes) as msgspec
  Structs, and users' JSON Schema files, each with the JSON Schema the model is held to while it writes;
- `extract`: `extraction_job` (prompt + constrained request) and `finish_extraction` (read, repair,
  validate, normalise, check, score) around one generation;
- `classify`: the same for triage into configurable labels;
- `extractors`, `normalize`, `rules`, `confidence`: the deterministic extractors, value normalisation,
  rule checks and the confidence model that the two tasks use;
- `evaluate`: field-level precision, recall and F1 against labelled documents.
"""

from deskpilot.inference.extraction.classify import (
    DEFAULT_LABELS,
    Classification,
    FewShot,
    TriageLabel,
    classify_job,
    finish_classification,
    triage_labels,
)
from deskpilot.inference.extraction.confidence import FieldReport
from deskpilot.inference.extraction.custom import list_schemas, load_schema
from deskpilot.inference.extraction.extract import (
    DEFAULT_REVIEW_THRESHOLD,
    ExtractionResult,
    Generated,
    extraction_job,
    finish_extraction,
)
from deskpilot.inference.extraction.extractors import Facts, find_facts
from deskpilot.inference.extraction.rules import Change, RuleResult
from deskpilot.inference.extraction.schemas import BUILT_IN, ExtractionSchema, SchemaError

__all__ = [
    "BUILT_IN",
    "DEFAULT_LABELS",
    "DEFAULT_REVIEW_THRESHOLD",
    "Change",
    "Classification",
    "ExtractionResult",
    "ExtractionSchema",
    "Facts",
    "FewShot",
    "FieldReport",
    "Generated",
    "RuleResult",
    "SchemaError",
    "TriageLabel",
    "classify_job",
    "extraction_job",
    "find_facts",
    "finish_classification",
    "finish_extraction",
    "list_schemas",
    "load_schema",
    "triage_labels",
]

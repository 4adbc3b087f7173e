"""Deskpilot's AI task layer: backends behind one streaming contract, versioned prompts, task assembly.

Backends (`LlamaCppBackend`, the scripted `ScriptedBackend` for tests) only stream; callers time, record
and serialize access through a `ModelGate`.
"""

from deskpilot.inference._types import BackendInfo, Finished, GenerationRequest, Message, Token, Usage
from deskpilot.inference.backend import Backend, BackendError, ContextOverflow
from deskpilot.inference.fake import ScriptedBackend
from deskpilot.inference.gate import ModelBusy, ModelGate, Ticket
from deskpilot.inference.tasks import (
    Email,
    Job,
    Passage,
    ask_job,
    draft_reply_job,
    input_digest,
    rewrite_job,
    summarize_job,
)
from deskpilot.inference.templates import PromptTemplate, TemplateError, load_template

__all__ = [
    "Backend",
    "BackendError",
    "BackendInfo",
    "ContextOverflow",
    "Email",
    "Finished",
    "GenerationRequest",
    "Job",
    "Message",
    "ModelBusy",
    "ModelGate",
    "Passage",
    "PromptTemplate",
    "ScriptedBackend",
    "TemplateError",
    "Ticket",
    "Token",
    "Usage",
    "ask_job",
    "draft_reply_job",
    "input_digest",
    "load_template",
    "rewrite_job",
    "summarize_job",
]

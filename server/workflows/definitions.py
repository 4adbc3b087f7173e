"""The workflows Deskpilot ships: invoice intake and meeting follow-up.

Inputs (from a trigger): `text` (the message or notes), and where there is one, `subject`, `sender`,
`messageId` (Graph id, for a reply draft), `webLink`, `sourceRef`, `source` ("mail_rule", "taskpane").
Automation settings (`PUT /v1/automations/{name}`, "settings"): `financeWebhook` and
`financeWebhookSecret` (a keyring name), `approverList` (a To Do list name), `reviewTimeoutHours`,
`escalationWebhook` / `escalationList`, `alwaysReview` (meeting follow-up, default true).
"""

from __future__ import annotations

from typing import Any

from deskpilot.server.workflows.engine import Definition, Proposal, Step, StepContext, Stop, Wait

__all__ = ["DEFINITIONS"]


def _hours(ctx: StepContext) -> float:
    return float(ctx.settings.get("reviewTimeoutHours", 24))


def _review_or(ctx: StepContext, extract: dict[str, Any], *, always: bool, problems: list[str]) -> Any:
    """Wait for the extraction's review; open one when the workflow needs a person and the extraction
    itself did not ask for one."""
    if extract.get("review"):
        return Wait(review=extract["review"], hours=_hours(ctx))
    if always or problems:
        run = ctx.engine.lineage.get_run(extract["runId"])
        item = ctx.reviews.enqueue(
            run_id=extract["runId"],
            task=run.task if run else "extract",
            template_id=run.template_id if run else "",
            model_id=run.model_id if run else "",
            reasons=problems or ["this workflow asks a person to check before acting"],
            confidence=extract.get("confidence"),
            proposed=extract["data"],
            fields={},
            spec={"schema": extract.get("schema")},
            source_text=ctx.inputs.get("text"),  # shown beside the fields while a person decides
        )
        return Wait(review=item.id, hours=_hours(ctx))
    return {"decision": "not_needed", "data": extract["data"]}


def _final(ctx: StepContext) -> dict[str, Any]:
    review = ctx.outputs.get("review") or {}
    data: dict[str, Any] = review.get("data") or ctx.outputs["extract"]["data"]
    return data


def _run(ctx: StepContext) -> str:
    """The extraction's run, which the actions cite: policy weighs its confidence, or 1.0 once a person
    accepted or edited it in review (the outbox reads both from lineage)."""
    return str(ctx.outputs["extract"]["runId"])


# -- invoice intake ------------------------------------------------------------------------------------


def _triage(ctx: StepContext) -> Any:
    labels = list(ctx.engine.triage_labels)
    out = ctx.ai.classify(ctx.inputs["text"], labels, ctx.inputs.get("sourceRef"))
    expected = ctx.inputs.get("expectLabel") or "invoice"
    if ctx.inputs.get("source") == "mail_rule" and out["label"] != expected:
        return Stop("skipped", f"triaged as {out['label']}, not {expected}")
    return out


def _extract_invoice(ctx: StepContext) -> Any:
    return ctx.ai.extract("invoice", ctx.inputs["text"], ctx.inputs.get("sourceRef"))


def _validate_invoice(ctx: StepContext) -> dict[str, Any]:
    data = ctx.outputs["extract"]["data"]
    problems = [f"missing {name}" for name in ("vendor", "total") if data.get(name) in (None, "")]
    problems += [r["message"] for r in ctx.outputs["extract"].get("rules", []) if r.get("status") == "fail"]
    return {"ok": not problems, "problems": problems}


def _review_invoice(ctx: StepContext) -> Any:
    return _review_or(ctx, ctx.outputs["extract"], always=False, problems=ctx.outputs["validate"]["problems"])


def _money(data: dict[str, Any]) -> str:
    total = data.get("total")
    return f"{total:.2f} {data.get('currency') or ''}".strip() if isinstance(total, int | float) else "?"


def _approver_task(ctx: StepContext) -> list[Proposal]:
    data = _final(ctx)
    number = f" {data['invoiceNumber']}" if data.get("invoiceNumber") else ""
    title = f"Approve invoice{number} from {data.get('vendor') or 'unknown vendor'}: {_money(data)}"
    lines = [
        f"{k}: {data[k]}"
        for k in ("vendor", "invoiceNumber", "issueDate", "dueDate", "total", "currency")
        if data.get(k) not in (None, "")
    ]
    return [
        Proposal(
            "todo_task",
            {
                "title": title[:255],
                "body": "\n".join([*lines, f"Deskpilot workflow {ctx.workflow_id}"]),
                "due": _iso_date(data.get("dueDate")),
                "listName": ctx.settings.get("approverList"),
                "linkUrl": ctx.inputs.get("webLink"),
            },
            "To Do task for the approver",
            _run(ctx),
        )
    ]


def _finance_webhook(ctx: StepContext) -> list[Proposal]:
    data = _final(ctx)
    return [
        Proposal(
            "webhook",
            {
                "url": ctx.settings["financeWebhook"],
                "secret": ctx.settings.get("financeWebhookSecret"),
                "payload": {
                    "type": "deskpilot.invoice.received",
                    "workflowId": ctx.workflow_id,
                    "runId": ctx.outputs["extract"]["runId"],
                    "invoice": {k: v for k, v in data.items() if k != "lineItems"},
                    "reviewedBy": (ctx.outputs.get("review") or {}).get("reviewer"),
                    "source": ctx.inputs.get("sourceRef"),
                },
            },
            "Post the invoice to the finance channel",
            _run(ctx),
        )
    ]


def _iso_date(value: Any) -> str | None:
    from datetime import date

    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


INVOICE_INTAKE = Definition(
    "invoice_intake",
    1,
    "Triage, extract and check an invoice, review if needed, then a To Do task for the "
    "approver and a post to the finance channel",
    [
        Step("triage", "task", _triage),
        Step("extract", "task", _extract_invoice),
        Step("validate", "task", _validate_invoice),
        Step("review", "review", _review_invoice),
        Step("approver_task", "actions", _approver_task),
        Step(
            "finance_webhook",
            "actions",
            _finance_webhook,
            when=lambda ctx: bool(ctx.settings.get("financeWebhook")),
        ),
    ],
)


# -- meeting follow-up ---------------------------------------------------------------------------------


def _extract_items(ctx: StepContext) -> Any:
    schema = "meeting_notes" if ctx.inputs.get("kind") == "notes" else "email_actions"
    return ctx.ai.extract(schema, ctx.inputs["text"], ctx.inputs.get("sourceRef"))


def _review_items(ctx: StepContext) -> Any:
    return _review_or(
        ctx, ctx.outputs["extract"], always=bool(ctx.settings.get("alwaysReview", True)), problems=[]
    )


def _follow_up(ctx: StepContext) -> list[Proposal]:
    items = [i for i in _final(ctx).get("actionItems", []) if isinstance(i, dict) and i.get("task")]
    run = _run(ctx)
    proposals = [
        Proposal(
            "todo_task",
            {
                "title": str(item["task"])[:255],
                "body": "\n".join(f"{k}: {item[k]}" for k in ("owner", "dueDate") if item.get(k)),
                "due": _iso_date(item.get("dueDate")),
                "listName": ctx.settings.get("taskList"),
                "linkUrl": ctx.inputs.get("webLink"),
            },
            f"To Do: {item['task']}"[:200],
            run,
        )
        for item in items
    ]
    if items and ctx.inputs.get("messageId"):
        listed = "\n".join(
            f"- {i['task']}"
            + (
                f" ({i['owner']}" + (f", by {i['dueDate']}" if i.get("dueDate") else "") + ")"
                if i.get("owner")
                else ""
            )
            for i in items
        )
        proposals.append(
            Proposal(
                "draft_reply",
                {
                    "messageId": ctx.inputs["messageId"],
                    "body": f"Thanks, here are the follow-ups as I understand them:\n\n{listed}\n",
                },
                "Draft a reply listing the follow-ups",
                run,
            )
        )
    return proposals


MEETING_FOLLOWUP = Definition(
    "meeting_followup",
    1,
    "Action items from a message or meeting notes, reviewed, then To Do tasks and a draft reply listing them",
    [
        Step("extract", "task", _extract_items),
        Step("review", "review", _review_items),
        Step("follow_up", "actions", _follow_up),
    ],
)

DEFINITIONS = {d.name: d for d in (INVOICE_INTAKE, MEETING_FOLLOWUP)}

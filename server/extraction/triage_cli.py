"""`deskpilot eval triage DATASET.jsonl`: triage accuracy, macro-F1 and the confusion matrix, and with
`--simulate-review` the learning curve of a simulated reviewer.

The data set is JSON Lines with `label` and either `text` or `subject` and `body` (enron-triage-dev's
shape). The labels come from `--labels FILE.toml` (`[[labels]]` tables with `id`, `name`, `description`,
`examples`; a record's `label` names one by id or name), or else are the data set's own label texts,
bare (no description, which is how labels were before they could be described).

Every item goes through the real app in-process (`POST /v1/classify` over HTTP on loopback, as the task
pane calls it), on a scratch copy of the app data folder: the user's lineage, reviews and examples are
untouched. Each answer reports three classifiers at once: the model alone (`modelLabel`), the zero-shot
scores alone (the run's lineage record), and the blend (`label`). With `--simulate-review`, the items are
processed in order and every one sent to review is corrected with its gold label through
`POST /v1/reviews/{id}` (`simulate.py`), so the triage memory learns as it would from a person; the
curves (accuracy and review rate against items seen) go to a PNG.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import tempfile
import tomllib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import httpx
import msgspec
from rich.console import Console
from rich.table import Table

from deskpilot.inference.extraction import TriageLabel
from deskpilot.server.core.cli import cli_parts, settings_or_usage_error
from deskpilot.server.extraction.simulate import Simulation, Submission, simulate

__all__ = ["TriageItem", "baseline_curves", "eval_triage", "read_items", "read_labels", "scores"]

out = Console(width=None if sys.stdout.isatty() else 110)
CLASSIFIERS = ("model", "zeroShot", "blend")
# Items the curves are taken over: triage accuracy over 20 emails moves by 0.05 per email.
CURVE_WINDOW = 40


class TriageItem(msgspec.Struct, frozen=True, kw_only=True):
    id: str = ""
    label: str
    text: str | None = None
    subject: str = ""
    body: str = ""

    def message(self, body_chars: int | None) -> str:
        if self.text is not None:
            return self.text
        body = self.body.strip() or "(no text)"
        if body_chars is not None and len(body) > body_chars:
            body = body[:body_chars].rstrip() + " [...]"
        return f"Subject: {self.subject}\n\n{body}" if self.subject else body


def read_items(path: Path, limit: int | None) -> list[TriageItem]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                item = msgspec.json.decode(line, type=TriageItem)
            except msgspec.DecodeError as exc:
                raise click.BadParameter(f"{path}:{number}: {exc}", param_hint="DATASET") from exc
            items.append(msgspec.structs.replace(item, id=item.id or str(number)))
    return items[:limit] if limit else items


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "label"
    return slug if slug[0].isalpha() else f"l_{slug}"[:40]


def read_labels(path: Path | None, items: Sequence[TriageItem]) -> tuple[list[TriageLabel], dict[str, str]]:
    """The labels, and each data set label text's id."""
    if path is None:
        names = list(dict.fromkeys(item.label for item in items))
        labels = [TriageLabel(id=_slug(name), name=name) for name in names]
    else:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8")).get("labels", [])
            labels = msgspec.convert(raw, list[TriageLabel])
        except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
            raise click.BadParameter(f"{path}: {exc}", param_hint="--labels") from exc
    ids = {label.id: label.id for label in labels} | {label.name: label.id for label in labels if label.name}
    unknown = sorted({item.label for item in items} - ids.keys())
    if unknown:
        raise click.BadParameter(f"data set labels with no label in {path}: {unknown}", param_hint="--labels")
    return labels, ids


def scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the labels the gold set has, and the confusion counts (gold -> predicted)."""
    present = sorted(set(gold))
    pairs = Counter(zip(gold, predicted, strict=True))
    f1s = []
    for label in present:
        tp = pairs[(label, label)]
        predicted_n, gold_n = sum(p == label for p in predicted), sum(g == label for g in gold)
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / gold_n
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {
        "n": len(gold),
        "accuracy": round(sum(g == p for g, p in pairs.elements()) / max(len(gold), 1), 4),
        "macroF1": round(sum(f1s) / len(f1s), 4) if f1s else 0.0,
        "confusion": {f"{g} -> {p}": n for (g, p), n in sorted(pairs.items())},
    }


class TriageSimulation:
    """Triage as a simulated task (`simulate.SimulatedTask`): `POST /v1/classify` with the labels."""

    def __init__(
        self,
        labels: list[TriageLabel],
        ids: dict[str, str],
        *,
        profile: str | None,
        body_chars: int | None,
    ) -> None:
        self.wire = [msgspec.to_builtins(label) for label in labels]
        self.ids, self.profile, self.body_chars = ids, profile, body_chars
        self.answers: list[dict[str, Any]] = []  # every answer, with the zero-shot label from lineage

    def item_id(self, item: TriageItem) -> str:
        return item.id

    def submit(self, client: httpx.Client, item: TriageItem) -> Submission:
        body: dict[str, Any] = {
            "text": item.message(self.body_chars),
            "labels": self.wire,
            "cache": False,
            "client": "cli",
        }
        if self.profile:
            body["profile"] = self.profile
        response = client.post("/v1/classify", json=body)
        if response.status_code != 200:
            raise RuntimeError(
                f"POST /v1/classify for {item.id} answered {response.status_code}: {response.text}"
            )
        answer = response.json()
        run = client.get(f"/v1/runs/{answer['runId']}").json()
        zero_shot = run["validation"]["blend"]["parts"]["zeroShot"]
        self.answers.append(
            {
                "id": item.id,
                "gold": self.ids[item.label],
                "model": answer["modelLabel"],
                "zeroShot": max(zero_shot, key=zero_shot.get),
                "blend": answer["label"],
                "confidence": answer["confidence"],
                "reviewed": answer["review"] is not None,
                "nearest": len(answer["nearest"]),
            }
        )
        review = answer["review"]["id"] if answer["review"] else None
        return Submission(data={"label": answer["label"]}, review_id=review)

    def correction(self, item: TriageItem, proposed: dict[str, Any]) -> dict[str, Any]:
        gold = self.ids[item.label]
        return {} if proposed["label"] == gold else {"label": gold}

    def right(self, item: TriageItem, data: dict[str, Any]) -> bool:
        return bool(data["label"] == self.ids[item.label])


def run_triage(
    settings: Any, task: TriageSimulation, items: Sequence[TriageItem], *, review: bool
) -> Simulation | None:
    """Every item through the app on a scratch app data folder; reviewed with gold labels if `review`."""
    from litestar.testing import TestClient

    from deskpilot.server.app import create_app
    from deskpilot.server.core.token import read_token
    from deskpilot.server.services import Services

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    with tempfile.TemporaryDirectory(prefix="deskpilot-triage-") as scratch:
        scratch_settings = msgspec.structs.replace(settings, home=Path(scratch), worker=False)
        app = create_app(Services(scratch_settings, **cli_parts()))
        with TestClient(app, base_url="http://127.0.0.1:8765") as client:
            client.headers.update({"Authorization": f"Bearer {read_token(scratch_settings.token_path)}"})
            if review:
                return simulate(task, items, client, name="triage")
            for item in items:
                task.submit(client, item)
    return None


def _report(task: TriageSimulation, labels: list[TriageLabel]) -> dict[str, Any]:
    gold = [a["gold"] for a in task.answers]
    results = {name: scores(gold, [a[name] for a in task.answers]) for name in CLASSIFIERS}
    table = Table("classifier", "items", "accuracy", "macro-F1", title="triage")
    for name, result in results.items():
        table.add_row(name, str(result["n"]), f"{result['accuracy']:.3f}", f"{result['macroF1']:.3f}")
    out.print(table)
    ids = [label.id for label in labels]
    matrix = Table("gold \\ blend", *[i[:8] for i in ids], title="confusion (rows: gold, columns: blended)")
    counts = Counter((a["gold"], a["blend"]) for a in task.answers)
    for g in ids:
        if any(a["gold"] == g for a in task.answers):
            matrix.add_row(g, *[str(counts[(g, p)] or "") for p in ids])
    out.print(matrix)
    return results


def baseline_curves(answers: Sequence[dict[str, Any]], window: int) -> dict[str, list[float | None]]:
    """Accuracy over the last `window` items of the classifiers that do not learn (the zero-shot scores
    and the model alone), on the same items as the simulation's: the gap to the blend's curve is what the
    corrections taught, whatever the items' own difficulty."""
    curves: dict[str, list[float | None]] = {}
    for name, title in (("zeroShot", "zero-shot alone, no corrections"), ("model", "model alone")):
        right = [a[name] == a["gold"] for a in answers]
        curves[f"accuracy {title} (last {window})"] = [
            sum(right[max(0, i + 1 - window) : i + 1]) / len(right[max(0, i + 1 - window) : i + 1])
            for i in range(len(right))
        ]
    return curves


@click.command(name="triage")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TOML file of [[labels]] (id, name, description, examples); default: the data set's labels, bare.",
)
@click.option("--model", "profile", metavar="PROFILE", help="A model profile (`[models.NAME]`).")
@click.option("--limit", type=click.IntRange(1), help="Only the first N items.")
@click.option(
    "--body-chars",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Cut each body to this many characters (the model reads the opening; long emails cost minutes).",
)
@click.option("--threads", type=click.IntRange(1), help="CPU threads for the embedded model.")
@click.option(
    "--shuffle",
    type=int,
    metavar="SEED",
    help="Process the items in a random order (this seed) rather than the file's; --limit applies after.",
)
@click.option(
    "--simulate-review",
    is_flag=True,
    help="Process the items in order, a simulated reviewer correcting each reviewed one with its gold "
    "label through the review API; plot accuracy and review rate against items seen.",
)
@click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("eval-triage"),
    show_default=True,
    help="Folder for the PNG figure and results.json.",
)
def eval_triage(
    dataset: Path,
    labels_file: Path | None,
    profile: str | None,
    limit: int | None,
    body_chars: int,
    threads: int | None,
    shuffle: int | None,
    simulate_review: bool,
    plots: Path,
) -> None:
    """Triage accuracy, macro-F1 and confusion on a labelled JSON Lines data set (label, subject, body)."""
    settings = settings_or_usage_error(**({"threads": threads} if threads else {}))
    items = read_items(dataset, None)
    if shuffle is not None:  # a data set sorted by label would teach one label at a time
        random.Random(shuffle).shuffle(items)
    items = items[:limit] if limit else items
    labels, ids = read_labels(labels_file, items)
    task = TriageSimulation(labels, ids, profile=profile, body_chars=body_chars)
    simulation = run_triage(settings, task, items, review=simulate_review)
    results: dict[str, Any] = {
        "dataset": str(dataset),
        "labels": str(labels_file),
        "profile": profile,
        "shuffle": shuffle,
        "bodyChars": body_chars,
    }
    results |= _report(task, labels)
    if simulation is not None:
        from deskpilot.server.extraction.plots import learning_curves

        curves = simulation.curves(CURVE_WINDOW) | baseline_curves(task.answers, CURVE_WINDOW)
        png = learning_curves(
            plots / "triage-simulated-review.png",
            curves,
            title=f"simulated reviewer · triage · {profile or 'embedded'} · {len(items)} emails",
        )
        out.print(simulation.summary())
        out.print(f"curves: {png}")
        results["curves"] = curves
    results["answers"] = task.answers
    plots.mkdir(parents=True, exist_ok=True)
    (plots / "results.json").write_bytes(msgspec.json.format(msgspec.json.encode(results)))

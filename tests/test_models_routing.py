"""Routing across model profiles, through the HTTP API with scripted backends per profile.

Which profile answers and why (meta event and lineage), fallback before the first token and never after
it, sensitivity, budgets (429 when no local fallback is left), the circuit breaker, the result cache, and
the settings' errors that name the profile. Real remote servers and faults: test_models_remote.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import app_client, parse_sse
from litestar import Litestar
from litestar.testing import TestClient

from deskpilot.indexes import DocumentIndex, HashEmbedder
from deskpilot.inference import BackendError, ScriptedBackend
from deskpilot.server.app import create_app
from deskpilot.server.models.registry import ModelRegistry
from deskpilot.server.models.router import Breaker
from deskpilot.server.settings import SettingsError, load_settings

pytestmark = pytest.mark.integration

WORDS = ["Ana", " wants", " the", " numbers", " by", " Friday", "."]
REMOTE = {"backend": "openai", "base_url": "https://models.example.test/v1", "model": "big", "pii": "allow"}


def make_app(home: Path, backends: dict[str, Any], **settings: Any) -> Litestar:
    index = DocumentIndex(home / "index", embedder=HashEmbedder())
    return create_app(load_settings(home=home, https=False, **settings), backends=backends, index=index)


def summarize(c: TestClient[Litestar], **extra: Any) -> list[tuple[str, Any]]:
    r = c.post("/v1/summarize", json={"text": "Ana asked for the numbers by Friday.", **extra})
    assert r.status_code == 200, r.text
    return parse_sse(r.text)


def text_of(events: list[tuple[str, Any]]) -> str:
    return "".join(d["text"] for e, d in events if e == "token")


def metas(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [d for e, d in events if e == "meta"]


@pytest.fixture
def remote_down(app_home: Path) -> Iterator[tuple[TestClient[Litestar], ScriptedBackend, ScriptedBackend]]:
    """A remote primary that fails before its first token, and the embedded model as its fallback."""
    big = ScriptedBackend(["never"], fail_with=BackendError("connection refused"), model_id="big")
    local = ScriptedBackend(WORDS)
    app = make_app(
        app_home,
        {"big": big, "embedded": local},
        models={"big": REMOTE},
        routes={"summarize": {"use": ["big", "embedded"]}},
    )
    with app_client(app) as c:
        yield c, big, local


def test_with_nothing_configured_every_task_runs_on_the_embedded_profile(app_home: Path) -> None:
    with app_client(make_app(app_home, {"embedded": ScriptedBackend(WORDS)})) as c:
        events = summarize(c)
        (meta,) = metas(events)
        assert meta["profile"] == "embedded" and meta["fallback"] is None
        run = c.get(f"/v1/runs/{meta['runId']}").json()
        assert run["profile"] == "embedded" and run["routing"] == {"route": "default"}
        models = c.get("/v1/models").json()
        assert [p["name"] for p in models["profiles"]] == ["embedded"]
        assert models["routes"] == [{"task": "default", "use": ["embedded"], "rules": []}]


def test_a_remote_failure_before_the_first_token_goes_on_with_the_next_profile(remote_down: Any) -> None:
    c, _, local = remote_down
    events = summarize(c)
    assert text_of(events) == "Ana wants the numbers by Friday."  # once: no token lost or repeated
    first, second = metas(events)
    assert first["profile"] == "big" and second["profile"] == "embedded"
    assert "big" in second["fallback"] and "connection refused" in second["fallback"]
    failed = c.get(f"/v1/runs/{first['runId']}").json()
    answered = c.get(f"/v1/runs/{second['runId']}").json()
    assert failed["status"] == "error" and "went on to the next profile" in failed["error"]
    assert answered["status"] == "ok" and answered["profile"] == "embedded"
    assert answered["routing"]["fallback_from"] == [
        {"profile": "big", "run_id": first["runId"], "error": "model profile 'big': connection refused"}
    ]
    assert len(local.requests) == 1


def test_a_failure_after_the_first_token_is_an_error_not_a_second_answer(app_home: Path) -> None:
    big = ScriptedBackend(WORDS, fail_with=BackendError("stream broke"), fail_after=3, model_id="big")
    local = ScriptedBackend(["local", " answer"])
    app = make_app(
        app_home,
        {"big": big, "embedded": local},
        models={"big": REMOTE},
        routes={"summarize": {"use": ["big", "embedded"]}},
    )
    with app_client(app) as c:
        events = summarize(c)
    assert text_of(events) == "Ana wants the"
    assert events[-1] == ("error", {"code": "backend_error", "message": "model profile 'big': stream broke"})
    assert local.requests == []


def test_a_profile_failing_three_times_in_a_row_is_skipped_until_its_circuit_cools(remote_down: Any) -> None:
    c, big, _ = remote_down
    for _ in range(3):
        summarize(c)
    assert len(big.requests) == 3
    events = summarize(c)
    assert len(big.requests) == 3  # not tried: the circuit is open
    (meta,) = metas(events)
    run = c.get(f"/v1/runs/{meta['runId']}").json()
    assert run["routing"]["skipped"][0]["profile"] == "big"
    assert "circuit open after 3 failures" in run["routing"]["skipped"][0]["reason"]
    profiles = {p["name"]: p for p in c.get("/v1/models").json()["profiles"]}
    assert profiles["big"]["breaker"].startswith("circuit open")


def test_breaker_half_opens_for_one_trial_and_closes_on_success() -> None:
    now = [0.0]
    breaker = Breaker(failures=2, cool_s=10, clock=lambda: now[0])
    breaker.failed()
    assert breaker.blocked() is None
    breaker.failed()
    assert breaker.blocked() is not None
    now[0] = 11
    assert breaker.blocked() is None  # the one trial
    assert breaker.blocked() is not None  # others wait for it
    breaker.failed()  # the trial failed: open again
    now[0] = 15
    assert breaker.blocked() is not None
    now[0] = 22
    assert breaker.blocked() is None
    breaker.succeeded()
    assert breaker.blocked() is None and breaker.blocked() is None


def test_sensitive_input_never_goes_to_a_remote_profile(app_home: Path) -> None:
    big, local = ScriptedBackend(["remote"], model_id="big"), ScriptedBackend(WORDS)
    app = make_app(
        app_home,
        {"big": big, "embedded": local},
        models={"big": REMOTE},
        routes={"summarize": {"use": ["big", "embedded"]}},
    )
    with app_client(app) as c:
        events = summarize(c, sensitive=True)
        (meta,) = metas(events)
        assert meta["profile"] == "embedded" and big.requests == []
        run = c.get(f"/v1/runs/{meta['runId']}").json()
        assert run["routing"]["skipped"] == [
            {"profile": "big", "reason": "sensitive input stays on this computer"}
        ]
        # Sensitive, with only the remote profile: refused before the stream starts.
        r = c.post("/v1/summarize", json={"text": "x y", "sensitive": True, "profile": "big"})
        assert r.status_code == 503 and r.json()["code"] == "no_model"


def test_rules_by_input_size_pick_another_list(app_home: Path) -> None:
    big, local = ScriptedBackend(["remote"], model_id="big"), ScriptedBackend(WORDS)
    app = make_app(
        app_home,
        {"big": big, "embedded": local},
        models={"big": REMOTE},
        routes={"summarize": {"use": ["embedded"], "rules": [{"input_over": 200, "use": ["big"]}]}},
    )
    with app_client(app) as c:
        assert metas(summarize(c))[0]["profile"] == "embedded"
        r = c.post("/v1/summarize", json={"text": "word " * 400, "cache": False})
        assert metas(parse_sse(r.text))[0]["profile"] == "big"


def test_budgets_move_a_task_to_the_local_profile_then_refuse_with_429(app_home: Path) -> None:
    big, local = ScriptedBackend(WORDS, model_id="big"), ScriptedBackend(["local"])
    priced = {**REMOTE, "price_in_per_1k": 1.0, "price_out_per_1k": 2.0, "daily_budget": 0.001}
    app = make_app(
        app_home,
        {"big": big, "embedded": local},
        models={"big": priced},
        routes={"summarize": {"use": ["big", "embedded"]}, "rewrite": {"use": ["big"]}},
    )
    with app_client(app) as c:
        first = metas(summarize(c))[0]
        run = c.get(f"/v1/runs/{first['runId']}").json()
        assert run["cost"] == pytest.approx(run["tokensIn"] / 1000 * 1.0 + run["tokensOut"] / 1000 * 2.0)
        assert run["cost"] > 0.001
        second = metas(summarize(c, cache=False))[0]
        assert second["profile"] == "embedded"
        skipped = c.get(f"/v1/runs/{second['runId']}").json()["routing"]["skipped"][0]
        assert (
            skipped["profile"] == "big" and "day's cost budget of profile 'big' is spent" in skipped["reason"]
        )
        r = c.post("/v1/rewrite", json={"text": "Make this shorter please."})
        assert r.status_code == 429 and r.json()["code"] == "budget_exhausted"
        assert "budget" in r.json()["message"] and r.headers["Retry-After"]
        usage = c.get("/v1/usage").json()
        lines = {(x["profile"], x["task"]): x for x in usage["today"]}
        assert lines[("big", "summarize")]["runs"] == 1
        assert lines[("big", "summarize")]["cost"] == pytest.approx(run["cost"])
        assert lines[("embedded", "summarize")]["cost"] == 0
        (limit,) = usage["limits"]
        assert limit["name"] == "big" and limit["spent"] == pytest.approx(run["cost"])


def test_the_result_cache_answers_a_repeat_from_lineage_and_a_request_can_opt_out(app_home: Path) -> None:
    local = ScriptedBackend(WORDS)
    with app_client(make_app(app_home, {"embedded": local})) as c:
        first = summarize(c)
        again = summarize(c)
        assert len(local.requests) == 1
        assert text_of(again) == text_of(first)
        (meta,) = metas(again)
        original = metas(first)[0]["runId"]
        assert meta["cachedFrom"] == original
        hit = c.get(f"/v1/runs/{meta['runId']}").json()
        assert hit["cacheOf"] == original and hit["status"] == "ok" and hit["tokensOut"] == 0
        assert metas(summarize(c, cache=False))[0]["cachedFrom"] is None
        assert len(local.requests) == 2
        other = c.post("/v1/summarize", json={"text": "Something else entirely."})
        assert metas(parse_sse(other.text))[0]["cachedFrom"] is None


def test_a_new_model_misses_the_cache(app_home: Path) -> None:
    first = ScriptedBackend(WORDS)
    with app_client(make_app(app_home, {"embedded": first})) as c:
        summarize(c)
    newer = ScriptedBackend(WORDS, weights_digest="sha256:" + "1" * 64)
    with app_client(make_app(app_home, {"embedded": newer})) as c:
        assert metas(summarize(c))[0]["cachedFrom"] is None
        assert metas(summarize(c))[0]["cachedFrom"] is not None
    assert len(newer.requests) == 1


def test_an_unknown_profile_is_a_400_naming_it(app_home: Path) -> None:
    with app_client(make_app(app_home, {"embedded": ScriptedBackend(WORDS)})) as c:
        r = c.post("/v1/summarize", json={"text": "hello there", "profile": "gpt-9"})
        assert r.status_code == 400
        body = r.json()
        assert body["code"] == "unknown_profile" and "'gpt-9'" in body["message"]
        assert "embedded" in body["message"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"routes": {"summarize": {"use": ["nope"]}}}, "routes.summarize: unknown model profile 'nope'"),
        ({"models": {"x": {"backend": "openai"}}}, "models.x: an openai profile needs base_url"),
        (
            {"models": {"x": {"backend": "openai", "base_url": "http://gpu.example.com/v1"}}},
            "models.x: base_url 'http://gpu.example.com/v1' is plain http to another machine",
        ),
        ({"models": {"x": {"backend": "exllamav2"}}}, "models.x: an exllamav2 profile needs path"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_profile(
    app_home: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ModelRegistry(load_settings(home=app_home, **settings))


def test_model_server_is_one_setting_with_the_embedded_model_as_fallback(app_home: Path) -> None:
    registry = ModelRegistry(load_settings(home=app_home, model_server="https://gpu.corp.example/v1"))
    assert registry.routes["default"].use == ("server", "embedded")
    assert not registry.is_local("server") and registry.is_local("embedded")
    loopback = ModelRegistry(load_settings(home=app_home, model_server="http://127.0.0.1:8000/v1"))
    assert loopback.is_local("server")


def test_a_workflow_step_has_its_own_route_when_one_is_configured(app_home: Path) -> None:
    from deskpilot.server.runs import RunExecutor
    from deskpilot.server.services import Services

    settings = load_settings(
        home=app_home,
        models={"big": REMOTE},
        routes={"classify": {"use": ["embedded"]}, "workflow.classify": {"use": ["big", "embedded"]}},
    )
    services = Services(settings, backend=ScriptedBackend(WORDS))
    executor: RunExecutor = services.executor
    assert executor.router.route_key("classify", "workflow") == "workflow.classify"
    assert executor.router.route_key("classify", "outlook") == "classify"
    assert executor.router.route_key("summarize", "workflow") == "default"
    services.close()


def test_the_cache_key_changes_with_the_model_the_template_the_input_and_the_parameters() -> None:
    from deskpilot.server.models.cache import cache_key

    def key(
        profile: str = "embedded",
        weights: str = "sha256:aa",
        template: str = "sha256:t1",
        given: str = "sha256:i1",
        parameters: dict[str, Any] | None = None,
    ) -> str:
        return cache_key(
            profile=profile,
            weights_digest=weights,
            template_hash=template,
            input_digest=given,
            parameters=parameters or {"max_tokens": 256, "temperature": 0.2},
        )

    assert key(parameters={"temperature": 0.2, "max_tokens": 256}) == key()  # order does not matter
    changed = [
        key(profile="gpu"),
        key(weights="sha256:bb"),
        key(template="sha256:t2"),
        key(given="sha256:i2"),
        key(parameters={"max_tokens": 128, "temperature": 0.2}),
    ]
    assert key() not in changed and len(set(changed)) == len(changed)


def test_done_comes_once_the_run_is_closed_and_its_answer_cached(app_home: Path) -> None:
    """Over a real connection: a client that stops reading at `done` finds the run closed and its answer
    in the cache (before, both happened after `done` was sent)."""
    from conftest import free_port
    from test_disconnects import LiveServer

    settings = load_settings(home=app_home, https=False, port=free_port(), worker=False)
    local = ScriptedBackend(WORDS)
    with LiveServer(settings, local) as live, httpx.Client(base_url=live.url, headers=live.headers) as c:
        body = {"text": "Ana asked for the numbers by Friday."}
        done = None
        for _ in range(3):
            with c.stream("POST", "/v1/summarize", json={**body, "cache": False}) as r:
                lines = r.iter_lines()
                for line in lines:
                    if line == "event: done":
                        done = json.loads(next(lines).removeprefix("data:"))
                        break
                # Not read further: what follows `done` must not be needed.
                assert done is not None
                assert c.get(f"/v1/runs/{done['runId']}").json()["status"] == "ok"
        assert done is not None
        with c.stream("POST", "/v1/summarize", json=body) as r:
            lines = r.iter_lines()
            for line in lines:
                if line == "event: done":
                    done = json.loads(next(lines).removeprefix("data:"))
                    break
            again = parse_sse(c.post("/v1/summarize", json=body).text)
            assert metas(again)[0]["cachedFrom"] == done["runId"]
        assert len(local.requests) == 4

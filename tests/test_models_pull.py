"""`deskpilot models pull` (server/models/hub.py) against the Hub stand-in (tests/hub_standin.py) on
127.0.0.1, through huggingface_hub's own HTTP client: a pinned revision, the sha256 checked (a corrupted
download is refused and deleted), an interrupted download resumed with a Range request, the Hub's refusals
in words, and no address but the stand-in's ever connected to."""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from conftest import free_port
from hub_standin import Fault, HubStandIn

from deskpilot.server.models.hub import DEFAULT_ENDPOINT, Pulled, PullError, pull

pytestmark = pytest.mark.integration

MiB = 1 << 20
REPO = "deskpilot-tests/tiny-model-GGUF"
FILE = "tiny-model-Q4_1.gguf"
ENV_TOKEN = "hf_from_the_environment_never_sent"


def random_bytes(size: int, seed: int) -> bytes:
    """A stand-in for a GGUF: what pull does never depends on the bytes."""
    return random.Random(seed).randbytes(size)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class _Connections:
    """The addresses sockets of this process connect to while `watch` is open: an audit hook sees every
    connect, whatever library makes it. The hook is added once, by the first test that watches."""

    hooked = False
    seen: list[Any] | None = None

    @classmethod
    def audit(cls, event: str, args: tuple[Any, ...]) -> None:
        if cls.seen is not None and event == "socket.connect":
            cls.seen.append(args[1])


@contextmanager
def connections() -> Iterator[list[Any]]:
    if not _Connections.hooked:
        sys.addaudithook(_Connections.audit)
        _Connections.hooked = True
    seen: list[Any] = []
    _Connections.seen = seen
    try:
        yield seen
    finally:
        _Connections.seen = None


@pytest.fixture(name="hub")
def hub_fixture() -> Iterator[HubStandIn]:
    with HubStandIn() as standin:
        yield standin


@pytest.fixture(autouse=True)
def _hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No endpoint from the environment unless a test sets one; a token in it that pull must never send."""
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_TOKEN", ENV_TOKEN)


def pull_from(hub: HubStandIn, dest: Path, content: bytes | None, **kwargs: Any) -> Pulled:
    """`pull` of REPO/FILE at main from the stand-in, with `content`'s sha256 expected (None: the Hub's)."""
    options: dict[str, Any] = {"revision": "main", "endpoint": hub.url, "progress": False} | kwargs
    return pull(REPO, FILE, sha256=None if content is None else sha(content), dest=dest, **options)


def test_pull_fetches_the_file_and_contacts_nothing_but_the_endpoint(hub: HubStandIn, tmp_path: Path) -> None:
    content = random_bytes(3 * MiB, seed=1)
    commit = hub.publish(REPO, {FILE: content})
    dest = tmp_path / "models"
    with connections() as seen:
        pulled = pull_from(hub, dest, content)
    assert pulled == Pulled(path=dest / FILE, sha256=sha(content), size=len(content), revision=commit)
    assert pulled.path.read_bytes() == content
    assert list(dest.iterdir()) == [dest / FILE]  # no partial file left behind
    # The Hub's HEAD names the commit, the sha256 and the CDN; the bytes come from the CDN.
    assert [(r.server, r.method, r.path, r.range) for r in hub.requests] == [
        ("hub", "HEAD", f"/{REPO}/resolve/main/{FILE}", None),
        ("cdn", "GET", f"/blobs/{sha(content)}", None),
    ]
    assert all(r.authorization is None for r in hub.requests)  # HF_TOKEN is not looked up
    assert seen
    assert {address for address in seen} <= {("127.0.0.1", port) for port in hub.ports}


def test_the_pinned_revision_wins(hub: HubStandIn, tmp_path: Path) -> None:
    old, new = random_bytes(MiB, seed=2), random_bytes(MiB, seed=3)
    first = hub.publish(REPO, {FILE: old})
    tagged = hub.publish(REPO, {FILE: old}, ref="v1.0")
    latest = hub.publish(REPO, {FILE: new})  # main moves on
    dest = tmp_path / "models"

    pulled = pull_from(hub, dest, None, revision=first)
    assert (pulled.revision, pulled.sha256, pulled.path.read_bytes()) == (first, sha(old), old)
    assert pull_from(hub, dest, old, revision="v1.0").revision == tagged
    pulled = pull_from(hub, dest, None)
    assert (pulled.revision, pulled.path.read_bytes()) == (latest, new)

    # Expecting main's bytes at the old commit is a mistake found before anything is downloaded.
    hub.requests.clear()
    with pytest.raises(PullError, match=f"has sha256 {sha(old)}, not the expected {sha(new)}"):
        pull_from(hub, dest, new, revision=first)
    assert [r.server for r in hub.requests] == ["hub"]
    assert pulled.path.read_bytes() == new  # the file in place is untouched


@pytest.mark.parametrize("expected", ["the profile's", "the Hub's"])
def test_a_corrupted_download_is_refused_and_deleted(hub: HubStandIn, tmp_path: Path, expected: str) -> None:
    content = random_bytes(2 * MiB, seed=4)
    hub.publish(REPO, {FILE: content})
    flipped = bytearray(content)
    flipped[len(flipped) // 2] ^= 0xFF  # what the stand-in's corrupt fault serves
    dest = tmp_path / "models"
    hub.faults.append(Fault(corrupt=True))
    with pytest.raises(PullError) as refused:
        pull_from(hub, dest, content if expected == "the profile's" else None)
    message = str(refused.value)
    assert f"{REPO}/{FILE} at revision main" in message
    assert f"sha256 is {sha(bytes(flipped))}, expected {sha(content)}" in message
    assert list(dest.iterdir()) == []  # neither the file nor a partial to resume from

    hub.requests.clear()
    assert pull_from(hub, dest, None).path.read_bytes() == content
    assert [r.range for r in hub.requests if r.method == "GET"] == [None]  # downloaded from the start


def test_an_interrupted_pull_resumes_where_it_stopped(hub: HubStandIn, tmp_path: Path) -> None:
    content = random_bytes(24 * MiB, seed=5)
    hub.publish(REPO, {FILE: content})
    dest = tmp_path / "models"
    # The connection breaks 20 MiB in; huggingface_hub's own retry is refused, so this pull gives up.
    hub.faults += [Fault(drop_after=20 * MiB), Fault(status=503)]
    with pytest.raises(PullError, match=f"{REPO}/{FILE} at revision main: answered HTTP 503"):
        pull_from(hub, dest, content)
    assert not (dest / FILE).exists()
    (partial,) = dest.glob(f"{FILE}.*.incomplete")
    kept = partial.stat().st_size
    assert 0 < kept < len(content)
    assert partial.read_bytes() == content[:kept]
    assert [r.range for r in hub.requests if r.method == "GET"] == [None, f"bytes={kept}-"]

    hub.requests.clear()
    pulled = pull_from(hub, dest, content)
    assert pulled.path.read_bytes() == content
    assert pulled.sha256 == sha(content)
    assert [r.range for r in hub.requests if r.method == "GET"] == [f"bytes={kept}-"]
    assert list(dest.iterdir()) == [dest / FILE]


def test_partials_that_cannot_be_resumed_are_deleted(hub: HubStandIn, tmp_path: Path) -> None:
    content = random_bytes(2 * MiB, seed=11)
    hub.publish(REPO, {FILE: content})
    dest = tmp_path / "models"
    dest.mkdir()
    # One of an older version of the file; one of this version, but longer than the file.
    (dest / f"{FILE}.{sha(b'an older version')}.incomplete").write_bytes(random_bytes(MiB, seed=12))
    (dest / f"{FILE}.{sha(content)}.incomplete").write_bytes(content + b"more")
    assert pull_from(hub, dest, content).path.read_bytes() == content
    assert [r.range for r in hub.requests if r.method == "GET"] == [None]
    assert list(dest.iterdir()) == [dest / FILE]


def test_a_dropped_connection_is_resumed_within_the_same_pull(hub: HubStandIn, tmp_path: Path) -> None:
    content = random_bytes(24 * MiB, seed=6)
    hub.publish(REPO, {FILE: content})
    hub.faults.append(Fault(drop_after=20 * MiB))
    pulled = pull_from(hub, tmp_path / "models", content)
    assert pulled.path.read_bytes() == content
    first, second = (r.range for r in hub.requests if r.method == "GET")
    assert first is None
    assert second is not None
    assert 0 < int(second.removeprefix("bytes=").removesuffix("-")) < len(content)


@pytest.mark.parametrize(
    ("repo", "revision", "filename", "reason"),
    [
        ("nobody/nothing", "main", FILE, "no such repository"),
        (REPO, "v9.9", FILE, "no such revision"),
        (REPO, "main", "missing-Q8_0.gguf", "no such file"),
        (REPO, "main", "../outside.gguf", "not a file name inside a repository"),
        ("one/too/many", "main", FILE, "Repo id must be in the form"),
    ],
)
def test_what_the_hub_lacks_is_a_clear_error(
    hub: HubStandIn, tmp_path: Path, repo: str, revision: str, filename: str, reason: str
) -> None:
    hub.publish(REPO, {FILE: random_bytes(1024, seed=7)})
    dest = tmp_path / "models"
    with pytest.raises(PullError, match=reason) as refused:
        pull(repo, filename, revision=revision, sha256=None, dest=dest, endpoint=hub.url, progress=False)
    assert str(refused.value).startswith(f"{repo}/{filename} at revision {revision}: ")
    assert not dest.exists()
    assert all(r.method == "HEAD" for r in hub.requests)


def test_a_pinned_commit_must_be_the_commit_answered(hub: HubStandIn, tmp_path: Path) -> None:
    content = random_bytes(MiB, seed=13)
    commit = hub.publish(REPO, {FILE: content})
    hub.answer_commit = "0" * 40  # a broken mirror
    with pytest.raises(PullError, match=f"at revision {commit}: the Hub answered with commit {'0' * 40}"):
        pull_from(hub, tmp_path / "models", content, revision=commit)
    assert [r.method for r in hub.requests] == ["HEAD"]
    assert pull_from(hub, tmp_path / "models", content).revision == "0" * 40  # a branch names any commit


def test_hf_endpoint_is_read_when_pull_is_called(
    hub: HubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = random_bytes(MiB, seed=8)
    commit = hub.publish(REPO, {FILE: content})
    # huggingface_hub read HF_ENDPOINT once, at import; pull reads it now.
    assert huggingface_hub.constants.ENDPOINT == DEFAULT_ENDPOINT
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    with connections() as seen:
        pulled = pull(REPO, FILE, revision="main", sha256=sha(content), dest=tmp_path / "a")  # progress on
    assert pulled.revision == commit
    assert {address for address in seen} <= {("127.0.0.1", port) for port in hub.ports}
    # The endpoint argument comes before the environment's.
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert pull_from(hub, tmp_path / "b", content).revision == commit


def test_an_unreachable_endpoint_is_an_error_that_says_so(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    with connections() as seen, pytest.raises(PullError, match="ConnectError") as refused:
        pull(REPO, FILE, revision="main", sha256=None, dest=tmp_path / "models", endpoint=endpoint)
    assert endpoint in str(refused.value)
    assert {address for address in seen} == {("127.0.0.1", int(endpoint.rsplit(":", 1)[1]))}


def test_a_token_goes_to_the_hub_and_never_to_the_cdn(hub: HubStandIn, tmp_path: Path) -> None:
    content = random_bytes(MiB, seed=9)
    hub.publish(REPO, {FILE: content})
    pull_from(hub, tmp_path / "models", content, token="hf_given")
    assert [(r.server, r.authorization) for r in hub.requests] == [("hub", "Bearer hf_given"), ("cdn", None)]


def test_a_file_outside_lfs_needs_the_expected_sha256(hub: HubStandIn, tmp_path: Path) -> None:
    content = b'{"note": "a small file git stores itself, so the Hub gives no sha256 for it"}\n'
    hub.publish(REPO, {FILE: content}, lfs=False)
    dest = tmp_path / "models"
    with pytest.raises(PullError, match="pass the sha256"):
        pull_from(hub, dest, None)
    with pytest.raises(PullError, match=f"sha256 is {sha(content)}, expected {sha(b'other')}"):
        pull_from(hub, dest, b"other")
    pulled = pull_from(hub, dest, content, token="hf_given")
    assert pulled.path.read_bytes() == content
    # Served by the Hub itself, so the token goes with the GET.
    assert [(r.server, r.method, r.authorization) for r in hub.requests][-2:] == [
        ("hub", "HEAD", "Bearer hf_given"),
        ("hub", "GET", "Bearer hf_given"),
    ]


def test_a_verified_file_in_place_is_not_downloaded_again(hub: HubStandIn, tmp_path: Path) -> None:
    content = random_bytes(2 * MiB, seed=10)
    hub.publish(REPO, {FILE: content})
    dest = tmp_path / "models"
    pull_from(hub, dest, content)
    hub.requests.clear()
    assert pull_from(hub, dest, None).path.read_bytes() == content
    assert [r.method for r in hub.requests] == ["HEAD"]  # the revision is still resolved

    (dest / FILE).write_bytes(content[:MiB])  # damaged in place: replaced by a whole download
    hub.requests.clear()
    assert pull_from(hub, dest, content).path.read_bytes() == content
    assert [r.range for r in hub.requests if r.method == "GET"] == [None]


@pytest.mark.parametrize("progress", [True, False])
def test_the_progress_bar_names_the_file_unless_switched_off(
    hub: HubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    progress: bool,
) -> None:
    content = random_bytes(2 * MiB, seed=14)
    hub.publish(REPO, {FILE: content})
    monkeypatch.setenv("TQDM_POSITION", "-1")  # huggingface_hub draws its bar even off a terminal
    pull_from(hub, tmp_path / "models", content, progress=progress)
    drawn = capsys.readouterr().err
    if progress:
        assert FILE in drawn
        assert "2.10M/2.10M" in drawn
    else:
        assert drawn == ""

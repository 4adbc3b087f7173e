"""A Hugging Face Hub stand-in on 127.0.0.1, for `deskpilot models pull` (server/models/hub.py).

    with HubStandIn() as hub:
        commit = hub.publish("org/model", {"model.gguf": content})
        pull("org/model", "model.gguf", revision="main", sha256=None, dest=..., endpoint=hub.url)

It answers what huggingface_hub's download path asks (`get_hf_file_metadata`, `http_get` in 2.4) as
huggingface.co does:

- `HEAD|GET /{repo}/resolve/{revision}/{filename}`: for an LFS file, 302 to the CDN with `X-Repo-Commit`,
  `X-Linked-Etag` (the content's sha256), `X-Linked-Size` and `ETag` (the pointer's git id); for a small
  (non-LFS) file, 200 with the bytes, `ETag` (the blob's git id) and `X-Repo-Commit`. A repository, revision
  or file it does not have: 404 with `X-Error-Code` RepoNotFound, RevisionNotFound or EntryNotFound.
- `HEAD|GET {cdn}/blobs/{sha256}`: the bytes, with Range requests (206 and Content-Range).

The CDN listens on a port of its own, as the real one is another host: huggingface_hub stops at the 302,
reads the metadata from it and leaves the Authorization header behind. Every request is recorded
(`requests`); `faults` are used up by the next GETs that serve bytes: `Fault(corrupt=True)` serves bytes
that differ from the advertised sha256, `Fault(drop_after=n)` closes the connection after n bytes of the
body, `Fault(status=503)` answers with that status.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from deskpilot.server.connectors.standin import QuietHTTPServer

__all__ = ["Fault", "HubFile", "HubStandIn", "Request"]

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass(frozen=True)
class Request:
    """One request as it arrived: which server ("hub" or "cdn"), method, path and the headers tests check."""

    server: str
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass(frozen=True)
class Fault:
    corrupt: bool = False  # the bytes served differ (one byte flipped) from the advertised sha256
    drop_after: int | None = None  # bytes of the body sent before the connection is closed
    status: int | None = None  # answered instead of the bytes


@dataclass(frozen=True)
class HubFile:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def git_id(self) -> str:
        """The git blob id of what git stores: the file itself, or for LFS its pointer."""
        stored = self.content
        if self.lfs:
            pointer = (
                f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(stored)}\n"
            )
            stored = pointer.encode()
        return hashlib.sha1(b"blob %d\0" % len(stored) + stored).hexdigest()


@dataclass
class _Repo:
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)  # commit -> filename -> file


class HubStandIn:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.answer_commit: str | None = None  # X-Repo-Commit a broken mirror answers, whatever was asked
        self._repos: dict[str, _Repo] = {}
        self._blobs: dict[str, bytes] = {}  # sha256 -> content, what the CDN serves
        self._lock = threading.Lock()
        self._hub = _Server(self, "hub")
        self._cdn = _Server(self, "cdn")
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """The endpoint (what HF_ENDPOINT would be)."""
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    @property
    def ports(self) -> set[int]:
        return {self._hub.server_address[1], self._cdn.server_address[1]}

    def publish(self, repo_id: str, files: dict[str, bytes], *, ref: str = "main", lfs: bool = True) -> str:
        """A new commit of `repo_id` holding these files, `ref` (a branch or tag) moved to it; its hash."""
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo())
            stored = {name: HubFile(content, lfs) for name, content in files.items()}
            seed = f"{repo_id}\n{ref}\n{len(repo.commits)}\n" + "\n".join(
                f"{name} {file.sha256}" for name, file in sorted(stored.items())
            )
            commit = hashlib.sha1(seed.encode()).hexdigest()
            repo.commits[commit] = stored
            repo.refs[ref] = commit
            self._blobs.update({file.sha256: file.content for file in stored.values() if lfs})
            return commit

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def next_fault(self) -> Fault:
        with self._lock:
            return self.faults.pop(0) if self.faults else Fault()

    def resolve(
        self, repo_id: str, revision: str, filename: str
    ) -> tuple[int, dict[str, str], HubFile | None]:
        """What `/resolve/` answers: the status, the headers, and the file (None for an error)."""
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                return 404, {"X-Error-Code": "RepoNotFound"}, None
            commit = repo.refs.get(revision, revision if revision in repo.commits else None)
            if commit is None:
                return 404, {"X-Error-Code": "RevisionNotFound"}, None
            file = repo.commits[commit].get(filename)
        if file is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, None
        headers = {"X-Repo-Commit": self.answer_commit or commit, "ETag": f'"{file.git_id}"'}
        if not file.lfs:
            return 200, headers, file
        headers |= {
            "X-Linked-Etag": f'"{file.sha256}"',
            "X-Linked-Size": str(len(file.content)),
            "Location": f"{self.cdn_url}/blobs/{file.sha256}",
        }
        return 302, headers, file

    def blob(self, sha256: str) -> bytes | None:
        with self._lock:
            return self._blobs.get(sha256)

    def start(self) -> HubStandIn:
        for server in (self._hub, self._cdn):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="hub-standin", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> HubStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(QuietHTTPServer):
    """One of the stand-in's two servers: the Hub itself or its CDN."""

    def __init__(self, standin: HubStandIn, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.daemon_threads = True
        self.standin = standin
        self.role = role


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HubStandIn/1.0"
    timeout = 30  # an idle keep-alive connection is let go
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        standin = self.server.standin
        path = urlsplit(self.path).path
        standin.record(
            Request(
                self.server.role,
                self.command,
                path,
                self.headers.get("Range"),
                self.headers.get("Authorization"),
            )
        )
        if self.server.role == "cdn":
            content = standin.blob(path.removeprefix("/blobs/")) if path.startswith("/blobs/") else None
            if content is None:
                self._send(404, {}, b"")
            else:
                self._serve(content, body=body)
            return
        parts = path.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            self._send(404, {}, b"")
            return
        status, headers, file = standin.resolve(
            f"{parts[0]}/{parts[1]}", unquote(parts[3]), unquote("/".join(parts[4:]))
        )
        if status == 200 and file is not None:
            self._serve(file.content, body=body, headers=headers)
        else:
            self._send(status, headers, b"")

    def _serve(self, content: bytes, *, body: bool, headers: dict[str, str] | None = None) -> None:
        """The bytes, or the part a Range asks for, with the next fault applied to a GET."""
        fault = self.server.standin.next_fault() if body else Fault()
        if fault.status is not None:
            self._send(fault.status, {}, b"")
            return
        if fault.corrupt:
            flipped = bytearray(content)
            flipped[len(flipped) // 2] ^= 0xFF
            content = bytes(flipped)
        status, headers = 200, {**(headers or {}), "Accept-Ranges": "bytes"}
        asked = _RANGE.fullmatch(self.headers.get("Range") or "")
        if asked is not None:
            start, end = int(asked[1]), int(asked[2]) if asked[2] else len(content) - 1
            if start >= len(content):
                self._send(416, {"Content-Range": f"bytes */{len(content)}"}, b"")
                return
            status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{len(content)}"
            content = content[start : end + 1]
        self._send(
            status, headers, content if body else b"", length=len(content), drop_after=fault.drop_after
        )

    def _send(
        self,
        status: int,
        headers: dict[str, str],
        content: bytes,
        *,
        length: int | None = None,
        drop_after: int | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content) if length is None else length))
        self.end_headers()
        if drop_after is not None:
            self.wfile.write(content[:drop_after])
            self.wfile.flush()
            self.close_connection = True  # the rest never comes: the client sees a body cut short
            return
        self.wfile.write(content)

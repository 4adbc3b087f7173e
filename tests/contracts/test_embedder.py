"""The embedder contract (`deskpilot.indexes.Embedder`), run over every embedder.

What the index relies on: the model's name and dimension are known before anything loads (an index
opens without the model); vectors come back as (n, dim) float32 rows of unit length, so inner product is
cosine similarity; the same text gets the same vector in a batch as alone (a query embedded by itself
must match the chunk it was indexed as); text that shares meaning or wording scores closer than text that
does not; `warm_up` loads once and may be repeated.

Embedders: `HashEmbedder`, the fake (`unit`), and all-MiniLM-L6-v2 through sentence-transformers
(`model`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from deskpilot.indexes import Embedder, HashEmbedder, SentenceTransformerEmbedder

EMBEDDERS = [
    pytest.param(HashEmbedder, id="hash", marks=pytest.mark.unit),
    pytest.param(SentenceTransformerEmbedder, id="minilm", marks=pytest.mark.model),
]


@pytest.fixture(scope="module", params=EMBEDDERS)
def make_embedder(request: pytest.FixtureRequest) -> Callable[[], Embedder]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def embedder(make_embedder: Callable[[], Embedder]) -> Embedder:
    """One warmed-up embedder per implementation, shared by the module (torch takes ~10 s to load)."""
    loaded = make_embedder()
    loaded.warm_up()
    return loaded


def test_name_and_dimension_are_known_before_loading(make_embedder: Callable[[], Embedder]) -> None:
    fresh = make_embedder()  # constructing loads nothing, so this is cheap for the real model too
    assert isinstance(fresh, Embedder)
    assert fresh.model_id and fresh.dim > 0


def test_vectors_are_unit_rows_and_a_batch_matches_one_at_a_time(embedder: Embedder) -> None:
    texts = ["The cat sat on the mat.", "Quarterly revenue grew by ten percent.", "", "a " * 400]
    batch = embedder.embed(texts)
    assert batch.shape == (4, embedder.dim) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([embedder.embed([t]) for t in texts])  # the query path (one thread)
    assert np.allclose(batch, one_by_one, atol=1e-4)
    assert np.array_equal(embedder.embed(texts[:2]), embedder.embed(texts[:2]))  # deterministic
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_related_text_scores_closer_than_unrelated_text(embedder: Embedder) -> None:
    question = "Where is the annual company picnic held?"
    answer = "The annual company picnic will take place at Riverside Park on June 14th."
    other = "Server backups are kept for ninety days in an encrypted storage bucket in Frankfurt."
    q, a, o = embedder.embed([question, answer, other])
    assert float(q @ a) > float(q @ o) + 0.1


def test_warm_up_loads_once_and_may_be_repeated(embedder: Embedder) -> None:
    before = embedder.embed(["The lighthouse keeper"])
    embedder.warm_up()
    assert embedder.is_ready
    assert np.array_equal(embedder.embed(["The lighthouse keeper"]), before)

"""The summary check's embedder memory: a text embedded once is not embedded again while it is recent,
and what comes back is what the embedder gave."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from deskpilot.indexes import HashEmbedder
from deskpilot.inference.faithful import RecentEmbeddings

pytestmark = pytest.mark.unit


class Counting(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen += list(texts)
        return super().embed(texts)


def test_recent_texts_are_not_embedded_again_and_the_vectors_are_the_embedders() -> None:
    inner = Counting()
    recent = RecentEmbeddings(inner, size=3)
    first = recent.embed(["a cat", "a dog", "a cat"])
    assert inner.seen == ["a cat", "a dog"]
    again = recent.embed(["a dog", "a cat"])
    assert inner.seen == ["a cat", "a dog"]  # nothing new embedded
    np.testing.assert_array_equal(again, HashEmbedder().embed(["a dog", "a cat"]))
    np.testing.assert_array_equal(first[0], first[2])
    recent.embed(["a bird", "a fish"])  # pushes out the least recent ("a dog")
    recent.embed(["a dog"])
    assert inner.seen[-1] == "a dog" and inner.seen.count("a cat") == 1
    assert recent.model_id == inner.model_id and recent.is_ready

"""The document index with real files, real FAISS and real SQLite, and the fast hash embedder.

One behavioural suite runs on both vector backends (exact and HNSW); the real model runs the
retrieval-quality, crash and HNSW checks again in test_index_model.py.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from corpus import (
    FACTS,
    make_corpus,
    write_bad_files,
    write_docx,
    write_eml,
    write_html,
    write_msg,
    write_pdf,
)

from deskpilot.indexes import (
    DocumentIndex,
    DocumentInput,
    HashEmbedder,
    IndexSettings,
    PageText,
    Scope,
    SkipReason,
)
from deskpilot.indexes._chunking import chunk_segments, join_segments
from deskpilot.indexes._loaders import SkipFile, load_bytes
from deskpilot.indexes._paths import ExcludeRules, walk
from deskpilot.server.documents.cli import index_command

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, dict[str, str]]:
    root = tmp_path_factory.mktemp("corpus")
    docs = make_corpus(root / "docs", per_type=6)
    bad = write_bad_files(root / "docs" / "bad")
    (root / "docs" / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (root / "docs" / ".hidden").mkdir()
    (root / "docs" / ".hidden" / "secret.txt").write_text("hidden text")
    (root / "docs" / "~$lock.docx").write_bytes(b"lock")
    return root / "docs", docs, bad


def copy_corpus(corpus: tuple[Path, list, dict[str, str]], dest: Path) -> Path:
    shutil.copytree(corpus[0], dest)
    return dest


KINDS = {
    "flat": IndexSettings(batch_chunks=16, hnsw_threshold=100_000),
    "hnsw": IndexSettings(batch_chunks=16, hnsw_threshold=8, compact_fraction=0.3, exact_scope_limit=4),
}


@pytest.fixture(params=sorted(KINDS))
def make_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    opened: list[DocumentIndex] = []

    def make(
        folder: Path | None = None, embedder: HashEmbedder | None = None, **overrides: object
    ) -> DocumentIndex:
        settings = msgspec.structs.replace(KINDS[request.param], **overrides)
        index = DocumentIndex(
            folder or tmp_path / "index", settings=settings, embedder=embedder or HashEmbedder()
        )
        opened.append(index)
        return index

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for index in opened:
        index.close()


# -- importing and opening are cheap -----------------------------------------------------------------


def test_importing_and_opening_does_not_load_torch_or_faiss(tmp_path: Path) -> None:
    code = (
        "import sys; from deskpilot.indexes import DocumentIndex;"
        f"ix = DocumentIndex({str(tmp_path / 'ix')!r}); s = ix.status(); ix.close();"
        "print([m for m in ('torch', 'sentence_transformers', 'faiss') if m in sys.modules], s.documents)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] 0"


# -- chunking ------------------------------------------------------------------------------------------


def test_chunks_keep_offsets_pages_and_size() -> None:
    words = " ".join(f"word{i}" for i in range(900))
    segments = [
        (1, "Short first page."),
        (2, words + ".\n\nNext paragraph here."),
        (3, "   "),
        (4, "x" * 2500),
    ]
    text, spans = join_segments(segments)
    chunks = chunk_segments(segments, size=400, overlap=60)
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert 0 < len(chunk.text) <= 400
        page_span = next(s for s in spans if s[2] == chunk.page)
        assert page_span[0] <= chunk.start and chunk.end <= page_span[1]  # never crosses a page
    assert chunks[0].page == 1 and 3 not in {c.page for c in chunks}
    page2 = [c for c in chunks if c.page == 2]
    assert len(page2) > 10
    assert all(a.start < b.start < a.end for a, b in itertools.pairwise(page2))  # overlapping
    assert all(c.text.startswith(("word", "Next")) for c in page2)  # chunks start at a word
    assert {c.end - c.start for c in chunks if c.page == 4} == {400, 100}  # no boundary: hard cuts
    with pytest.raises(ValueError):
        chunk_segments(segments, size=100, overlap=60)


# -- exclusion rules ---------------------------------------------------------------------------------


def test_exclude_rules(tmp_path: Path) -> None:
    root = tmp_path / ".config" / "docs"  # a hidden folder *above* the root does not exclude it
    rules = ExcludeRules(
        [".*", "~$*", "*.tmp", "Private", "*/Legal/*", "archive/2019/*"], always=[root / "ix"]
    )
    assert not rules.excluded(root / "a.txt", root)
    assert rules.excluded(root / ".git" / "config.txt", root)
    assert rules.excluded(root / "~$report.docx", root)
    assert rules.excluded(root / "x" / "draft.tmp", root)
    assert rules.excluded(root / "Private" / "a.txt", root)
    assert rules.excluded(root / "team" / "Legal" / "nda.pdf", root)
    assert rules.excluded(root / "archive" / "2019" / "q1.txt", root)
    assert not rules.excluded(root / "archive" / "2020" / "q1.txt", root)
    assert rules.excluded(root / "ix" / "meta.db", root)


def test_walk_skips_excluded_and_flags_unsupported(corpus: tuple[Path, list, dict[str, str]]) -> None:
    folder = corpus[0]
    found = dict(walk(folder, ExcludeRules([".*", "~$*"])))
    assert found[folder / "picture.png"] is False
    assert folder / ".hidden" / "secret.txt" not in found and folder / "~$lock.docx" not in found
    assert sum(found.values()) == 42 + len(corpus[2])


# -- loaders ---------------------------------------------------------------------------------------------


def test_every_type_loads_its_text_and_metadata(tmp_path: Path) -> None:
    sent = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    write_docx(
        tmp_path / "a.docx",
        ["Alpha paragraph.", "Beta paragraph."],
        title="Doc title",
        table=[["Cell one", "Cell two"]],
    )
    write_pdf(tmp_path / "a.pdf", ["Page one text.", "Page two text."], title="Pdf title")
    write_msg(tmp_path / "a.msg", "Msg subject", "Body of the msg.", date=sent)
    write_eml(tmp_path / "a.eml", "Eml subject", "Body of the eml.", date=sent)
    write_eml(tmp_path / "b.eml", "Html eml", "Bold <b>body</b>.", html=True)
    write_html(tmp_path / "a.html", "Html title", ["First para.", "Second para."])
    (tmp_path / "a.md").write_text("# Heading\n\nSome *markdown*.")
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfCaf\xc3\xa9 text")
    (tmp_path / "legacy.txt").write_bytes("Fa\u00e7ade".encode("cp1252"))

    def load(name: str):
        return load_bytes((tmp_path / name).read_bytes(), Path(name).suffix)

    docx = load("a.docx")
    assert (
        docx.title == "Doc title"
        and "Beta paragraph." in docx.segments[0][1]
        and "Cell one | Cell two" in docx.segments[0][1]
    )
    pdf = load("a.pdf")
    assert [(p, t.strip()) for p, t in pdf.segments] == [(1, "Page one text."), (2, "Page two text.")]
    assert pdf.title == "Pdf title"
    msg = load("a.msg")
    assert msg.title == "Msg subject" and "Body of the msg." in msg.segments[0][1] and msg.date == sent
    eml = load("a.eml")
    assert eml.title == "Eml subject" and "Body of the eml." in eml.segments[0][1] and eml.date == sent
    assert "Bold body." in load("b.eml").segments[0][1].replace("\n", "")
    html = load("a.html")
    assert (
        html.title == "Html title"
        and "Second para." in html.segments[0][1]
        and "tracking" not in html.segments[0][1]
    )
    assert load("a.md").title == "Heading"
    assert load("a.txt").segments == [(None, "Caf\u00e9 text")]
    assert load("legacy.txt").segments == [(None, "Fa\u00e7ade")]


def test_bad_files_get_a_reason(corpus: tuple[Path, list, dict[str, str]]) -> None:
    folder, _, bad = corpus
    for name, reason in bad.items():
        with pytest.raises(SkipFile) as info:
            load_bytes((folder / "bad" / name).read_bytes(), Path(name).suffix)
        assert info.value.reason == reason, name
        assert info.value.detail
    with pytest.raises(SkipFile) as info:
        load_bytes(b"data", ".xyz")
    assert info.value.reason == SkipReason.UNSUPPORTED


# -- the index: one suite, both vector backends --------------------------------------------------------


def test_index_search_update_delete(make_index, corpus, tmp_path: Path) -> None:
    folder = copy_corpus(corpus, tmp_path / "docs")
    embedder = HashEmbedder()
    index = make_index(embedder=embedder)
    first = index.index_paths([folder])
    assert (first.indexed, first.unchanged, first.removed, first.ignored) == (42, 0, 0, 1)
    assert {(Path(s.path).name, s.reason) for s in first.skipped} == set(corpus[2].items())
    status = index.status()
    assert status.documents == 42 and status.chunks == status.vectors == first.chunks_added
    assert status.index_kind == make_index.kind and status.roots == [str(folder)]
    assert index.verify() == []

    # The document that holds the fact comes first (the hash embedder is lexical: ask with its words).
    target = folder / "txt" / "doc0001.txt"
    hit = index.search(FACTS[1][0], k=3)[0]
    assert hit.path == str(target)
    assert (
        target.read_text()[hit.start : hit.end]
        == index._store.conn.execute("SELECT text FROM chunks WHERE id = ?", (hit.chunk_id,)).fetchone()[0]
    )
    assert FACTS[1][0] in target.read_text()[hit.start : hit.end]

    # Nothing changed: nothing is read or embedded again.
    calls = embedder.texts_embedded
    again = index.index_paths([folder])
    assert (again.indexed, again.unchanged, again.removed) == (0, 42, 0) and embedder.texts_embedded == calls

    # Touched but identical: the hash says unchanged. Changed: re-indexed. Deleted: removed.
    os.utime(folder / "md" / "doc0006.md", (1, 1))
    target.write_text("Completely new text about the migration of the penguin colony to Antarctica.\n")
    (folder / "docx" / "doc0030.docx").unlink()
    shutil.rmtree(folder / "eml")
    third = index.index_paths([folder])
    assert (third.indexed, third.unchanged, third.removed) == (1, 40 - 6, 7)
    assert embedder.texts_embedded == calls + 1
    hits = index.search("penguin colony migration Antarctica", k=1)
    assert hits[0].path == str(target) and "penguin" in hits[0].snippet
    texts = [r[0] for r in index._store.conn.execute("SELECT text FROM chunks")]
    assert not any(FACTS[1][0] in t for t in texts)
    assert not any("/eml/" in (h.path or "") for h in index.search("picnic Riverside Park", k=50))
    assert index.verify() == []
    status = index.status()
    assert status.documents == 35 and status.vectors == status.chunks + (status.tombstones or 0)

    # Excluding a folder later removes what it held.
    fourth = index.index_paths([folder], exclude=["pdf"])
    assert fourth.removed == 6 and index.status().documents == 29
    assert index.verify() == []


def test_documents_given_as_text_and_scopes(make_index) -> None:
    index = make_index()
    day = datetime(2024, 6, 1, tzinfo=UTC)
    infos = index.add_documents(
        [
            DocumentInput(
                source="graph:message:AAA",
                text="The boiler inspection is booked for Tuesday.",
                title="Boiler",
                date=day,
                kind="email",
            ),
            DocumentInput(
                source="graph:message:BBB",
                pages=[
                    PageText(text="Invoice total 1200 dollars.", page=1),
                    PageText(text="Payment due in thirty days.", page=2),
                ],
                title="Invoice",
                date=datetime(2023, 1, 1, tzinfo=UTC),
            ),
            *[
                DocumentInput(source=f"note:{i}", text=f"Filler note number {i} about nothing much.")
                for i in range(12)
            ],
        ]
    )
    assert [i.chunks for i in infos[:2]] == [1, 2] and all(i.changed for i in infos)
    hit = index.search("when is the boiler inspection", k=1)[0]
    assert (hit.source, hit.path, hit.title, hit.date) == ("graph:message:AAA", None, "Boiler", day)
    assert index.search("payment due thirty days", k=1)[0].page == 2

    # Re-adding the same text re-embeds nothing; new text replaces the old chunks.
    same = index.add_document(
        "graph:message:AAA", "The boiler inspection is booked for Tuesday.", title="Renamed"
    )
    assert not same.changed and index.document("graph:message:AAA").title == "Renamed"  # type: ignore[union-attr]
    index.add_document("graph:message:AAA", "The boiler inspection moved to Friday morning.", date=day)
    assert "Friday" in index.search("boiler inspection", k=1)[0].snippet

    # Scopes: sources, document ids, dates, and their combination.
    scoped = index.search("boiler invoice note", k=20, scope=Scope(sources=["graph:message:BBB"]))
    assert {h.source for h in scoped} == {"graph:message:BBB"} and len(scoped) == 2
    note_id = index.document("note:3").id  # type: ignore[union-attr]
    assert [h.document_id for h in index.search("note", k=5, scope=Scope(document_ids=[note_id]))] == [
        note_id
    ]
    assert {
        h.source for h in index.search("boiler invoice", k=20, scope=Scope(since=datetime(2024, 1, 1)))
    } == {"graph:message:AAA"}
    assert index.search("boiler", k=5, scope=Scope(until=datetime(2020, 1, 1))) == []
    assert index.search("x", k=5, scope=Scope(sources=["graph:message:AAA"], document_ids=[note_id])) == []
    assert all(h.score >= 0.3 for h in index.search("boiler inspection", k=10, min_score=0.3))

    assert index.remove_document("graph:message:AAA") and not index.remove_document("graph:message:AAA")
    assert all(h.source != "graph:message:AAA" for h in index.search("boiler inspection", k=20))
    assert index.remove_document(note_id)
    assert index.verify() == []
    with pytest.raises(ValueError):
        index.add_documents([DocumentInput(source="x", text="a", pages=[PageText(text="b")])])


def test_folder_scope(make_index, corpus, tmp_path: Path) -> None:
    folder = copy_corpus(corpus, tmp_path / "docs")
    index = make_index()
    index.index_paths([folder])
    hits = index.search(FACTS[1][1], k=10, scope=Scope(folders=[str(folder / "pdf")]))
    assert hits and all(h.path and h.path.startswith(str(folder / "pdf") + os.sep) for h in hits)
    assert index.search(FACTS[1][1], k=5, scope=Scope(folders=[str(folder / "nowhere")])) == []


def test_hnsw_deletes_are_tombstoned_then_compacted(tmp_path: Path) -> None:
    settings = IndexSettings(hnsw_threshold=20, compact_fraction=0.25)
    index = DocumentIndex(tmp_path / "index", settings=settings, embedder=HashEmbedder())
    index.add_documents(
        [
            DocumentInput(source=f"s:{i}", text=f"Document {i} mentions topic{i} twice: topic{i}.")
            for i in range(60)
        ]
    )
    assert index.status().index_kind == "flat"
    index.save()  # past the threshold: becomes HNSW
    status = index.status()
    assert status.index_kind == "hnsw" and status.vectors == 60 and status.tombstones == 0
    for i in range(10):
        assert index.remove_document(f"s:{i}")
    status = index.status()
    assert (status.vectors, status.tombstones, status.chunks) == (60, 10, 50)
    for i in range(10):  # tombstoned vectors never come back, whatever k
        assert all(h.source != f"s:{i}" for h in index.search(f"topic{i}", k=60))
    assert index.search("topic42", k=1)[0].source == "s:42"
    assert index.verify() == []
    for i in range(10, 20):
        index.remove_document(f"s:{i}")
    index.save()  # 20 of 60 tombstoned > 25%: rebuilt from the live vectors
    status = index.status()
    assert (status.vectors, status.tombstones, status.index_kind) == (40, 0, "hnsw")
    for i in range(20, 55):
        index.remove_document(f"s:{i}")
    index.save()  # 5 live < threshold / 2: back to exact
    assert index.status().index_kind == "flat" and index.search("topic57", k=1)[0].source == "s:57"
    assert index.verify() == []
    index.close()


# -- consistency across reopen, stale or broken vector files, other processes -------------------------------


def test_reopen_with_a_stale_vector_file(make_index, tmp_path: Path) -> None:
    """A crash after SQLite committed but before FAISS was saved leaves an old vectors file."""
    index = make_index()
    index.add_documents([DocumentInput(source=f"s:{i}", text=f"Text {i} about item{i}.") for i in range(30)])
    index.close()
    stale = (tmp_path / "index" / "vectors.faiss").read_bytes()
    index = make_index()
    for i in range(10):
        index.remove_document(f"s:{i}")
    index.add_documents(
        [DocumentInput(source=f"n:{i}", text=f"New text {i} about fresh{i}.") for i in range(5)]
    )
    index.close()
    (tmp_path / "index" / "vectors.faiss").write_bytes(stale)  # 10 orphans, 5 missing
    (tmp_path / "index" / "vectors.faiss.123-abc.tmp").write_bytes(b"half written")
    index = make_index()
    assert index.verify() == []
    assert index.search("fresh3", k=1)[0].source == "n:3"
    assert all(not h.source.startswith("s:") or int(h.source[2:]) >= 10 for h in index.search("item4", k=40))
    assert not (tmp_path / "index" / "vectors.faiss.123-abc.tmp").exists()


def test_unusable_vector_files_are_rebuilt_from_sqlite(make_index, tmp_path: Path) -> None:
    index = make_index()
    index.add_documents([DocumentInput(source=f"s:{i}", text=f"Text {i} about item{i}.") for i in range(12)])
    index.close()
    vectors = tmp_path / "index" / "vectors.faiss"
    for content in (b"garbage", vectors.read_bytes()[:200]):
        vectors.write_bytes(content)
        index = make_index()
        assert index.search("item7", k=1)[0].source == "s:7" and index.verify() == []
        index.close()
    # The vectors of another index (same model) are not trusted: ids would not mean the same chunks.
    other = make_index(folder=tmp_path / "other")
    other.add_document("o:1", "Unrelated text.")
    other.close()
    shutil.copy(tmp_path / "other" / "vectors.faiss", vectors)
    index = make_index()
    assert index.status().documents == 12 and index.verify() == []
    assert index.search("item3", k=1)[0].source == "s:3"


def test_a_different_model_is_refused(tmp_path: Path) -> None:
    DocumentIndex(tmp_path / "ix", embedder=HashEmbedder(dim=64)).close()
    with pytest.raises(ValueError, match="remove the folder"):
        DocumentIndex(tmp_path / "ix", embedder=HashEmbedder(dim=32))


def test_two_handles_on_one_folder_see_each_others_writes(make_index, tmp_path: Path) -> None:
    writer, reader = make_index(), make_index()
    assert reader.search("anything", k=1) == []
    writer.add_document("a", "The first apple of the season.")
    assert reader.search("first apple season", k=1)[0].source == "a"
    reader.add_document("b", "A banana from the reader.")
    writer.remove_document("a")
    assert writer.search("banana reader", k=1)[0].source == "b"
    assert [h.source for h in reader.search("apple banana", k=5)] == ["b"]
    assert writer.verify() == [] and reader.verify() == []


_CRASH_SCRIPT = """
import os, signal, sys
from deskpilot.indexes import DocumentIndex, IndexSettings
from deskpilot.indexes import HashEmbedder

class DiesOnCall(HashEmbedder):
    def embed(self, texts):
        if self.calls + 1 == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().embed(texts)

settings = IndexSettings(
    batch_chunks=6, checkpoint_seconds=float(sys.argv[5]), hnsw_threshold=int(sys.argv[4])
)
DocumentIndex(sys.argv[1], settings=settings, embedder=DiesOnCall()).index_paths([sys.argv[2]])
"""


# Killed after 1, 4 and 8 committed batches; with a vectors file saved after every batch, or never.
@pytest.mark.parametrize(("die_on_call", "checkpoint_seconds"), [(2, 1000), (5, 0), (9, 1000)])
def test_kill_9_mid_run_leaves_a_consistent_index(
    make_index, corpus, tmp_path: Path, die_on_call: int, checkpoint_seconds: int
) -> None:
    folder = copy_corpus(corpus, tmp_path / "docs")
    threshold = str(KINDS[make_index.kind].hnsw_threshold)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CRASH_SCRIPT,
            str(tmp_path / "index"),
            str(folder),
            str(die_on_call),
            threshold,
            str(checkpoint_seconds),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -9, proc.stderr
    index = make_index()
    assert index.verify() == []
    partial = index.status().documents
    assert 0 < partial < 42
    # Every document present is complete and matches the file's bytes.
    for row in index._store.conn.execute("SELECT path, content_hash FROM documents"):
        assert hashlib.sha256(Path(row[0]).read_bytes()).hexdigest() == row[1]
    summary = index.index_paths([folder])
    assert (summary.indexed, summary.unchanged) == (42 - partial, partial)
    assert index.verify() == [] and index.status().documents == 42

    fresh = make_index(folder=tmp_path / "fresh")
    fresh.index_paths([folder])
    chunks = (
        "SELECT d.source, c.seq, c.text FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY 1, 2"
    )
    assert index._store.conn.execute(chunks).fetchall() == fresh._store.conn.execute(chunks).fetchall()


# -- runs: progress, cancel, status, watch, CLI ------------------------------------------------------------


def test_progress_cancel_and_status(make_index, corpus, tmp_path: Path) -> None:
    folder = copy_corpus(corpus, tmp_path / "docs")
    index = make_index()
    cancel = threading.Event()
    seen: list = []

    def progress(p) -> None:
        seen.append(p)
        assert index.status().indexing is not None  # the status endpoint can show the running job
        if p.files_done == 10:
            cancel.set()

    summary = index.index_paths([folder], progress=progress, cancel=cancel)
    assert summary.cancelled and seen[0].phase == "scanning" and seen[-1].phase == "done"
    assert max(p.files_total for p in seen) == 50
    assert index.verify() == []
    status = index.status()
    assert status.indexing is None and status.last_run == summary
    assert 0 < status.documents <= 10
    resumed = index.index_paths()  # no paths: every root indexed before
    assert resumed.indexed + resumed.unchanged == 42 and not resumed.cancelled
    status = index.status()
    assert {(Path(s.path).name, s.reason) for s in status.skipped} == set(corpus[2].items())
    assert json.loads(msgspec.json.encode(status))["lastRun"]["indexed"] == resumed.indexed  # camelCase wire


def test_a_file_that_turns_bad_leaves_the_index(make_index, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Good text about gardening.")
    index = make_index()
    assert index.index_paths([folder]).indexed == 1
    (folder / "a.txt").write_bytes(b"\x00\x01\x02 binary now")
    summary = index.index_paths([folder])
    assert summary.removed == 1 and [s.reason for s in summary.skipped] == [SkipReason.BINARY]
    assert index.search("gardening", k=5) == [] and index.verify() == []
    again = index.index_paths([folder])  # remembered: not parsed again, still reported
    assert [s.reason for s in again.skipped] == [SkipReason.BINARY] and again.removed == 0
    (folder / "a.txt").write_text("Fixed text about gardening.")
    fixed = index.index_paths([folder])
    assert fixed.indexed == 1 and fixed.skipped == [] and index.status().skipped == []


def test_watch_keeps_the_index_current(tmp_path: Path) -> None:
    from deskpilot.indexes.watch import watch

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "one.txt").write_text("The first note is about astronomy.")
    index = DocumentIndex(tmp_path / "index", embedder=HashEmbedder())
    index.index_paths([folder])
    stop = threading.Event()
    summaries: list = []
    thread = threading.Thread(
        target=watch,
        args=(index, [folder]),
        kwargs={"stop": stop, "on_summary": summaries.append, "debounce_ms": 200},
    )
    thread.start()

    def wait_for(condition) -> None:
        deadline = time.monotonic() + 20
        while not condition():
            assert time.monotonic() < deadline, summaries
            time.sleep(0.05)

    try:
        time.sleep(0.5)  # let the watcher start
        (folder / "two.md").write_text("# Second\n\nA note about volcanoes.")
        wait_for(lambda: index.document(str(folder / "two.md")) is not None)
        (folder / "one.txt").unlink()
        wait_for(lambda: index.document(str(folder / "one.txt")) is None)
        (folder / "scratch.tmp").write_text("excluded: never triggers a run")
        assert index.search("volcanoes", k=1)[0].path == str(folder / "two.md")
    finally:
        stop.set()
        thread.join(10)
        index.close()
    assert not thread.is_alive()
    assert all(s.indexed + s.removed >= 1 for s in summaries)


def test_cli_index_command(corpus, tmp_path: Path, app_home: Path) -> None:
    folder = copy_corpus(corpus, tmp_path / "docs")
    runner = CliRunner()
    result = runner.invoke(
        index_command, [str(folder), "--exclude", "*/pdf/*"], obj={"embedder": HashEmbedder()}
    )
    assert result.exit_code == 0, result.output
    assert "indexed 36, unchanged 0, removed 0, skipped 8 (" in result.output
    assert "encrypted 2" in result.output and "skipped encrypted:" in result.output
    assert (app_home / "index" / "meta.db").is_file() and (app_home / "index" / "vectors.faiss").is_file()
    again = runner.invoke(index_command, [], obj={"embedder": HashEmbedder()})
    assert again.exit_code == 0 and "indexed 0, unchanged 36, removed 0" in again.output
    empty_home = tmp_path / "empty"
    nothing = runner.invoke(
        index_command, [], obj={"embedder": HashEmbedder()}, env={"DESKPILOT_HOME": str(empty_home)}
    )
    assert nothing.exit_code == 2 and "give at least one file or folder" in nothing.output


def test_missing_paths(make_index, tmp_path: Path) -> None:
    index = make_index()
    typo = index.index_paths([tmp_path / "no-such-folder"])
    assert [(s.reason, s.detail) for s in typo.skipped] == [(SkipReason.NOT_FOUND, "no such file or folder")]
    assert index.roots() == {}
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Notes about the harbour.")
    index.index_paths([folder], exclude=["*.bak"])
    assert index.roots() == {str(folder): ["*.bak"]}
    shutil.rmtree(folder)
    gone = index.index_paths()  # a remembered folder that disappeared: its documents leave, it is forgotten
    assert (gone.removed, gone.skipped) == (1, []) and index.roots() == {} and index.status().documents == 0

"""The OneDrive adapter: a file at a path under the drive root. The path is the marker: the lookup reads
what is there, and only the same bytes count as this action's file."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, ClassVar
from urllib.parse import quote

import msgspec

from deskpilot.server.actions._graph_base import GraphAdapter
from deskpilot.server.actions._types import Effect, FileDocumentParams, PermanentError
from deskpilot.server.connectors.graph import GraphError, GraphTransport, NotFound, quote_id

__all__ = ["FileDocumentAdapter"]

# OneDrive's simple upload takes up to 250 MB; larger files need an upload session.
_MAX_SIMPLE_UPLOAD = 250 * 1024 * 1024
_BAD_NAME = re.compile(r'["*:<>?/\\|]')


class _DriveItem(msgspec.Struct, rename="camel"):
    id: str
    size: int | None = None
    web_url: str | None = None
    folder: dict[str, Any] | None = None


class _File(msgspec.Struct, frozen=True):
    path: str
    content: bytes
    content_type: str


def _file(params: FileDocumentParams) -> _File:
    if (params.text is None) == (params.content_b64 is None):
        raise PermanentError("a file needs exactly one of text and contentB64")
    try:
        content = (
            params.text.encode()
            if params.text is not None
            else base64.b64decode(params.content_b64 or "", validate=True)
        )
    except (binascii.Error, ValueError) as exc:
        raise PermanentError("contentB64 is not base64") from exc
    if len(content) > _MAX_SIMPLE_UPLOAD:
        raise PermanentError(f"{len(content)} bytes: larger than a simple OneDrive upload takes")
    folders = [p for p in params.folder.replace("\\", "/").split("/") if p]
    name = params.name.strip()
    if not name or _BAD_NAME.search(name) or any(_BAD_NAME.search(f) for f in folders):
        raise PermanentError(f"not a valid OneDrive path: {params.folder!r} / {params.name!r}")
    return _File("/".join([*folders, name]), content, params.content_type)


class FileDocumentAdapter(GraphAdapter):
    """PUT with `conflictBehavior=fail`, after a lookup of the path: the same bytes there are this
    action's file (an earlier attempt's); different bytes are someone else's, never overwritten."""

    kind: ClassVar[str] = "file_document"

    def prepare(self, graph: GraphTransport, params: FileDocumentParams) -> _File:
        return _file(params)

    def _same(self, graph: GraphTransport, item: _DriveItem, file: _File) -> bool:
        if item.folder is not None or item.size != len(file.content):
            return False
        content = graph.download(f"me/drive/items/{quote_id(item.id)}/content", expected_size=item.size)
        return content == file.content

    def lookup(
        self, graph: GraphTransport, key: str, params: FileDocumentParams, file: _File
    ) -> Effect | None:
        try:
            item = graph.get_item(f"me/drive/root:/{quote(file.path)}", _DriveItem)
        except NotFound:
            return None
        if not self._same(graph, item, file):
            raise PermanentError(f"a different item already exists at {file.path}; not overwriting it")
        return Effect(ref=item.id, detail={"path": file.path, "webUrl": item.web_url})

    def create(self, graph: GraphTransport, key: str, params: FileDocumentParams, file: _File) -> Effect:
        try:
            made = graph.put(
                f"me/drive/root:/{quote(file.path)}:/content",
                file.content,
                content_type=file.content_type,
                params={"@microsoft.graph.conflictBehavior": "fail"},
                idempotent=False,  # sent again after it landed, it would fail with 409
            )
        except GraphError as exc:
            if exc.status != 409:
                raise
            found = self.lookup(graph, key, params, file)  # made between our lookup and our PUT
            if found is None:
                raise
            return found
        return Effect(ref=str(made["id"]), detail={"path": file.path, "webUrl": made.get("webUrl")})

    def remove(self, graph: GraphTransport, key: str, params: FileDocumentParams, effect: Effect) -> None:
        url = f"me/drive/items/{quote_id(effect.ref)}"
        try:
            item = graph.get_item(url, _DriveItem)
        except NotFound:
            return
        if not self._same(graph, item, _file(params)):
            raise PermanentError(
                f"{effect.detail.get('path', effect.ref)} changed since it was written; not deleting it"
            )
        graph.delete(url)

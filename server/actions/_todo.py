"""The To Do adapter: a task in the user's default list (or a named one), linked to Deskpilot by a
linkedResource whose externalId is the idempotency key."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

import msgspec

from deskpilot.server.actions._graph_base import APP_NAME, GraphAdapter, raw_items
from deskpilot.server.actions._types import Effect, PermanentError, TodoTaskParams
from deskpilot.server.connectors.graph import GraphTransport, quote_id

__all__ = ["TodoTaskAdapter"]


class _List(msgspec.Struct, rename="camel"):
    id: str
    display_name: str | None = None
    wellknown_list_name: str | None = None


class _Link(msgspec.Struct, rename="camel"):
    application_name: str | None = None
    external_id: str | None = None


class _Task(msgspec.Struct, rename="camel"):
    id: str
    linked_resources: list[_Link] = []


class TodoTaskAdapter(GraphAdapter):
    """Graph v1.0 documents no `$filter` that finds a task by its linkedResource, so the lookup reads the
    list's tasks with `$expand=linkedResources` and scans them: one request per page of tasks, which is
    the price of a marker Graph keeps with the task."""

    kind: ClassVar[str] = "todo_task"

    def prepare(self, graph: GraphTransport, params: TodoTaskParams) -> str:
        """The id of the list the task goes to."""
        wanted = params.list_name.casefold() if params.list_name is not None else None
        for todo in raw_items(graph, "me/todo/lists", _List):
            if wanted is None and todo.wellknown_list_name == "defaultList":
                return todo.id
            if wanted is not None and (todo.display_name or "").casefold() == wanted:
                return todo.id
        raise PermanentError(
            f"no To Do list named {params.list_name!r}" if wanted is not None else "no default To Do list"
        )

    def lookup(self, graph: GraphTransport, key: str, params: TodoTaskParams, list_id: str) -> Effect | None:
        tasks = f"me/todo/lists/{quote_id(list_id)}/tasks"
        for task in raw_items(graph, tasks, _Task, {"$expand": "linkedResources"}):
            if any(r.external_id == key and r.application_name == APP_NAME for r in task.linked_resources):
                return Effect(ref=task.id, detail={"listId": list_id})
        return None

    def create(self, graph: GraphTransport, key: str, params: TodoTaskParams, list_id: str) -> Effect:
        link: dict[str, Any] = {"applicationName": APP_NAME, "externalId": key, "displayName": params.title}
        if params.link_url:
            link["webUrl"] = params.link_url
        task: dict[str, Any] = {"title": params.title, "linkedResources": [link]}
        if params.body:
            task["body"] = {"content": params.body, "contentType": "text"}
        if params.due:
            try:
                due = date.fromisoformat(params.due)
            except ValueError as exc:
                raise PermanentError(f"due is not an ISO date: {params.due!r}") from exc
            task["dueDateTime"] = {"dateTime": f"{due.isoformat()}T00:00:00", "timeZone": "UTC"}
        made = graph.post(f"me/todo/lists/{quote_id(list_id)}/tasks", task)
        return Effect(ref=str(made["id"]), detail={"listId": list_id})

    def remove(self, graph: GraphTransport, key: str, params: TodoTaskParams, effect: Effect) -> None:
        list_id = effect.detail.get("listId") or self.prepare(graph, params)
        graph.delete(f"me/todo/lists/{quote_id(list_id)}/tasks/{quote_id(effect.ref)}")

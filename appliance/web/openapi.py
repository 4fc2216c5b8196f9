"""The HTTP API's OpenAPI 3.1 description, served at /openapi.json (docs/web.md), generated from the app's
routes and the models of what they take and answer.

Each handler says what it is with `@api(get=Operation(...))`; `describe(app)` walks the app's routes, so a
route cannot be left out or described at a path it does not have. The test suite fuzzes the API from the
description (schemathesis) and checks every answer against it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.applications import Starlette
from starlette.routing import Route

from appliance.web.answers import Failure
from appliance.web.auth import CSRF_HEADER, SESSION_COOKIE

MEANINGS = {
    400: "the request is malformed: the message says what and where",
    401: "a login or the admin credential is needed",
    403: "a CSRF token is missing or wrong, or the request came from another origin",
    404: "no such thing on this box",
    409: "refused: the message says why",
    411: "a Content-Length is required",
    413: "the body is too large",
    429: "too many failed attempts from this address; wait a minute",
    503: "not available now (no credential yet, supervisor not answering, too many streams)",
    507: "the body would fill the data partition",
}
# Who may call: anyone where [http] status_login allows reading, or a session or the bearer credential;
# control needs the admin's session with its CSRF token, or the bearer credential.
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "read": [{}, {"session": []}, {"bearer": []}],
    "control": [{"session": [], "csrf": []}, {"bearer": []}],
}
READ_REFUSED = (401, 429, 503)


@dataclass(frozen=True)
class Operation:
    """One method of one route: what it is for, what it takes and what it answers."""

    summary: str
    answer: type[BaseModel] | None = None  # a JSON answer's model
    media: str = "application/json"  # the answer's type, when it is not a model's JSON
    code: int = 200
    errors: Sequence[int] = ()
    said: dict[int, str] = field(default_factory=dict)  # what an error code means here, if not MEANINGS'
    security: Literal["read", "control"] | None = None
    body: type[BaseModel] | None = None
    body_media: str = "application/json"
    body_schema: dict[str, Any] | None = None  # a body that is not JSON
    body_required: bool = True
    description: str = ""
    parameters: Sequence[dict[str, Any]] = ()


F = TypeVar("F", bound=Callable[..., Any])


def api(**operations: Operation) -> Callable[[F], F]:
    """Describes a handler's methods: `@api(get=Operation(...), post=Operation(...))`."""

    def describe_handler(handler: F) -> F:
        handler.__api__ = operations  # type: ignore[attr-defined]
        return handler

    return describe_handler


def describe(app: Starlette, version: str) -> dict[str, Any]:
    """The whole description of `app`'s described routes."""
    operations = [
        (route.path, method, op)
        for route in app.routes
        if isinstance(route, Route)
        for method, op in getattr(route.endpoint, "__api__", {}).items()
    ]
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Failure, "serialization")}
    models |= {(op.answer, "serialization") for _, _, op in operations if op.answer is not None}
    models |= {(op.body, "validation") for _, _, op in operations if op.body is not None}
    refs, definitions = models_json_schema(
        sorted(models, key=lambda m: (m[0].__name__, m[1])), ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in operations:
        paths.setdefault(path, {})[method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Edge appliance",
            "version": version,
            "description": "The box's status, live figures, stop output control and updates (docs/web.md). "
            "Any route answers 421 to a Host name the box does not answer to, and 413 to a body over its "
            "route's limit (docs/web.md#limits).",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the admin credential"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
            },
        },
    }


def _operation(op: Operation, refs: Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]]) -> dict[str, Any]:
    failure = refs[(Failure, "serialization")]
    answer = {"description": op.summary, "content": {op.media: {}}}
    if op.answer is not None:
        answer["content"] = {"application/json": {"schema": refs[(op.answer, "serialization")]}}
    described: dict[str, Any] = {"summary": op.summary, "responses": {str(op.code): answer}}
    takes_body = op.body is not None or op.body_schema is not None
    for code in sorted({*op.errors, 413} if takes_body else op.errors):  # any body over its route's limit
        meaning = op.said.get(code, MEANINGS[code])
        described["responses"][str(code)] = {
            "description": meaning,
            "content": {"application/json": {"schema": failure}},
        }
    if op.description:
        described["description"] = op.description
    if op.security is not None:
        described["security"] = SECURITY[op.security]
    if op.parameters:
        described["parameters"] = list(op.parameters)
    if op.body is not None or op.body_schema is not None:
        schema = refs[(op.body, "validation")] if op.body is not None else op.body_schema
        described["requestBody"] = {
            "required": op.body_required,
            "content": {op.body_media: {"schema": schema}},
        }
    return described

"""The HTTP API's OpenAPI 3.1 description, served at /openapi.json (docs/web.md).

Written by hand next to the routes it describes; the test suite fuzzes the API from it (schemathesis) and
checks that every answer matches it."""

from __future__ import annotations

from typing import Any

from appliance.web.access import CSRF_HEADER, SESSION_COOKIE

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what is wrong, in plain words"}},
}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_ESTOP = {
    "type": ["object", "null"],
    "description": "The stop output; null on a box without [safety].",
    "required": ["state", "reason", "since"],
    "properties": {
        "state": {"enum": ["ok", "tripped", "unknown"]},
        "reason": {"type": ["string", "null"]},
        "since": _NUMBER_OR_NULL,
        "latched": {"type": "boolean"},
        "history": {"type": "array", "items": {"type": "object"}},
    },
}
_SENSOR = {
    "type": "object",
    "required": ["id", "value", "unit", "ts", "quality"],
    "properties": {
        "id": {"type": "string", "description": "DEVICE.CHANNEL"},
        "device": {"type": "string"},
        "channel": {"type": "string"},
        "value": {"type": ["number", "string", "null"]},
        "unit": {"type": "string"},
        "ts": {"type": "number", "description": "wall-clock seconds of the reading"},
        "quality": {"enum": ["ok", "stale", "error"]},
    },
}
_INSIGHT = {
    "type": "object",
    "required": ["id", "severity", "message", "advice"],
    "properties": {
        "id": {"type": "string"},
        "severity": {"enum": ["critical", "warning", "info"]},
        "topic": {"type": "string"},
        "message": {"type": "string"},
        "advice": {"type": "string"},
        "since": _NUMBER_OR_NULL,
    },
}
_STATUS = {
    "type": "object",
    "required": ["device", "uptime_s", "sensors", "services", "hal", "qc", "estop", "sync"],
    "properties": {
        "device": {"type": "string"},
        "time": {"type": "number", "description": "the box's clock, wall-clock seconds"},
        "uptime_s": {"type": "number"},
        "sensors": {"type": "array", "items": _SENSOR},
        "services": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["running", "restarts", "last_error"],
                "properties": {"running": {"type": "boolean"}, "restarts": {"type": "integer"}},
            },
        },
        "hal": {"type": ["object", "null"], "description": "board, accelerators, inference plan"},
        "qc": {"type": ["object", "null"], "description": "frames, fps, defects, latency_ms; null: no QC"},
        "estop": _ESTOP,
        "sync": {
            "type": "object",
            "required": ["tier", "backlog", "last_ok"],
            "properties": {"tier": {"type": "string"}, "last_ok": _NUMBER_OR_NULL},
        },
        "disk": {"type": ["object", "null"]},
        "insights": {"type": "array", "items": _INSIGHT},
    },
}
_SESSION = {
    "type": "object",
    "required": ["user", "csrf", "read_needs_login"],
    "properties": {
        "user": {"type": ["string", "null"]},
        "csrf": {"type": ["string", "null"], "description": f"send it as {CSRF_HEADER} on control requests"},
        "read_needs_login": {"type": "boolean"},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int, said: dict[int, str] | None = None) -> dict[str, Any]:
    meanings = {
        400: "the request is malformed: the message says what and where",
        401: "a login or the admin credential is needed",
        403: "a CSRF token is missing or wrong, or the request came from another origin",
        404: "no such thing on this box",
        409: "refused: the message says why",
        413: "the body is too large (a trip still trips the line first)",
        429: "too many failed attempts from this address; wait a minute",
        503: "not available now (no credential yet, supervisor not answering, too many streams)",
    } | (said or {})
    return {str(code): _json(_ERROR, meanings[code]) for code in codes}


_TRIP_BODY = {  # bodies over 4096 bytes are refused too
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": 300}},
    "additionalProperties": False,
}
_RECORD = {"type": ["object", "null"], "description": "null when there is none; {error} if it cannot be read"}
_UPDATE = {
    "type": "object",
    "description": "What root's updater recorded in the update state directory (docs/updates.md)",
    "required": [
        *("available", "why_not", "max_upload_bytes", "receiving", "request", "progress", "outcome"),
        *("trial", "slots"),
    ],
    "properties": {
        "available": {"type": "boolean", "description": "whether this box takes updates through the page"},
        "why_not": {"type": ["string", "null"]},
        "max_upload_bytes": {"type": "integer"},
        "receiving": {**_RECORD, "description": "an upload under way: received, size, started"},
        "request": {**_RECORD, "description": "an upload waiting for the updater: size, sha256, received"},
        "progress": {
            **_RECORD,
            "description": "the install running (running: true) or the last one: state (installing, "
            "installed, failed), percent, step, version, error",
        },
        "outcome": {
            **_RECORD,
            "description": "the last update: outcome (installed, committed, rolled back, failed), message, "
            "version, reason, time",
        },
        "trial": {**_RECORD, "description": "an update installed and not yet committed"},
        "slots": {**_RECORD, "description": "the slots as RAUC last reported them (booted, primary, slots)"},
    },
}
_UPLOADED = {
    "type": "object",
    "required": ["message", "size", "sha256"],
    "properties": {"message": {"type": "string"}, "size": {"type": "integer"}, "sha256": {"type": "string"}},
}
_UPLOAD_ERRORS = {
    400: "the body is empty, or ended before its Content-Length",
    404: "this box takes no updates through its page (no updater: not the firmware image)",
    409: "an upload, or an install, is under way already",
    411: "a Content-Length is required",
    413: "the bundle is larger than the box takes (refused before its body is read)",
    503: "not available now (no credential yet), or the upload could not be stored",
    507: "the bundle would fill the data partition",
}
_READ: list[dict[str, list[str]]] = [
    {},
    {"session": []},
    {"bearer": []},
]  # anonymous reads pass where [http] status_login allows
_CONTROL: list[dict[str, list[str]]] = [{"session": [], "csrf": []}, {"bearer": []}]
_REFUSED_READ = _errors(401, 429, 503)


def describe(version: str) -> dict[str, Any]:
    """The whole description."""
    paths = {
        "/api/v1/status": {
            "get": {
                "summary": "Everything the box knows now",
                "security": _READ,
                "responses": {"200": _json(_STATUS, "the status document"), **_REFUSED_READ},
            }
        },
        "/api/v1/stream": {
            "get": {
                "summary": "The status document as server-sent events (`event: status`), once a second",
                "security": _READ,
                "responses": {
                    "200": {"description": "an event stream", "content": {"text/event-stream": {}}},
                    **_REFUSED_READ,
                },
            }
        },
        "/api/v1/history": {
            "get": {
                "summary": "The last minutes of every numeric sensor: DEVICE.CHANNEL -> [[ts, value], ...]",
                "security": _READ,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "additionalProperties": {
                                "type": "array",
                                "items": {"type": "array", "items": {"type": "number"}, "minItems": 2},
                            },
                        },
                        "sensor histories",
                    ),
                    **_REFUSED_READ,
                },
            }
        },
        "/api/v1/events": {
            "get": {
                "summary": "Recorded events with an id above `since`, oldest first (at most 500)",
                "security": _READ,
                "parameters": [
                    {
                        "name": "since",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "default": 0},
                        "description": "the last event id the caller has",
                    }
                ],
                "responses": {
                    "200": _json({"type": "array", "items": {"type": "object"}}, "events"),
                    **_errors(400, 401, 429, 503),
                },
            }
        },
        "/evidence/{name}": {
            "get": {
                "summary": "A reject's frame or thumbnail (JPEG)",
                "security": _READ,
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "the image", "content": {"image/jpeg": {}}},
                    **_errors(401, 404, 429, 503),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "The figures in Prometheus text format",
                "security": _READ,
                "responses": {
                    "200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {}}},
                    **_REFUSED_READ,
                },
            }
        },
        "/api/v1/login": {
            "post": {
                "summary": f"Log in with the admin credential: sets the {SESSION_COOKIE} cookie",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["password"],
                                "properties": {
                                    "user": {"const": "admin"},
                                    "password": {"type": "string", "minLength": 1, "maxLength": 256},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["user", "csrf", "expires_in_s"],
                            "properties": {
                                "user": {"type": "string"},
                                "csrf": {"type": "string"},
                                "expires_in_s": {"type": "number"},
                            },
                        },
                        "logged in",
                    ),
                    **_errors(400, 401, 429, 503),
                },
            }
        },
        "/api/v1/logout": {
            "post": {
                "summary": "End the session",
                "security": _CONTROL,
                "responses": {
                    "200": _json({"type": "object"}, "logged out"),
                    **_errors(401, 403, 429, 503),
                },
            }
        },
        "/api/v1/session": {
            "get": {
                "summary": "Whether the caller is logged in, its CSRF token, whether reading needs a login",
                "responses": {"200": _json(_SESSION, "the session"), **_errors(401, 429, 503)},
            }
        },
        "/api/v1/estop/trip": {
            "post": {
                "summary": "Trip the stop output (latched until an authorized reset)",
                "description": "A body it cannot use still trips the line, then is refused (413, 400).",
                "security": _CONTROL,
                "requestBody": {"required": False, "content": {"application/json": {"schema": _TRIP_BODY}}},
                "responses": {
                    "200": _json({"type": "object", "required": ["estop"]}, "tripped"),
                    **_errors(400, 401, 403, 404, 413, 429, 503),
                },
            }
        },
        "/api/v1/estop/reset": {
            "post": {
                "summary": "Reset a latched trip, if no cause is still active",
                "security": _CONTROL,
                "responses": {
                    "200": _json({"type": "object", "required": ["message", "estop"]}, "reset"),
                    **_errors(401, 403, 404, 409, 429, 503),
                },
            }
        },
        "/api/v1/update": {
            "get": {
                "summary": "The last update's outcome, the install under way, the slots",
                "security": _READ,
                "responses": {
                    "200": _json(_UPDATE, "the update state"),
                    **_errors(401, 404, 429, 503, said={404: "this box takes no updates through its page"}),
                },
            },
            "post": {
                "summary": "Upload a RAUC bundle: root's updater checks it, installs it and reboots",
                "description": "The body is the bundle, sent with a Content-Length; too large a one is "
                "refused before it is read.",
                "security": _CONTROL,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary", "minLength": 1}
                        }
                    },
                },
                "responses": {
                    "202": _json(_UPLOADED, "received; the install follows"),
                    **_errors(400, 401, 403, 404, 409, 411, 413, 429, 503, 507, said=_UPLOAD_ERRORS),
                },
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Edge appliance",
            "version": version,
            "description": "The box's status, live figures, stop output control and updates (docs/web.md).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the admin credential"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
            }
        },
    }

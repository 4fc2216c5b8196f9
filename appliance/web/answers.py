"""The HTTP API's bodies other than the status document: what a route takes and answers, as pydantic models,
so that /openapi.json is generated from them (appliance/web/openapi.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from appliance.status.safety import EstopStatus


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Failure(BaseModel):
    """An error answer; some say more (a refused reset also shows the stop output)."""

    error: str = Field(description="what is wrong, in plain words")


class Login(Body):
    user: Literal["admin"] = "admin"
    password: str = Field(min_length=1, max_length=256)


class LoggedIn(Body):
    user: str
    csrf: str
    expires_in_s: float


class LoggedOut(Body):
    user: None


class Session(Body):
    user: str | None
    csrf: str | None = Field(description="send it as X-CSRF-Token on control requests")
    read_needs_login: bool


class Trip(Body):
    """Bodies over 4096 bytes are refused too (after the trip)."""

    reason: str = Field("", max_length=300)


class Tripped(Body):
    estop: EstopStatus
    error: str | None = Field(None, description="the body was refused, after the line was tripped")


class Reset(Body):
    estop: EstopStatus
    message: str | None = None
    error: str | None = Field(None, description="why the supervisor refused the reset")


class Uploaded(Body):
    message: str
    size: int
    sha256: str


Record = dict[str, Any] | None


class UpdateState(Body):
    """What root's updater recorded in the update state directory (docs/updates.md)."""

    available: bool = Field(description="whether this box takes updates through the page")
    why_not: str | None
    max_upload_bytes: int
    receiving: Record = Field(description="an upload under way: received, size, started")
    request: Record = Field(description="an upload waiting for the updater: size, sha256, received")
    progress: Record = Field(
        description="the install running (running: true) or the last one: state (installing, installed, "
        "failed), percent, step, version, error"
    )
    outcome: Record = Field(
        description="the last update: outcome (installed, committed, rolled back, failed), message, version, "
        "reason, time"
    )
    trial: Record = Field(description="an update installed and not yet committed")
    slots: Record = Field(description="the slots as RAUC last reported them (booted, primary, slots)")


class History(RootModel[dict[str, list[Annotated[list[float], Field(min_length=2, max_length=2)]]]]):
    """The last minutes of every numeric sensor: DEVICE.CHANNEL -> [[ts, value], ...]."""


class Events(RootModel[list[dict[str, Any]]]):
    """Recorded events, oldest first: id, ts, kind, severity, source, message, data."""

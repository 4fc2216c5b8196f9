"""The `[http]` section: where the status page listens, who must log in, and its TLS."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from appliance.config.base import Settings


def check_host_port(value: str) -> str:
    """`value` if it is HOST:PORT, else ValueError saying what is expected."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (port 0-65535, 0 = any free port), got {value!r}")
    return value


HostPort = Annotated[str, AfterValidator(check_host_port)]


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class TlsFiles(Settings):
    """A certificate and its key for the status page's HTTPS (PEM files; relative to the config file)."""

    cert: Annotated[str, Field(min_length=1)]
    key: Annotated[str, Field(min_length=1)]


class HttpSettings(Settings):
    """The local status page and JSON API (docs/web.md)."""

    listen: HostPort = "127.0.0.1:8080"
    # Who may read the status without logging in: "remote" (default) asks everyone but loopback clients,
    # "always" asks everyone, "never" nobody. Control actions always need the admin credential.
    status_login: Literal["remote", "always", "never"] = "remote"
    # "off" (plain HTTP), "self-signed" (a certificate made on first start, kept in the data directory),
    # or { cert = "...", key = "..." }.
    tls: Literal["off", "self-signed"] | TlsFiles = "off"
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12.0  # a login lasts this long

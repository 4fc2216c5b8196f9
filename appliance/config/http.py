"""The `[http]` section: where the status page listens, who must log in, its TLS, the proxies it trusts
and the Host names it answers to."""

from __future__ import annotations

import ipaddress
import re
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
LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # one part of a DNS name
HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){LABEL}(\.{LABEL})*\.?$")


def check_network(value: str) -> str:
    """`value` if it is an IP address or network (10.0.0.5, 10.0.0.0/24, fd00::/8), else ValueError."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"expected an IP address or network such as 10.0.0.5 or 10.0.0.0/24, got {value!r}"
        ) from None
    return value


def check_host_name(value: str) -> str:
    """`value` if it is a DNS name (or "*", any name), else ValueError."""
    if value != "*" and not HOST_NAME.match(value):
        raise ValueError(f'expected a host name such as box.plant.example (or "*": any), got {value!r}')
    return value


Network = Annotated[str, AfterValidator(check_network)]
HostName = Annotated[str, AfterValidator(check_host_name)]


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
    # Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed; from any other address
    # those headers are ignored, loopback included.
    trusted_proxies: Annotated[list[Network], Field(max_length=64)] = []
    # Host names the page answers to besides the box's own (localhost, its host name, NAME.local, its
    # FQDN) and any IP address; another name is refused (DNS rebinding). "*" lets any name in.
    hosts: Annotated[list[HostName], Field(max_length=64)] = []

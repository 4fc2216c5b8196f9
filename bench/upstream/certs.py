"""Throwaway certificates for the bench's TLS links: a CA, a server and a client, from openssl."""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DAYS = 30
# EC P-256: quick to make, and every TLS stack here speaks it.
NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = bench upstream CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
# Both leaves may serve and connect: the receiver shows one certificate to an HTTPS client and to a broker.
LEAF_EXTENSIONS = """\
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {names}
"""


@dataclass(frozen=True, slots=True)
class Certificates:
    """Paths of the PEM files in one folder."""

    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


class CertificateError(RuntimeError):
    """openssl refused; the message holds its own words."""


def make_certificates(
    folder: Path, hosts: Sequence[str] = (), client_name: str = "appliance", loopback: bool = True
) -> Certificates:
    """A new CA, a server certificate for 127.0.0.1, localhost (unless not `loopback`) and `hosts` (IPs or
    DNS names), and a client certificate named `client_name`, all signed by the CA and valid for DAYS
    days."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = Certificates(*(folder / name for name in (
        "ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")))  # fmt: skip
    config = folder / "ca.cnf"
    config.write_text(CA_CONFIG)
    _openssl("req", "-x509", *NEW_KEY, "-config", str(config), "-days", str(DAYS),
             "-keyout", str(paths.ca_key), "-out", str(paths.ca))  # fmt: skip
    server_names = [*(["IP:127.0.0.1", "DNS:localhost"] if loopback else []), *(_alt_name(h) for h in hosts)]
    _leaf(paths, "bench upstream", server_names, paths.server_cert, paths.server_key)
    _leaf(paths, client_name, [f"DNS:{client_name}"], paths.client_cert, paths.client_key)
    return paths


def _alt_name(host: str) -> str:
    try:
        return f"IP:{ipaddress.ip_address(host)}"
    except ValueError:
        return f"DNS:{host}"


def _leaf(paths: Certificates, name: str, alt_names: list[str], cert: Path, key: Path) -> None:
    request = cert.with_suffix(".csr")
    extensions = cert.with_suffix(".ext")
    extensions.write_text(LEAF_EXTENSIONS.format(names=", ".join(alt_names)))
    _openssl("req", "-new", *NEW_KEY, "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request))
    _openssl("x509", "-req", "-in", str(request), "-CA", str(paths.ca), "-CAkey", str(paths.ca_key),
             "-set_serial", str(secrets.randbits(63)), "-days", str(DAYS), "-out", str(cert),
             "-extfile", str(extensions), "-extensions", "leaf")  # fmt: skip
    request.unlink()


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {done.stderr.strip()}")

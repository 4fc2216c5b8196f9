"""HTTPS for the status page: a self-signed certificate made on first start and kept in the data
directory (the key readable by the owner only), or the user's own certificate files."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.ops.secrets import create_secret

FOLDER = "https"
CERT, KEY = "cert.pem", "key.pem"
VALID_DAYS = 3650  # a box on a factory floor outlives short certificates; browsers warn either way


def self_signed(data_dir: Path, device: str, listen_host: str) -> tuple[Path, Path, bool]:
    """The certificate and key files, made now if there are none; True if they were made now."""
    folder = data_dir / FOLDER
    cert, key = folder / CERT, folder / KEY
    if cert.exists() and key.exists():
        return cert, key, False
    folder.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_names(device, listen_host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for old in (key, cert):  # half a pair, or links someone planted: replaced, never written through
        old.unlink(missing_ok=True)
    create_secret(key, pem)
    fd = os.open(cert, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key, True


def fingerprint(cert: Path) -> str:
    """The certificate's SHA-256 fingerprint, as browsers show it (AB:CD:...), to check it by."""
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    return ":".join(f"{byte:02X}" for byte in loaded.fingerprint(hashes.SHA256()))


def _names(device: str, listen_host: str) -> list[x509.GeneralName]:
    """The names a browser may reach the box by: its device id and host name, localhost, loopback, and
    the address it listens on."""
    dns = {device, socket.gethostname(), "localhost"}
    addresses = {"127.0.0.1", "::1"}
    try:
        if not ipaddress.ip_address(listen_host).is_unspecified:  # 0.0.0.0 and :: name no address
            addresses.add(listen_host)
    except ValueError:
        dns.add(listen_host)
    general: list[x509.GeneralName] = [x509.DNSName(n) for n in sorted(dns) if n]
    general += [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)]
    return general

"""TLS to the upstream: one client context for both transports. It checks the upstream's certificate against
`server_name` (default: the host connected to, which is also what SNI says), shows our client certificate
with its key read as a secret file, and checks `pin_sha256` at every handshake, before either transport
sends a byte (no request, no MQTT CONNECT with its password).

Both http.client and paho wrap their socket with the context's `wrap_socket(sock, server_hostname=HOST)`
and then complete the handshake with `do_handshake()` (http.client inside `wrap_socket`, paho after it), so
the name to check is replaced in `wrap_socket` and the pin is checked in the socket class's `do_handshake`:
no transport has to know, and neither library is patched.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from pathlib import Path

from appliance.config.sync import TlsSettings, pin_digest
from appliance.ops.secrets import open_secret


class PinMismatch(ssl.SSLCertVerificationError):
    """The upstream's certificate passed the CA's check but matches none of the pins."""


class _PinnedSocket(ssl.SSLSocket):
    """An SSLSocket whose handshake also checks the context's pins, and tells the context why it failed
    (paho only says that a connection failed, not why)."""

    def do_handshake(self, block: bool = False) -> None:
        context = self.context
        assert isinstance(context, UpstreamContext)
        try:
            super().do_handshake(block)
            context.check(self.getpeercert(binary_form=True))
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # a non-blocking handshake in progress
        except ssl.SSLError as exc:
            context.failure = f"TLS: {exc}"
            self.close()  # not one byte more to this peer (paho would leave it open)
            raise


class UpstreamContext(ssl.SSLContext):
    """A client context that checks `server_name` and `pins` (see the module's docstring)."""

    server_name: str | None = None
    pins: frozenset[bytes] = frozenset()
    failure: str | None = None  # why the last handshake failed; a transport clears it before connecting
    sslsocket_class = _PinnedSocket

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            self.server_name or server_hostname,
            session,
        )

    def check(self, der: bytes | None) -> None:
        """PinMismatch unless the certificate `der` (DER) matches a pin, if there are any."""
        if not self.pins:
            return
        if der is None:
            raise PinMismatch("the upstream showed no certificate to check against pin_sha256")
        key = spki_sha256(der)
        if key not in self.pins and hashlib.sha256(der).digest() not in self.pins:
            seen = base64.b64encode(key).decode()
            raise PinMismatch(f"the upstream's certificate matches no pin_sha256 (its key's is {seen})")


def spki_sha256(der: bytes) -> bytes:
    """SHA-256 of the certificate's SubjectPublicKeyInfo: its key's pin, which a renewal with the same key
    keeps (as HPKP and curl's --pinnedpubkey take it)."""
    from cryptography import x509  # only for a box that pins
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = x509.load_der_x509_certificate(der).public_key()
    return hashlib.sha256(public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()


def tls_context(settings: TlsSettings, folder: Path) -> UpstreamContext:
    """The client context for `settings`; relative file names start at `folder`. SecretFileError if the
    client key is not the service user's alone (appliance/ops/secrets.py)."""
    context = UpstreamContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the certificate and the name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ca is not None:
        context.load_verify_locations(cafile=str(folder / settings.ca))
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if settings.cert is not None and settings.key is not None:
        with open_secret(folder / settings.key, "the upstream's TLS client key") as fd:
            # OpenSSL reads the very file that was checked, through its descriptor
            context.load_cert_chain(str(folder / settings.cert), f"/proc/self/fd/{fd}")
    context.server_name = settings.server_name
    context.pins = frozenset(pin_digest(pin) for pin in settings.pin_sha256)
    return context

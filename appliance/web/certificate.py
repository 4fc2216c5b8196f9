"""Which certificate the status page serves, as [http] tls says: none, the user's files, or the box's own
self-signed one (made in the data directory on first start: appliance/web/tls.py, loaded only then)."""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.config.models import HttpSettings, split_host_port
from appliance.ops.secrets import check_secret
from appliance.web.access import is_loopback_host

log = logging.getLogger(__name__)


def page_certificate(
    http: HttpSettings, listen_host: str, device: str, config_dir: Path, data_dir: Path
) -> tuple[Path, Path, str] | None:
    """(certificate, key, its SHA-256 fingerprint), or None for plain HTTP (with a warning unless the page
    listens on loopback only). FileNotFoundError names a configured file that is not there; SecretFileError
    a key that is not the service user's alone (appliance/ops/secrets.py)."""
    if http.tls == "off":
        if not is_loopback_host(listen_host):
            log.warning(
                "the status page listens on %s without TLS: logins cross the network in clear;"
                ' set [http] tls = "self-signed" (docs/web.md)',
                listen_host,
            )
        return None
    from appliance.web.tls import fingerprint, self_signed  # cryptography: only for a box with HTTPS

    if http.tls == "self-signed":
        cert, key, made = self_signed(data_dir, device, split_host_port(http.listen)[0])
        if made:
            log.info("made a self-signed HTTPS certificate in %s", cert.parent)
    else:
        cert, key = (config_dir / name for name in (http.tls.cert, http.tls.key))
        if not cert.is_file():
            raise FileNotFoundError(f"http.tls: {cert} does not exist")
    check_secret(key, "the status page's TLS key")  # read by name by the server: checked here
    return cert, key, fingerprint(cert)

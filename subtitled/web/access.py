"""Who may ask the daemon to work: a client on a trusted network, or one that sends the API
key (in the X-Api-Key header, or as ?apikey= where a webhook cannot set headers). Keys and
tokens are read from files only, never from the YAML."""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from subtitled.config import HttpSettings
from subtitled.errors import ConfigError

# The name to give the key in the unit's LoadCredential=.
CREDENTIAL_NAME = "subtitled-api-key"

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def api_key_file(settings: HttpSettings, environ: Mapping[str, str]) -> Path | None:
    """http.api_key_file, else systemd's credential, if the unit passes one."""
    return secret_file(settings.api_key_file, CREDENTIAL_NAME, environ)


def secret_file(configured: Path | None, credential: str,
                environ: Mapping[str, str]) -> Path | None:
    """The file the configuration names, else systemd's credential of that name
    (LoadCredential=), if the unit passes one."""
    if configured is not None:
        return configured
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / credential).is_file():
        return Path(credentials) / credential
    return None


def read_api_key(path: Path | None) -> str | None:
    if path is None:
        return None
    key = _secret(path, "the API key", "http")
    if len(key) < 16:
        raise ConfigError(f"the API key in {path} must be one word of at least 16 "
                          "characters (`openssl rand -hex 24` makes one)", stage="http")
    return key


def read_token(path: Path) -> str:
    """A media server's token: one word, alone in its file."""
    return _secret(path, "the token", "config")


def _secret(path: Path, what: str, stage: str) -> str:
    """One word of plain ASCII, alone in its file (a leading BOM is dropped)."""
    try:
        secret = path.read_text(encoding="utf-8-sig").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {what} from {path}: "
                          f"{getattr(err, 'strerror', None) or err}", stage=stage) from err
    if not secret or any(c.isspace() for c in secret) or not secret.isascii():
        raise ConfigError(f"{what} in {path} must be one word of plain ASCII", stage=stage)
    return secret


@dataclass(frozen=True)
class Access:
    trusted: tuple[_Network, ...]
    key: str | None

    @classmethod
    def of(cls, settings: HttpSettings, environ: Mapping[str, str] = os.environ) -> Access:
        return cls(tuple(ipaddress.ip_network(n) for n in settings.trusted_networks),
                   read_api_key(api_key_file(settings, environ)))

    def refusal(self, client: str | None, headers: Mapping[str, str],
                query: Mapping[str, str]) -> tuple[int, str] | None:
        """None when the client may go on; else the status and the one-line reason."""
        if client is not None and self._trusted(client):
            return None
        given = headers.get("x-api-key") or query.get("apikey")
        if self.key is None:
            return 403, (f"{client} is not in http.trusted_networks, and no API key is "
                         "set (http.api_key_file)")
        if not given:
            return 401, "an API key is needed (header X-Api-Key, or ?apikey=)"
        if not hmac.compare_digest(given.encode(), self.key.encode()):
            return 403, "wrong API key"
        return None

    def _trusted(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:  # a Unix socket's peer, or a name: not an address we trust
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.trusted)

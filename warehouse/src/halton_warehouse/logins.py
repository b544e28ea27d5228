"""The embedded warehouse's two logins, made on its first start and kept (0600) in its data directory.

`halton` may do anything our own components do (migrations, ingestion, dbt, Dagster); `analyst` may only
read (the server enforces it). Every client the project starts gets the URL with the right login; a person
reads them with `halton-warehouse credentials`. To change a password, edit the file and restart the server.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

CREDENTIALS_FILE = "credentials.json"
ADMIN_USER = "halton"
READER_USER = "analyst"


class CredentialsError(RuntimeError):
    """The credentials file cannot be read or is not what the server wrote."""


@dataclass(frozen=True)
class Login:
    user: str
    password: str


@dataclass(frozen=True)
class WarehouseLogins:
    admin: Login
    reader: Login

    @classmethod
    def generate(cls) -> WarehouseLogins:
        return cls(
            admin=Login(ADMIN_USER, secrets.token_urlsafe(24)),
            reader=Login(READER_USER, secrets.token_urlsafe(24)),
        )

    def to_json(self) -> str:
        return json.dumps(
            {role: {"user": login.user, "password": login.password} for role, login in self._roles()},
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, source: Path) -> WarehouseLogins:
        try:
            data = json.loads(text)
            logins = {
                role: Login(str(data[role]["user"]), str(data[role]["password"]))
                for role in ("admin", "reader")
            }
        except (ValueError, KeyError, TypeError) as error:
            raise CredentialsError(
                f"{source} is not a warehouse credentials file ({error}): delete it and restart the warehouse "
                "server to make new logins"
            ) from None
        if logins["admin"].user == logins["reader"].user:
            raise CredentialsError(f"{source}: the admin and reader logins must have different user names")
        if not all(login.user and login.password for login in logins.values()):
            raise CredentialsError(f"{source}: every login needs a user name and a password")
        return cls(**logins)

    def _roles(self) -> tuple[tuple[str, Login], ...]:
        return (("admin", self.admin), ("reader", self.reader))


def credentials_path(data_dir: Path) -> Path:
    return Path(data_dir) / CREDENTIALS_FILE


def read_logins(data_dir: Path) -> WarehouseLogins | None:
    """The logins of the embedded warehouse at `data_dir`, or None when it never started there."""
    path = credentials_path(data_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return WarehouseLogins.from_json(text, path)


def load_or_create(data_dir: Path) -> WarehouseLogins:
    """The logins at `data_dir`, made (random, owner-only) if there are none yet."""
    existing = read_logins(data_dir)
    if existing is not None:
        _make_owner_only(credentials_path(data_dir))
        return existing
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    logins = WarehouseLogins.generate()
    path = credentials_path(data_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made them first: theirs count
        return load_or_create(data_dir)
    with os.fdopen(fd, "w") as handle:
        handle.write(logins.to_json() + "\n")
    return logins


def with_login(url: str, login: Login) -> str:
    """`url` with `login` as its user and password (replacing any it had)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(login.user, safe='')}:{quote(login.password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _make_owner_only(path: Path) -> None:
    # A copy restored from a backup may have lost its mode; the passwords in it must stay the owner's.
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)

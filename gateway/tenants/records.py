"""A key record: who a key belongs to, what it may use and how much. Stored with the key's SHA-256, never the
key itself; the API shows records without the hash (``KeyView``)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec

from gateway.config.schema import ApiKey

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Limit = Annotated[int, msgspec.Meta(gt=0, le=1_000_000_000)]
Priority = Annotated[int, msgspec.Meta(ge=0, le=7)]
Models = Annotated[tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=200)], ...], msgspec.Meta(max_length=64)]
Source = Literal["config", "api", "env"]


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    name: str
    sha256: str
    models: tuple[str, ...] = ()
    """Models the key may use; empty means all."""
    priority: int = 0
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    expires_at: int | None = None
    created_at: int = 0
    revoked_at: int | None = None
    source: Source = "api"

    @classmethod
    def from_config(cls, key: ApiKey, source: Source = "config") -> KeyRecord:
        return cls(id=key.id or key.name, name=key.name, sha256=key.sha256, models=key.models,
                   priority=key.priority, rpm=key.rpm, tpm=key.tpm, max_concurrent=key.max_concurrent,
                   expires_at=key.expires_at, source=source)

    def refusal(self, now: float | None = None) -> str | None:
        """Why the key cannot be used now (``revoked`` / ``expired``), or None."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and (now if now is not None else time.time()) >= self.expires_at:
            return "expired"
        return None

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models

    @property
    def limited(self) -> bool:
        return bool(self.rpm or self.tpm or self.max_concurrent)

    def view(self) -> KeyView:
        return KeyView(id=self.id, name=self.name, models=list(self.models), priority=self.priority, rpm=self.rpm,
                       tpm=self.tpm, max_concurrent=self.max_concurrent, expires_at=self.expires_at,
                       created_at=self.created_at, revoked_at=self.revoked_at, source=self.source)


class KeyView(msgspec.Struct, kw_only=True, omit_defaults=False):
    """A key as the admin API shows it: never its secret or hash."""

    object: Literal["lockgate.key"] = "lockgate.key"
    id: str
    name: str
    models: list[str]
    priority: int
    rpm: int | None
    tpm: int | None
    max_concurrent: int | None
    expires_at: int | None
    created_at: int
    revoked_at: int | None
    source: Source


class CreatedKey(KeyView, kw_only=True):
    secret: str
    """The key itself: shown once, in the answer to its creation; only its hash is stored."""


class KeyList(msgspec.Struct):
    data: list[KeyView]
    object: Literal["list"] = "list"


class KeyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /v1/lockgate/keys."""

    name: Name
    models: Models = ()
    priority: Priority = 0
    rpm: Limit | None = None
    tpm: Limit | None = None
    max_concurrent: Limit | None = None
    expires_at: Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799)] | None = None


class KeyUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """PATCH /v1/lockgate/keys/{id}: fields present are changed; ``null`` removes a limit or the expiry."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    models: Models | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    rpm: Limit | msgspec.UnsetType | None = msgspec.UNSET
    tpm: Limit | msgspec.UnsetType | None = msgspec.UNSET
    max_concurrent: Limit | msgspec.UnsetType | None = msgspec.UNSET
    expires_at: Annotated[int, msgspec.Meta(ge=0, le=253402300799)] | msgspec.UnsetType | None = msgspec.UNSET

    def apply(self, record: KeyRecord) -> KeyRecord:
        changes = {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not msgspec.UNSET}
        return msgspec.structs.replace(record, **changes)

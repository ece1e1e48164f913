"""Encryption of personal data at rest (AES-256-GCM, from the ``cryptography`` library).

A sealed value is ``v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>``. The key id (the first 8 hex
digits of the key's SHA-256) names the key that sealed it, so keys can be rotated: new values are sealed
with the current key, old ones are opened with any retired key still configured. Each value is bound to
its context (table, column, row key) as associated data, so a sealed value copied into another row or
column does not open.

Keys come from ``TONGBAN_DATA_KEY`` (base64 of 32 bytes; retired keys in ``TONGBAN_DATA_KEYS_RETIRED``,
comma-separated). For the embedded default a key is generated once into ``<data_dir>/data.key``; a
production deployment sets it from its secret store. ``digest`` gives keyed lookup hashes (HMAC-SHA-256)
so that an ID number can be found without storing it in clear; their key (``TONGBAN_LOOKUP_KEY``,
generated into ``<data_dir>/lookup.key`` by default) does not rotate with the data key, because stored
digests must keep matching.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "v1"
_NONCE = 12


class SealError(Exception):
    """A sealed value that cannot be opened: unknown key, damaged, or moved to another context."""


def new_key() -> str:
    """A fresh key as base64 text (what ``TONGBAN_DATA_KEY`` holds)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _decode_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a data key must be base64 text") from exc
    if len(raw) != 32:
        raise ValueError("a data key must be 32 bytes (base64 of 32 random bytes)")
    return raw


def _key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:8]


class Sealer:
    """Seals and opens short values (profile data, form fields) with the current and retired keys."""

    def __init__(self, current: str, retired: Iterable[str] = (), *, lookup_key: str | None = None) -> None:
        raw = _decode_key(current)
        self._current_id = _key_id(raw)
        self._keys = {self._current_id: AESGCM(raw)}
        for text in retired:
            if text.strip():
                old = _decode_key(text)
                self._keys.setdefault(_key_id(old), AESGCM(old))
        # Lookup digests must stay equal across data-key rotations, so they have a key of their own
        # (derived, never used to encrypt); without one they derive from the current data key.
        base = _decode_key(lookup_key) if lookup_key else raw
        self._mac_key = hmac.new(base, b"tongban lookup digest v1", hashlib.sha256).digest()

    @property
    def key_id(self) -> str:
        return self._current_id

    def seal(self, value: str, context: str) -> str:
        nonce = os.urandom(_NONCE)
        body = self._keys[self._current_id].encrypt(nonce, value.encode(), context.encode())
        return f"{_PREFIX}.{self._current_id}.{base64.urlsafe_b64encode(nonce + body).decode()}"

    def open(self, sealed: str, context: str) -> str:
        try:
            prefix, kid, payload = sealed.split(".", 2)
        except ValueError as exc:
            raise SealError("not a sealed value") from exc
        key = self._keys.get(kid)
        if prefix != _PREFIX or key is None:
            raise SealError(f"sealed with an unknown key {kid!r}; configure it in TONGBAN_DATA_KEYS_RETIRED")
        try:
            blob = base64.urlsafe_b64decode(payload)
            return key.decrypt(blob[:_NONCE], blob[_NONCE:], context.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise SealError("the sealed value is damaged or belongs to another record") from exc

    def seal_bytes(self, data: bytes, context: str) -> bytes:
        """Seal a file's bytes: ``v1.<key id>.`` then nonce ‖ ciphertext ‖ tag (binary)."""
        nonce = os.urandom(_NONCE)
        body = self._keys[self._current_id].encrypt(nonce, data, context.encode())
        return f"{_PREFIX}.{self._current_id}.".encode() + nonce + body

    def open_bytes(self, sealed: bytes, context: str) -> bytes:
        head = len(_PREFIX) + 1 + 8 + 1
        kid = sealed[len(_PREFIX) + 1 : head - 1].decode("ascii", "replace")
        key = self._keys.get(kid)
        if not sealed.startswith(_PREFIX.encode() + b".") or key is None:
            raise SealError(f"sealed with an unknown key {kid!r}; configure it in TONGBAN_DATA_KEYS_RETIRED")
        try:
            return key.decrypt(sealed[head : head + _NONCE], sealed[head + _NONCE :], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError("the sealed file is damaged or belongs to another record") from exc

    def needs_reseal(self, sealed: str) -> bool:
        """True when ``sealed`` was made with a retired key (a rotation job re-seals such values)."""
        return sealed.split(".", 2)[1:2] != [self._current_id]

    def digest(self, value: str, purpose: str) -> str:
        """A keyed hash of ``value`` for lookups (equal inputs give equal digests; not reversible)."""
        return hmac.new(self._mac_key, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()

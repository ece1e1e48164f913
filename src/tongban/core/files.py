"""Files on disk under ``<data_dir>/files``, sealed (AES-256-GCM, :mod:`tongban.core.crypto`).

A file is written to a temporary name, flushed to disk and renamed into place, so a crash leaves either
the whole file or a temporary one (swept) — never a half-written file under a real name. The database row
that refers to a file is committed after the file is in place; files without a row are swept after a
grace period (:meth:`FileStore.sweep`), so a crash between the two leaves no orphan for long.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from tongban.core.crypto import Sealer

_KEY = re.compile(r"^[0-9a-f]{32}$")


def new_file_key() -> str:
    return secrets.token_hex(16)


class FileStore:
    def __init__(self, root: Path, sealer: Sealer) -> None:
        self.root = root
        self._sealer = sealer

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError("not a file key")
        return self.root / key[:2] / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(self._sealer.seal_bytes(data, f"file:{key}"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def get(self, key: str) -> bytes:
        return self._sealer.open_bytes(self._path(key).read_bytes(), f"file:{key}")

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def stored(self) -> Iterator[tuple[str, dt.datetime]]:
        """Every stored file's key with its modification time (temporary files excluded)."""
        if not self.root.exists():
            return
        for path in self.root.glob("*/*"):
            if _KEY.match(path.name):
                yield path.name, dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)

    def sweep(self, known: Callable[[str], bool], *, older_than: dt.datetime) -> int:
        """Delete files no row refers to (``known`` says which do) and stale temporary files."""
        removed = 0
        for key, mtime in list(self.stored()):
            if mtime < older_than and not known(key):
                self.delete(key)
                removed += 1
        if self.root.exists():
            for tmp in self.root.glob("*/.*.tmp"):
                if dt.datetime.fromtimestamp(tmp.stat().st_mtime, dt.UTC) < older_than:
                    tmp.unlink(missing_ok=True)
                    removed += 1
        return removed

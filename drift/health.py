"""One small HTTP server for ``/metrics``, ``/healthz`` (liveness) and ``/readyz`` (readiness).

``/healthz`` answers 200 as long as the process serves requests: a stuck or
dead process stops answering and is restarted by its supervisor.
``/readyz`` answers 200 only once every check has passed (config loaded,
baselines loaded, dataflow running) and 503 with the missing checks
otherwise, again 503 once the job is stopping, and 503 while a dependency the
running job needs (Kafka) cannot be reached: then the document has a ``problem``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

READY_CHECKS = ("config", "baselines", "flow")
"""What must have happened before the job is ready, in order."""


class Health:
    """Thread-safe readiness state shared by the job and the HTTP server."""

    def __init__(self, checks: tuple[str, ...] = READY_CHECKS) -> None:
        self._lock = threading.Lock()
        self._passed: dict[str, bool] = {name: False for name in checks}
        self._stopping = False
        self._problems: dict[str, str] = {}

    def passed(self, check: str) -> None:
        """Mark ``check`` (one of the names given at construction) as done."""
        with self._lock:
            if check not in self._passed:
                raise KeyError(f"unknown readiness check {check!r}; known: {sorted(self._passed)}")
            self._passed[check] = True

    def stopping(self) -> None:
        """The job drains and exits: stop reporting ready."""
        with self._lock:
            self._stopping = True

    def problem(self, name: str, text: str | None) -> None:
        """Report (``text``) or clear (None) a problem that makes the job not ready, e.g.
        ``problem("kafka", "cannot reach Kafka at ...")``; the checks keep their state."""
        with self._lock:
            if text is None:
                self._problems.pop(name, None)
            else:
                self._problems[name] = text

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Whether the job is ready, and a document that says why (not)."""
        with self._lock:
            checks = dict(self._passed)
            stopping = self._stopping
            problems = dict(self._problems)
        ready = all(checks.values()) and not stopping and not problems
        document: dict[str, object] = {"ready": ready, "stopping": stopping, "checks": checks}
        if problems:
            document["problems"] = problems
        return ready, document


class _Handler(BaseHTTPRequestHandler):
    health: Health

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._reply(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            ready, document = self.health.readiness()
            self._reply(200 if ready else 503, orjson.dumps(document) + b"\n", "application/json")
        else:
            self._reply(404, b"not found; try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        # Probes hit these paths every few seconds; their access log is noise.
        return


def serve(host: str, port: int, health: Health) -> ThreadingHTTPServer:
    """Serve the three paths from a daemon thread; ``server.server_port`` is the bound port.

    Port 0 picks a free port (tests); the job's config sets a fixed one.
    """
    handler = type("HealthHandler", (_Handler,), {"health": health})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="drift-http", daemon=True)
    thread.start()
    return server

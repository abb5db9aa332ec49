#!/usr/bin/env python3
"""A real single-node Apache Kafka broker (KRaft) for development and tests.

Why a real broker: the connectors and flows speak the Kafka protocol through
librdkafka, and fakes drift from what a broker actually does with consumer
groups, partition assignment and offsets. The broker is assembled from Maven
Central jars (see ``pom.xml`` next to this file), cached outside the
repository, and run with the local ``java``; no Docker and no Kafka download
from apache.org are needed.

Library use::

    with KafkaBroker() as broker:
        create_topics(broker.bootstrap, ["events"], partitions=3)
        ...

Script use::

    python deploy/kafka/broker.py run     # foreground broker, Ctrl-C stops it
    python deploy/kafka/broker.py fetch   # only download the jars

This file depends on the standard library and ``confluent_kafka`` only, so it
can be loaded by path (tests do that) without installing the project.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self

__all__ = [
    "BrokerError",
    "KafkaBroker",
    "MissingToolError",
    "check_bootstrap",
    "create_topics",
    "default_cache_dir",
    "ensure_jars",
    "jars_ready",
    "kafka_version",
]

POM_PATH = Path(__file__).resolve().with_name("pom.xml")
CACHE_ENV = "DRIFT_KAFKA_CACHE"

# Heap and collector for a development broker: small enough for a laptop or a
# two-core CI runner, large enough for test traffic.
JVM_FLAGS = ("-Xms128m", "-Xmx512m", "-XX:+UseG1GC")

# How many lines of the broker's own log an error message carries, so a failed
# start can be diagnosed from the exception alone.
LOG_TAIL_LINES = 60

# Attempts when another process grabs one of the preselected ports between
# choosing it and the JVM binding it.
PORT_ATTEMPTS = 3

# Each broker lives in a temporary folder with this prefix; OWNER_FILE in it
# holds the pid of the Python process responsible for removing it.
WORKDIR_PREFIX = "drift-kafka-"
OWNER_FILE = "owner.pid"

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class BrokerError(RuntimeError):
    """The development Kafka broker could not be fetched, started or reached."""


class MissingToolError(BrokerError):
    """A command-line tool the broker needs (``java`` or ``mvn``) is not on PATH."""


# --------------------------------------------------------------------------
# Jars
# --------------------------------------------------------------------------


def kafka_version(pom: Path = POM_PATH) -> str:
    """Return the Kafka version pinned in ``pom.xml``.

    The pom is the single place the version is written, so the cache folder
    name follows it and a version bump never reuses stale jars.
    """
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise BrokerError(f"cannot read the Kafka version from {pom}: {exc}") from exc
    node = root.find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise BrokerError(
            f"{pom} has no <properties><kafka.version>; expected e.g. <kafka.version>4.1.1</kafka.version>"
        )
    return (node.text or "").strip()


def default_cache_dir() -> Path:
    """Return the folder that holds the broker jars.

    ``$DRIFT_KAFKA_CACHE`` (the jar folder itself) wins so CI can point at a
    persisted cache; otherwise ``~/.cache/drift/kafka-<version>/libs``.
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path.home() / ".cache" / "drift" / f"kafka-{kafka_version()}" / "libs"


def _require_tool(name: str, purpose: str) -> str:
    """Return the absolute path of ``name`` or explain which tool is missing and why it is needed."""
    found = shutil.which(name)
    if found is None:
        raise MissingToolError(
            f"'{name}' was not found on PATH; it is needed to {purpose}. "
            f"Install it (Java 17+ for 'java', Apache Maven 3.6+ for 'mvn') and retry."
        )
    return found


def _jars_complete(libs: Path, version: str) -> bool:
    """Whether ``libs`` holds the broker and its log binding.

    Downloads land in the folder by one atomic rename, so the presence of the
    two jars that matter means the whole set is there.
    """
    return (libs / f"kafka_2.13-{version}.jar").is_file() and any(libs.glob("log4j-slf4j-impl-*.jar"))


def _resolve_cache_dir(cache_dir: Path | str | None) -> Path:
    return Path(cache_dir).expanduser().resolve() if cache_dir is not None else default_cache_dir()


def jars_ready(cache_dir: Path | str | None = None) -> bool:
    """Whether :func:`ensure_jars` would return at once, without running Maven.

    Lets callers warn before a first, possibly long, download.
    """
    return _jars_complete(_resolve_cache_dir(cache_dir), kafka_version())


def ensure_jars(cache_dir: Path | str | None = None) -> Path:
    """Return a folder with every jar the broker needs, fetching them with Maven if absent.

    The download goes into a temporary sibling folder that is renamed into
    place only when Maven succeeded, so an interrupted fetch never leaves a
    half-filled cache that later runs would trust. Concurrent callers (e.g.
    several test processes) are safe: the first rename wins and the others
    discard their copy.
    """
    version = kafka_version()
    libs = _resolve_cache_dir(cache_dir)
    _require_tool("java", "run the Kafka broker")
    if _jars_complete(libs, version):
        return libs

    mvn = _require_tool("mvn", "download the Kafka broker jars from Maven Central")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{libs.name}-partial-", dir=libs.parent))
    print(f"fetching Kafka broker jars with Maven into {libs} ...", file=sys.stderr, flush=True)
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM_PATH),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    try:
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            raise BrokerError(
                f"Maven failed to fetch the Kafka jars (exit status {result.returncode}).\n"
                f"command: {' '.join(command)}\n"
                "last output lines:\n" + "\n".join(output[-40:])
            )
        if not _jars_complete(staging, version):
            found = sorted(p.name for p in staging.glob("*.jar"))
            raise BrokerError(
                f"Maven finished but the jar folder is incomplete: expected kafka_2.13-{version}.jar and "
                f"log4j-slf4j-impl-*.jar, received {len(found)} jars: {', '.join(found) or 'none'}"
            )
        if libs.exists() and not _jars_complete(libs, version):
            # An incomplete folder left by hand or by an older layout; replace it.
            shutil.rmtree(libs, ignore_errors=True)
        try:
            staging.rename(libs)
        except OSError:
            if not _jars_complete(libs, version):
                raise
            # Another process finished first; its copy is as good as ours.
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"Maven did not finish fetching the Kafka jars within {exc.timeout:.0f}s") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    count = len(list(libs.glob("*.jar")))
    print(f"fetched {count} Kafka broker jars into {libs}", file=sys.stderr, flush=True)
    return libs


# --------------------------------------------------------------------------
# Broker process
# --------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    The ports must be known before the broker starts: port 0 in
    server.properties would be advertised to clients as port 0. All sockets
    are held open together so the kernel cannot hand out the same port twice.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _cluster_id() -> str:
    """Return a KRaft cluster id: 16 random bytes, base64url, no padding.

    An id starting with '-' would be parsed as an option by StorageTool.
    """
    while True:
        value = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")
        if not value.startswith("-"):
            return value


def _read_text(path: Path) -> str:
    """Return a log file's text, or "" when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of a text file, or a note why there are none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no broker log at {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(broker log {path} is empty)"


def _first_errors(path: Path, limit: int = 5) -> str:
    """Return the first ERROR/FATAL lines of a broker log.

    The root cause of a failed start (a port in use, a bad setting) is logged
    once, early, and is followed by many lines of shutdown; the tail alone
    often misses it.
    """
    lines = _read_text(path).splitlines()
    found: list[str] = []
    for index, line in enumerate(lines):
        if "] ERROR " not in line and "] FATAL " not in line:
            continue
        found.append(line)
        # The exception message on the next line usually names the cause.
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if following and not following.startswith(("[", "\t", " ")):
            found.append("    " + following)
        if len(found) >= 2 * limit:
            break
    return "\n".join(found)


def _tcp_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _admin_config(bootstrap: str) -> dict[str, Any]:
    """AdminClient settings for probing a broker that may not be up yet.

    The short reconnect backoff keeps librdkafka from backing off for seconds
    while the broker boots, and the no-op error callback keeps expected
    "connection refused" noise off stderr; failures surface as exceptions.
    """
    return {
        "bootstrap.servers": bootstrap,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 500,
        "log_level": 2,
        "error_cb": lambda _err: None,
    }


def check_bootstrap(bootstrap: str, timeout: float = 15.0) -> int:
    """Return how many brokers answer metadata at ``bootstrap`` within ``timeout`` seconds.

    A TCP connect is not enough: a KRaft broker accepts connections before it
    can serve metadata, and only metadata proves it can take topics.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_admin_config(bootstrap))
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while True:
        try:
            metadata = admin.list_topics(timeout=2)
            if metadata.brokers:
                return len(metadata.brokers)
            last_error = "metadata answered with no brokers"
        except KafkaException as exc:
            last_error = str(exc)
        if time.monotonic() >= deadline:
            raise BrokerError(
                f"Kafka at {bootstrap} did not answer a metadata request with brokers within {timeout:.0f}s; "
                f"last error: {last_error}"
            )
        time.sleep(0.2)


def _server_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """server.properties for one combined broker+controller node on 127.0.0.1.

    Every internal topic gets replication factor 1 (and min ISR 1): with the
    default of 3 on a single node, consumer groups and transactions never work.
    """
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Consumers in tests join alone; waiting for more members only adds latency.
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


_LOG4J2_PROPERTIES = """\
# Broker log for development and tests: everything at INFO to stdout, which
# KafkaBroker redirects into broker.log in the broker's temporary folder.
status = warn
name = drift-kafka-broker
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = STDOUT
# One line per request at INFO would drown the useful lines.
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class KafkaBroker:
    """One single-node KRaft Kafka broker in a temporary folder, for as long as it is needed.

    Each instance gets fresh ports, a fresh cluster id and an empty data
    folder, so brokers never share state between runs or between parallel
    sessions. The JVM runs in its own session (Ctrl-C in a terminal reaches
    only Python, which then stops the broker in order) and is stopped at
    interpreter exit, and also when the Python process dies without running
    exit handlers where ``setpriv`` can set a parent-death signal.
    """

    def __init__(
        self,
        libs_dir: Path | str | None = None,
        *,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare a broker; nothing runs until :meth:`start`.

        ``libs_dir`` is the jar folder (fetched with :func:`ensure_jars` when
        omitted). ``properties`` overrides or extends server.properties, e.g.
        ``{"auto.create.topics.enable": "false"}``.
        """
        self._libs_dir = Path(libs_dir).expanduser().resolve() if libs_dir is not None else None
        self._overrides = dict(properties or {})
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._port: int | None = None
        self._broker_command: list[str] = []
        self._launched_at = 0.0
        self.cluster_id: str | None = None
        self.startup_seconds: float | None = None
        """Seconds from launching the JVM until the broker answered metadata."""

    # -- public API ---------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the PLAINTEXT listener, for ``bootstrap.servers``."""
        if self._port is None or self._process is None:
            raise BrokerError("the Kafka broker is not running; call start() or use it as a context manager")
        return f"127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path | None:
        """The broker's own log file while it exists (removed by :meth:`stop`)."""
        return self._workdir / "broker.log" if self._workdir is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker JVM is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 90.0) -> Self:
        """Format storage, launch the JVM and return once the broker answers metadata.

        A start that fails because another process took a preselected port in
        the meantime is retried with new ports. Raises :class:`BrokerError`
        with the broker log's first errors and tail when the JVM exits early
        or is not ready within ``timeout`` seconds; the broker is stopped and
        its folder removed before the error propagates.
        """
        if self._process is not None:
            raise BrokerError(f"the Kafka broker is already running at {self.bootstrap}")
        java = _require_tool("java", "run the Kafka broker")
        libs = self._libs_dir if self._libs_dir is not None else ensure_jars()
        if not any(libs.glob("*.jar")):
            raise BrokerError(f"no jars in {libs}; expected the folder filled by ensure_jars()")
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        try:
            for attempt in range(1, PORT_ATTEMPTS + 1):
                self._launch(java, libs, deadline)
                try:
                    self._wait_ready(deadline)
                    return self
                except BrokerError:
                    log = self.log_path
                    port_clash = log is not None and "Address already in use" in _read_text(log)
                    if not (port_clash and attempt < PORT_ATTEMPTS):
                        raise
                    self._terminate()
                    self._remove_workdir()
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def restart(self, timeout: float = 90.0, down_for: float = 0.0) -> Self:
        """Stop the broker JVM (SIGTERM) and start it again on the same ports and data.

        For tests of clients that must survive a broker restart: topics,
        messages and committed offsets are kept, and ``bootstrap`` does not
        change. ``down_for`` seconds pass between the stop and the new start.
        """
        if self._process is None or self._workdir is None:
            raise BrokerError("the Kafka broker is not running; call start() first")
        self._terminate()
        if down_for > 0:
            time.sleep(down_for)
        deadline = time.monotonic() + timeout
        try:
            self._spawn("ab")
            self._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def wait(self) -> int:
        """Block until the broker JVM exits on its own and return its exit status.

        For foreground use: a broker that dies while serving should end the
        command that runs it rather than leave clients talking to nothing.
        """
        if self._process is None:
            raise BrokerError("the Kafka broker is not running; call start() first")
        return self._process.wait()

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 30 s) and delete its folder.

        Safe to call more than once and from an exit handler.
        """
        self._terminate()
        self._remove_workdir()
        self._port = None
        atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at 127.0.0.1:{self._port}" if self.running else "stopped"
        return f"KafkaBroker({state})"

    # -- internals ----------------------------------------------------------

    def _launch(self, java: str, libs: Path, deadline: float) -> None:
        """Write the configuration, format the storage and start the JVM in a fresh folder."""
        _remove_stale_workdirs()
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        self._workdir = workdir
        (workdir / OWNER_FILE).write_text(str(os.getpid()), encoding="utf-8")
        data_dir = workdir / "data"
        logs_dir = workdir / "logs"
        data_dir.mkdir()
        logs_dir.mkdir()
        port, controller_port = _free_ports(2)
        properties = _server_properties(data_dir, port, controller_port)
        properties += "".join(f"{key}={value}\n" for key, value in self._overrides.items())
        server_properties = workdir / "server.properties"
        server_properties.write_text(properties, encoding="utf-8")
        log4j = workdir / "log4j2.properties"
        log4j.write_text(_LOG4J2_PROPERTIES, encoding="utf-8")
        self.cluster_id = _cluster_id()

        jvm = [
            java,
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={logs_dir}",
            "-cp",
            str(libs / "*"),
        ]
        format_command = [
            *jvm,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id,
            "-c",
            str(server_properties),
        ]
        budget = max(deadline - time.monotonic(), 1.0)
        try:
            formatted = subprocess.run(
                format_command,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=budget,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"formatting the Kafka storage did not finish within {budget:.0f}s") from exc
        if formatted.returncode != 0:
            output = (formatted.stdout + formatted.stderr).strip().splitlines()
            raise BrokerError(
                f"formatting the Kafka storage failed (exit status {formatted.returncode}).\n"
                f"command: {' '.join(format_command)}\n"
                "last output lines:\n" + "\n".join(output[-LOG_TAIL_LINES:])
            )

        self._broker_command = [*jvm, "kafka.Kafka", str(server_properties)]
        self._spawn("wb")
        self._port = port

    def _spawn(self, log_mode: str) -> None:
        """Start the broker JVM on the prepared folder (a fresh log, or appended to on restart)."""
        workdir = self._workdir
        assert workdir is not None and self._broker_command
        self._log_handle = open(workdir / "broker.log", log_mode)  # noqa: SIM115 - closed in _terminate()
        self._process = subprocess.Popen(
            [*_parent_death_prefix(), *self._broker_command],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._launched_at = time.monotonic()

    def _wait_ready(self, deadline: float) -> None:
        """Block until the broker answers metadata with brokers, or raise with the log tail."""
        assert self._process is not None and self._port is not None
        log = self.log_path
        assert log is not None

        def failure(reason: str) -> BrokerError:
            errors = _first_errors(log)
            first = f"\n--- first errors in {log} ---\n{errors}" if errors else ""
            return BrokerError(f"{reason}{first}\n--- last lines of {log} ---\n{_tail(log)}")

        # Wait for the listener first: cheap, and it keeps librdkafka from
        # logging connection failures while the JVM boots.
        while not _tcp_open("127.0.0.1", self._port):
            code = self._process.poll()
            if code is not None:
                raise failure(f"the Kafka broker exited with status {code} before opening port {self._port}")
            if time.monotonic() >= deadline:
                raise failure(f"the Kafka broker did not open port {self._port} in time")
            time.sleep(0.1)

        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(_admin_config(f"127.0.0.1:{self._port}"))
        last_error = "no answer"
        while True:
            code = self._process.poll()
            if code is not None:
                raise failure(f"the Kafka broker exited with status {code} while starting")
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    self.startup_seconds = time.monotonic() - self._launched_at
                    return
                last_error = "metadata answered with no brokers"
            except KafkaException as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                raise failure(
                    f"the Kafka broker at 127.0.0.1:{self._port} did not answer metadata with brokers in time; "
                    f"last error: {last_error}"
                )
            time.sleep(0.2)

    def _terminate(self) -> None:
        """Stop the JVM: SIGTERM for an orderly shutdown, SIGKILL if it takes over 30 s."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def _remove_workdir(self) -> None:
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _remove_stale_workdirs() -> None:
    """Delete broker folders left behind by Python processes that no longer exist.

    A process killed outright (SIGKILL, ``os._exit``) cannot remove its
    broker's folder; its broker is gone too (parent-death signal), so the
    folder is only disk space.
    """
    for candidate in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((candidate / OWNER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(candidate, ignore_errors=True)
        except OSError:
            continue  # alive, owned by another user


def _parent_death_prefix() -> list[str]:
    """Command prefix that makes the kernel SIGTERM the broker if this process dies.

    Exit handlers do not run when Python is killed or leaves through
    ``os._exit`` (as a hard test timeout does); the parent-death signal covers
    that on Linux. The kernel ties it to the creating thread, so it is only
    used from the main thread, whose end is the end of the process.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


# --------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    timeout: float = 30.0,
    config: Mapping[str, str] | None = None,
) -> None:
    """Create topics (replication factor 1) and wait until every partition has a leader.

    ``config`` sets topic configuration, e.g. ``{"max.message.bytes": "2000000"}``.

    librdkafka consumers never create topics, so tests and tools create them
    up front. Waiting for leaders, not only for the create call, means a
    consumer that subscribes right after sees every partition. Topics that
    already exist are accepted as they are.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported, not in __all__

    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, received {partitions}")
    admin = AdminClient(_admin_config(bootstrap))
    deadline = time.monotonic() + timeout
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
         for name in wanted],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=max(deadline - time.monotonic(), 0.1))
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(
                f"creating topic {name!r} with {partitions} partition(s) at {bootstrap} failed: {exc}"
            ) from exc

    pending = set(wanted)
    last_state = ""
    while pending:
        try:
            metadata = admin.list_topics(timeout=2)
            for name in list(pending):
                topic = metadata.topics.get(name)
                if topic is None:
                    last_state = f"{name!r} not in metadata yet"
                elif topic.error is not None:
                    last_state = f"{name!r}: {topic.error}"
                elif not topic.partitions or any(p.leader < 0 for p in topic.partitions.values()):
                    last_state = f"{name!r} has partitions without a leader"
                else:
                    pending.discard(name)
        except KafkaException as exc:
            last_state = str(exc)
        if pending and time.monotonic() >= deadline:
            raise BrokerError(
                f"topics {sorted(pending)} were created at {bootstrap} but not ready within {timeout:.0f}s; "
                f"last state: {last_state}"
            )
        if pending:
            time.sleep(0.1)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _run_foreground(timeout: float, cache_dir: str | None, properties: Mapping[str, str] | None = None) -> int:
    """Run a broker until Ctrl-C or SIGTERM; print where clients find it."""

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    libs = ensure_jars(cache_dir)
    broker = KafkaBroker(libs, properties=properties)
    try:
        broker.start(timeout=timeout)
        print(f"KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
        print(
            f"Kafka {kafka_version()} ready in {broker.startup_seconds:.1f}s; log: {broker.log_path}; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        code = broker.wait()
        log = broker.log_path
        tail = _tail(log) if log is not None else ""
        print(f"the Kafka broker exited unexpectedly with status {code}\n{tail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the Kafka broker ...", file=sys.stderr, flush=True)
        return 0
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C while the broker shuts down must not orphan it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``run`` a foreground broker or ``fetch`` the jars."""
    parser = argparse.ArgumentParser(description="Single-node Apache Kafka broker for drift development and tests.")
    parser.add_argument(
        "--cache-dir",
        help=f"jar folder (default: ${CACHE_ENV} or ~/.cache/drift/kafka-<version>/libs)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start a broker in the foreground and print KAFKA_BOOTSTRAP=...")
    run.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the broker to be ready")
    run.add_argument("--property", action="append", default=[], metavar="KEY=VALUE",
                     help="server.properties setting, e.g. message.max.bytes=100000 (repeatable)")
    commands.add_parser("fetch", help="download the broker jars into the cache and print the folder")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        try:
            print(ensure_jars(args.cache_dir))
        except BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    properties = {}
    for item in args.property:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--property takes KEY=VALUE; got {item!r}")
        properties[key.strip()] = value.strip()
    return _run_foreground(args.timeout, args.cache_dir, properties)


if __name__ == "__main__":
    sys.exit(main())

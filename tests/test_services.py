"""The local servers of ``newsflow.services``, exercised for real (no mocks of Kafka or Elasticsearch).

The shared servers may already be running (a session fixture or ``newsflow services up``), so these
tests only ever call ``up`` on them, never ``down``. Stopping is tested on a second, private pair
of servers with their own ports and state dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from elasticsearch import BadRequestError, Elasticsearch
from kafka import KafkaConsumer, KafkaProducer

from newsflow.services import (
    ELASTICSEARCH,
    KAFKA,
    MIN_JAVA_MAJOR,
    LocalServices,
    LocalServicesSettings,
    ServiceStatus,
    _java_major,
    elasticsearch_url,
    find_java_home,
    kafka_bootstrap,
)


def _by_name(statuses: list[ServiceStatus]) -> dict[str, ServiceStatus]:
    return {s.name: s for s in statuses}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def services(request: pytest.FixtureRequest) -> Iterator[LocalServices]:
    """The shared servers: conftest's session fixture (if any) starts them first, so ``up`` here
    normally starts nothing; whatever it does start, it stops again after this module."""
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("local_services")
    svc = LocalServices()
    started = svc.up()
    yield svc
    if started:
        svc.down(started)


@pytest.fixture
def private_state_dir() -> Iterator[Path]:
    """A state dir the ``newsflow`` user can enter (pytest's tmp_path lives under a 0700 dir)."""
    path = Path(tempfile.mkdtemp(prefix="newsflow-services-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ---- no servers needed -----------------------------------------------------------------------


def test_urls_follow_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEWSFLOW_SERVICES_KAFKA_PORT", "19092")
    monkeypatch.setenv("NEWSFLOW_SERVICES_STATE_DIR", str(tmp_path / "state"))
    settings = LocalServicesSettings(elasticsearch_port=19200)
    assert kafka_bootstrap(settings) == "127.0.0.1:19092"
    assert elasticsearch_url(settings) == "http://127.0.0.1:19200"
    assert settings.state_dir == (tmp_path / "state").resolve()


def test_stale_pid_file_is_not_ours(private_state_dir: Path) -> None:
    """A pid file naming some other live process (here: this one) must never lead to a kill."""
    settings = LocalServicesSettings(
        state_dir=private_state_dir, kafka_port=_free_port(), elasticsearch_port=_free_port()
    )
    (private_state_dir / "kafka").mkdir()
    (private_state_dir / "kafka" / "kafka.pid").write_text(f"{os.getpid()}\n")
    svc = LocalServices(settings)
    assert not _by_name(svc.status())[KAFKA].managed
    assert svc.down() == []
    assert not (private_state_dir / "kafka" / "kafka.pid").exists()


def test_java_found_is_21_or_newer() -> None:
    java_home = find_java_home()
    major = _java_major(java_home)
    assert major is not None
    assert major >= MIN_JAVA_MAJOR


# ---- the shared servers ----------------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.elasticsearch
def test_up_twice_is_harmless(services: LocalServices) -> None:
    before = _by_name(services.status())
    assert services.up() == []
    assert services.up(kafka=True, elasticsearch=False) == []
    after = _by_name(services.status())
    assert {n: s.pid for n, s in before.items()} == {n: s.pid for n, s in after.items()}


@pytest.mark.kafka
@pytest.mark.elasticsearch
def test_status_reports_both_running(services: LocalServices) -> None:
    statuses = _by_name(services.status())
    assert set(statuses) == {KAFKA, ELASTICSEARCH}
    assert statuses[KAFKA].url == kafka_bootstrap(services.settings)
    assert statuses[ELASTICSEARCH].url == elasticsearch_url(services.settings)
    for status in statuses.values():
        assert status.running, status
        # Either started from our state dir (with a pid) or someone else's server on our port.
        assert (status.pid is not None) == status.managed, status


@pytest.mark.kafka
def test_kafka_produce_consume_round_trip(services: LocalServices) -> None:
    bootstrap = kafka_bootstrap(services.settings)
    topic = f"test-services-{uuid.uuid4().hex[:12]}"  # created on first use: auto-creation is on
    payload = f"hello {uuid.uuid4()}".encode()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(topic, key=b"k", value=payload).get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-services-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    received: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                received.extend(r.value for r in records)
        consumer.commit()  # exercises the group coordinator (offsets topic, replication factor 1)
    finally:
        consumer.close()
    assert received == [payload]


@pytest.mark.elasticsearch
def test_elasticsearch_index_search_round_trip(services: LocalServices) -> None:
    es = Elasticsearch(elasticsearch_url(services.settings), request_timeout=30)
    index = f"test-services-{uuid.uuid4().hex[:12]}"
    try:
        # Not es.info(): GET / is not served by the integ-test-zip build.
        assert es.cluster.health(wait_for_status="yellow", timeout="30s")["status"] in ("yellow", "green")
        es.indices.create(
            index=index,
            mappings={"properties": {"title": {"type": "text"}, "lang": {"type": "keyword"}}},
            settings={"number_of_shards": 1, "number_of_replicas": 0},
        )
        es.index(index=index, id="1", document={"title": "Streaming news over Kafka", "lang": "en"})
        es.index(index=index, id="2", document={"title": "Unrelated weather report", "lang": "en"})
        es.indices.refresh(index=index)
        hits = es.search(index=index, query={"match": {"title": "kafka news"}})["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["1"]
        assert es.count(index=index, query={"term": {"lang": "en"}})["count"] == 2
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.close()


@pytest.mark.elasticsearch
def test_elasticsearch_capability_probe(services: LocalServices) -> None:
    """What the node can do follows from the modules it reports, whichever build is serving.

    The integ-test-zip build has no analysis-common (so no language analyzers) and no rest-root
    (so ``GET /`` is refused); a full distribution has both. Either way the probe must agree.
    """
    url = elasticsearch_url(services.settings)
    es = Elasticsearch(url, request_timeout=30)
    try:
        nodes = es.nodes.info(metric="plugins")["nodes"]
        node = next(iter(nodes.values()))
        assert node["version"].split(".")[0] == "9"  # must match the client's major
        modules = {m["name"] for m in node["modules"]}
        assert "x-pack-core" in modules

        standard = es.indices.analyze(analyzer="standard", text="Breaking News")
        assert [t["token"] for t in standard["tokens"]] == ["breaking", "news"]
        if "analysis-common" in modules:
            english = es.indices.analyze(analyzer="english", text="running")
            assert [t["token"] for t in english["tokens"]] == ["run"]
        else:
            with pytest.raises(BadRequestError):
                es.indices.analyze(analyzer="english", text="running")

        root = httpx.get(url, timeout=10)
        assert root.is_success == ("rest-root" in modules), root.text
    finally:
        es.close()


# ---- a private pair of servers, to test down ----------------------------------------------


@pytest.mark.kafka
@pytest.mark.elasticsearch
def test_private_servers_up_status_down(services: LocalServices, private_state_dir: Path) -> None:
    """``down`` stops exactly what its state dir started; a foreign server is only reported."""
    settings = LocalServicesSettings(
        state_dir=private_state_dir / "own",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        elasticsearch_port=_free_port(),
        start_timeout_s=240,
    )
    own = LocalServices(settings)
    shared_pids = {s.name: s.pid for s in services.status()}
    try:
        assert [s.running for s in own.status()] == [False, False]
        assert sorted(own.up()) == [ELASTICSEARCH, KAFKA]
        statuses = _by_name(own.status())
        assert all(s.running and s.managed and s.pid for s in statuses.values()), statuses
        assert own.up() == []

        # Same ports, other state dir: sees the servers as foreign, starts nothing, stops nothing.
        other = LocalServices(settings.model_copy(update={"state_dir": private_state_dir / "other"}))
        assert all(s.running and not s.managed and s.pid is None for s in other.status())
        assert other.up() == []
        assert other.down() == []
        assert all(s.running for s in own.status())

        assert own.down([KAFKA]) == [KAFKA]
        statuses = _by_name(own.status())
        assert not statuses[KAFKA].running
        assert statuses[ELASTICSEARCH].running
        assert sorted(own.down()) == [ELASTICSEARCH]
        assert [s.running for s in own.status()] == [False, False]
        assert not _port_open(settings.kafka_port)
        assert not _port_open(settings.elasticsearch_port)
        assert own.down() == []
    finally:
        own.down()
    # The shared servers were not touched.
    assert {s.name: s.pid for s in services.status()} == shared_pids
    assert all(s.running for s in services.status())

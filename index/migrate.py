"""Zero-downtime move of an alias from one index to another, copied client-side.

The local test distribution has no reindex module, and production may lack it too, so documents are
copied with ``search_after`` + bulk. The order of steps is what makes it safe while the indexer keeps
writing through the alias:

1. copy every document of the source, shard by shard in ``_seq_no`` order, remembering the highest
   ``_seq_no`` copied per shard; the alias (reads and writes) stays on the source meanwhile;
2. refresh the target, then switch the alias in one ``update_aliases`` call (remove from the
   source, add to the target as write index): a search sees either index, fully, never none and
   never both (no duplicates);
3. catch up: copy what was written to the source since step 1 (``_seq_no`` above the mark), until a
   pass finds nothing, at least twice ``settle_s`` apart (a bulk request routed just before the
   switch may reach the shard just after it).

Every copy carries the document's ``_version`` (its revision) with ``external_gte``: a copied old
revision never overwrites a newer one the indexer already wrote to the target (409, counted). Two
migrations at once (two indexers starting) are harmless: copies are idempotent, and Elasticsearch
acknowledges the second switch with the ``remove`` reported missing and the ``add`` a no-op.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from elasticsearch import Elasticsearch

log = logging.getLogger(__name__)

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


class MigrationError(RuntimeError):
    """A document could not be copied. Before the switch the alias is untouched; during the catch-up
    the alias already serves the target, and the error names the document to copy by hand."""


@dataclass(frozen=True)
class MigrationReport:
    alias: str
    source: str
    target: str
    copied: int
    caught_up: int
    newer_in_target: int
    source_count: int
    target_count: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Tally:
    copied: int = 0
    newer_in_target: int = 0


def switch_alias(
    es: Elasticsearch,
    alias: str,
    source: str,
    target: str,
    upgrade: Upgrade,
    batch_size: int = 500,
    settle_s: float = 1.0,
) -> MigrationReport:
    """Copy ``source`` into ``target`` (an existing index), move ``alias`` atomically, catch up."""
    started = time.monotonic()
    shards = int(es.indices.get_settings(index=source)[source]["settings"]["index"]["number_of_shards"])
    marks = dict.fromkeys(range(shards), -1)
    first = _Tally()
    es.indices.refresh(index=source)
    _copy_pass(es, source, target, marks, upgrade, batch_size, first)
    es.indices.refresh(index=target)  # searches right after the switch must see every copied document
    es.indices.update_aliases(
        actions=[
            {"remove": {"index": source, "alias": alias}},
            {"add": {"index": target, "alias": alias, "is_write_index": True}},
        ]
    )
    log.info("alias switched", extra={"alias": alias, "source": source, "target": target})
    catch_up = _Tally()
    passes = 0
    while True:
        before = catch_up.copied + catch_up.newer_in_target
        es.indices.refresh(index=source)
        _copy_pass(es, source, target, marks, upgrade, batch_size, catch_up)
        es.indices.refresh(index=target)
        passes += 1
        if passes >= 2 and catch_up.copied + catch_up.newer_in_target == before:
            break
        time.sleep(settle_s)
    return MigrationReport(
        alias=alias,
        source=source,
        target=target,
        copied=first.copied,
        caught_up=catch_up.copied,
        newer_in_target=first.newer_in_target + catch_up.newer_in_target,
        source_count=int(es.count(index=source)["count"]),
        target_count=int(es.count(index=target)["count"]),
        seconds=round(time.monotonic() - started, 3),
    )


def _copy_pass(
    es: Elasticsearch,
    source: str,
    target: str,
    marks: dict[int, int],
    upgrade: Upgrade,
    batch_size: int,
    tally: _Tally,
) -> None:
    """Copy the documents above each shard's mark, advancing the marks."""
    for shard, mark in marks.items():
        search_after: list[Any] | None = None
        while True:
            page = es.search(
                index=source,
                preference=f"_shards:{shard}",
                query={"range": {"_seq_no": {"gt": mark}}},
                sort=[{"_seq_no": "asc"}],
                size=batch_size,
                version=True,
                seq_no_primary_term=True,
                search_after=search_after,
            )
            hits = page["hits"]["hits"]
            if not hits:
                break
            _bulk_copy(es, target, hits, upgrade, tally)
            marks[shard] = max(marks[shard], *(int(hit["_seq_no"]) for hit in hits))
            search_after = hits[-1]["sort"]


def _bulk_copy(
    es: Elasticsearch,
    target: str,
    hits: list[dict[str, Any]],
    upgrade: Upgrade,
    tally: _Tally,
    attempts: int = 5,
) -> None:
    """Write one page of hits; items rejected with 429 are retried with backoff."""
    pending = hits
    delay = 0.5
    for attempt in range(1, attempts + 1):
        operations: list[dict[str, Any]] = []
        for hit in pending:
            operations.append(
                {
                    "index": {
                        "_index": target,
                        "_id": hit["_id"],
                        "version": hit["_version"],
                        "version_type": "external_gte",
                    }
                }
            )
            operations.append(upgrade(hit["_source"]))
        items = es.bulk(operations=operations)["items"]
        retry: list[dict[str, Any]] = []
        for hit, item in zip(pending, items, strict=True):
            status = int(item["index"].get("status", 500))
            if status < 300:
                tally.copied += 1
            elif status == 409:
                tally.newer_in_target += 1
            elif status == 429 and attempt < attempts:
                retry.append(hit)
            else:
                raise MigrationError(
                    f"copying {hit['_id']} into {target} failed: {item['index'].get('error')}"
                )
        if not retry:
            return
        pending = retry
        time.sleep(delay)
        delay *= 2

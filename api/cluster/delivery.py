"""GA/T 1400 delivery in cluster mode: the cluster database's outbox, sent by the cluster's process.

Every commit of a cluster camera (:meth:`~sharpeyes.api.cluster.leases.LeaseStore.commit`, the
store's one write path) enqueues the event's outbox rows in the cluster database, in the same
transaction: ``viid`` for the upper view library and ``sub:<SubscribeID>`` for every GA/T 1400
subscription the event matches (:mod:`sharpeyes.api.store.routing`). Workers only write; the
process that starts the cluster (``sharpeyes run`` / ``sharpeyes serve`` with ``cluster:`` and
``delivery:``; with Ray, the driver next to the head) sends, through :func:`start_cluster_delivery`:
the same :class:`~sharpeyes.api.viid.delivery.Delivery` as a single node — the outbox sender and
the :class:`~sharpeyes.api.viid.notifier.SubscriptionNotifier` on their threads, rows claimed
under a lease, retried with back-off, given up as dead letters — so notifications carry the same
guarantees in both modes. A second such process (two API replicas) claims other rows, never the
ones a live sender holds; the rows a crashed one held come back when their claim runs out. With
Ray the cameras outlive the driver: while no driver runs, their rows wait in the outbox and go
when one starts again (``sharpeyes run``/``serve`` on the head; not a detached uploader actor).

Pictures are read from ``cluster.files_root`` (where the workers write crops and evidence
folders: a shared mount, or each worker's own disk) and, for what is not there, from the
cluster's object storage (``storage_url``), where every worker puts an event's crop, scene,
plate picture and evidence folder before its commit — so nodes that share the storage but no
mount still send every record with its pictures. While the storage cannot be read, a record
that needs it is not sent without its pictures: its row fails with a back-off and stays pending
in the outbox (never a dead letter), and goes once the storage answers again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sharpeyes.api.cluster.leases import LeaseStore
from sharpeyes.api.cluster.storage import open_evidence
from sharpeyes.pipeline.errors import ConfigError

if TYPE_CHECKING:
    from sharpeyes.api.cluster.service import ClusterSettings
    from sharpeyes.api.sinks.kafka import KafkaSinkConfig
    from sharpeyes.api.sinks.mqtt import MqttSinkConfig
    from sharpeyes.api.sinks.started import EventSinks
    from sharpeyes.api.store import EventStore
    from sharpeyes.api.viid.delivery import Delivery, DeliveryConfig
    from sharpeyes.api.viid.subscriptions import CameraDeviceIds

log = logging.getLogger(__name__)

DESTINATION = "viid"  # sharpeyes.api.viid.delivery.DESTINATION (not imported: no VIID at import)


def desired_device_ids(leases: LeaseStore) -> frozenset[str]:
    """The GA/T 1400 device ids of the cameras in the cluster's desired set now (config cameras
    and those added at run time through ``/api/v1/cluster/cameras``); cameras of other kinds
    (synthetic) have none."""
    from sharpeyes.api.cluster.pipeline_program import parse_camera

    out: set[str] = set()
    for row in leases.cameras():
        if not row.desired or row.spec.kind != "pipeline":
            continue
        try:
            out.add(parse_camera(row.spec).device_id)
        except ConfigError:
            continue  # the camera fails on its worker and says why
    return frozenset(out)


def files_root(settings: ClusterSettings) -> Path:
    """Where the workers write crops and evidence folders (as the camera program resolves it)."""
    return Path(settings.files_root or ".")


def start_cluster_delivery(
    settings: ClusterSettings, config: DeliveryConfig, cameras: CameraDeviceIds
) -> Delivery:
    """Start delivering the cluster database's outbox (upper platform and subscriptions).

    ``cameras`` is the live source of the cluster's camera device ids (what a subscription's
    ResourceURI may name). The delivery has its own database connection; ``Delivery.stop``
    leaves it open — :func:`close_cluster_delivery` stops and closes both.

    Raises:
        ConfigError: a secret named by ``password_env`` is not in the environment.
        StoreError: the cluster database cannot be opened.
        EvidenceError: ``storage_url`` names S3 and boto3 is not installed.
    """
    from sharpeyes.api.store import open_store
    from sharpeyes.api.viid.delivery import start_delivery
    from sharpeyes.api.viid.subscriptions import SubscriptionRegistry

    root = files_root(settings)
    evidence = open_evidence(settings.storage_url)
    store = open_store(settings.db_url, root)
    try:
        registry = None
        if config.subscriptions.enabled:
            registry = SubscriptionRegistry(store.db, config.resolver(cameras))
        delivery = start_delivery(
            store, config, files_root=root, registry=registry, evidence=evidence
        )
    except BaseException:
        store.close()
        raise
    log.info(
        "cluster: delivering its outbox (GA/T 1400%s) from this process",
        " and subscriptions" if config.subscriptions.enabled else "",
    )
    return delivery


def close_cluster_delivery(delivery: Delivery, drain_timeout_s: float) -> int:
    """Drain for up to ``drain_timeout_s``, stop, close its database; rows still pending
    (kept in the outbox, sent at the next start)."""
    try:
        delivery.stop(drain_timeout_s=drain_timeout_s)
        left = delivery.pending()
    finally:
        delivery.store.close()
    if left:
        log.warning("cluster: %d GA/T 1400 records not yet delivered (kept in the outbox)", left)
    return left


def start_cluster_sinks(
    settings: ClusterSettings, mqtt: MqttSinkConfig | None, kafka: KafkaSinkConfig | None
) -> tuple[EventSinks, EventStore]:
    """Start the MQTT / Kafka senders over the cluster database (their own connection), as a
    single node does over its store: the rows the workers' commits queue are published from
    this process. Returns the senders and the store they use (closed after they stop)."""
    from sharpeyes.api.cluster.storage import open_evidence
    from sharpeyes.api.rest.evidence import CACHE_DIR, RemoteEvidence
    from sharpeyes.api.sinks.started import EventSinks
    from sharpeyes.api.store import open_store

    root = files_root(settings)
    evidence = open_evidence(settings.storage_url)
    remote = None if evidence is None else RemoteEvidence(evidence, root / CACHE_DIR)
    store = open_store(settings.db_url, root)
    try:
        sinks = EventSinks.start(store, mqtt, kafka, remote)
    except BaseException:
        store.close()
        raise
    log.info(
        "cluster: publishing its events (%s) from this process",
        " and ".join(n for n, c in (("MQTT", mqtt), ("Kafka", kafka)) if c is not None),
    )
    return sinks, store

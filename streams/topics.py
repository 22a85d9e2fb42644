"""Creating and checking the Kafka topics the pipeline uses (kafka-python admin)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from funnel.settings import Settings
from streams.errors import StreamError

# The broker stamps records on append: retention then follows arrival, not event time, so
# a replay of last year's events is not deleted on arrival, and validation's "now" is
# the record's arrival time (the same on every replay).
TOPIC_CONFIGS = {"message.timestamp.type": "LogAppendTime"}


class TopicSetupError(StreamError):
    """Topics are missing, unreachable or have the wrong partition count."""


def _admin(bootstrap: str) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","),
            client_id="shop-funnel-admin",
            request_timeout_ms=15000,
        )
    except KafkaError as exc:
        raise TopicSetupError(
            f"cannot reach Kafka at {bootstrap} ({exc}); start the local broker with "
            "`funnel broker start` or set KAFKA_BOOTSTRAP_SERVERS"
        ) from exc


def ensure_topics(settings: Settings, replication_factor: int = 1) -> dict[str, int]:
    """Create missing topics; verify inputs share one partition count. Returns counts.

    The forget topic is created with the inputs' partition count (which may differ from
    ``settings.partitions`` when the inputs were made elsewhere) and must keep it: a forget
    request is keyed by the visitor id, so it lands on the partition of that visitor's
    events only if both topics have the same number of partitions (docs/forget.md).
    """
    topics = settings.topics
    wanted = [*topics.inputs(), topics.dlq, topics.triggers, topics.marketing_costs, topics.forget]
    admin = _admin(settings.bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing and name != topics.forget]
        _create(admin, missing, settings.partitions, replication_factor)
        if topics.forget not in existing:
            made_before = [name for name in topics.inputs() if name in existing]
            made = (
                set(_partition_counts(admin.describe_topics(made_before)).values())
                if made_before
                else set()
            )
            # Inputs made elsewhere set the count; a mismatch among them is reported below.
            forget_partitions = made.pop() if len(made) == 1 else settings.partitions
            _create(admin, [topics.forget], forget_partitions, replication_factor)
        counts = _partition_counts(admin.describe_topics(wanted))
        for _ in range(40):  # a topic just created may show no partitions for a moment
            if all(counts.get(name, 0) for name in wanted):
                break
            time.sleep(0.25)
            counts = _partition_counts(admin.describe_topics(wanted))
    finally:
        admin.close()
    inputs = {name: counts.get(name, 0) for name in topics.inputs()}
    if len(set(inputs.values())) != 1:
        raise TopicSetupError(
            f"input topics must have the same number of partitions (co-partitioned by visitor "
            f"id), found {inputs}; recreate them with {settings.partitions} partitions"
        )
    expected = next(iter(inputs.values()))
    found = counts.get(topics.forget, 0)
    if found != expected:
        raise TopicSetupError(
            f"the forget topic {topics.forget} has {found} partitions but the input topics "
            f"have {expected}: a forget request must land on the partition of the visitor's "
            f"events (both keyed by anonymous_id), so the counts must be equal. Once every "
            f"forget request on it is done (`funnel forget --wait`), delete it "
            f"(kafka-topics.sh --delete --topic {topics.forget}) and run `funnel topics`, "
            f"which creates it with {expected} partitions"
        )
    return counts


def _create(
    admin: KafkaAdminClient, names: list[str], partitions: int, replication_factor: int
) -> None:
    if not names:
        return
    with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent worker made it
        admin.create_topics(
            [
                NewTopic(name, partitions, replication_factor, topic_configs=TOPIC_CONFIGS)
                for name in names
            ]
        )


def _partition_counts(described: list[dict[str, Any]]) -> dict[str, int]:
    return {str(d.get("name", d.get("topic"))): len(d["partitions"]) for d in described}


def delete_pipeline_topics(settings: Settings, timeout_seconds: float = 30.0) -> list[str]:
    """Delete the configured topics and this app's internal topics (a clean restart)."""
    topics = settings.topics
    admin = _admin(settings.bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        internal = {t for t in existing if t.startswith(f"{settings.app_id}-")}
        doomed = sorted(
            (
                {
                    *topics.inputs(),
                    topics.dlq,
                    topics.triggers,
                    topics.marketing_costs,
                    topics.forget,
                }
                & existing
            )
            | internal
        )
        if doomed:
            admin.delete_topics(doomed)
        deadline = time.monotonic() + timeout_seconds
        while doomed and set(admin.list_topics()) & set(doomed):
            if time.monotonic() > deadline:
                raise TopicSetupError(
                    f"topics {doomed} were not deleted within {timeout_seconds:.0f}s; "
                    "check that the broker allows topic deletion (delete.topic.enable)"
                )
            time.sleep(0.2)
        return doomed
    finally:
        admin.close()

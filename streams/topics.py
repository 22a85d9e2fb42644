"""Creating and checking the Kafka topics the pipeline uses (kafka-python admin)."""

from __future__ import annotations

import contextlib
import time

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
    """Create missing topics; verify inputs share one partition count. Returns counts."""
    topics = settings.topics
    wanted = [*topics.inputs(), topics.dlq, topics.triggers, topics.marketing_costs]
    admin = _admin(settings.bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent worker made it
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            settings.partitions,
                            replication_factor,
                            topic_configs=TOPIC_CONFIGS,
                        )
                        for name in missing
                    ]
                )
        described = admin.describe_topics(wanted)
    finally:
        admin.close()
    counts = {str(d.get("name", d.get("topic"))): len(d["partitions"]) for d in described}
    inputs = {name: counts.get(name, 0) for name in topics.inputs()}
    if len(set(inputs.values())) != 1:
        raise TopicSetupError(
            f"input topics must have the same number of partitions (co-partitioned by visitor "
            f"id), found {inputs}; recreate them with {settings.partitions} partitions"
        )
    return counts


def delete_pipeline_topics(settings: Settings, timeout_seconds: float = 30.0) -> list[str]:
    """Delete the configured topics and this app's internal topics (a clean restart)."""
    topics = settings.topics
    admin = _admin(settings.bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        internal = {t for t in existing if t.startswith(f"{settings.app_id}-")}
        doomed = sorted(
            ({*topics.inputs(), topics.dlq, topics.triggers, topics.marketing_costs} & existing)
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

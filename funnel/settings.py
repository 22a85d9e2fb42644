"""One frozen settings object, built once at the entry point.

Values come from keyword arguments, then environment variables (prefix ``FUNNEL_``,
plus the conventional ``KAFKA_BOOTSTRAP_SERVERS``), then defaults. Nothing here runs at
import time: call :func:`load_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from funnel.errors import ConfigError

DEFAULT_DATA_DIR = Path(".data")


class TopicNames(BaseSettings):
    """Kafka topic names; override with FUNNEL_TOPICS__CLICKSTREAM etc."""

    model_config = SettingsConfigDict(frozen=True)

    clickstream: str = "shop.clickstream"
    cart: str = "shop.cart"
    orders: str = "shop.orders"
    dlq: str = "shop.dlq"
    triggers: str = "shop.triggers"
    # Daily marketing spend (schemas/avro/marketing_costs.v1.avsc), one record per day.
    marketing_costs: str = "shop.marketing_costs"
    # Forget requests (schemas/forget.py, docs/forget.md), JSON keyed by anonymous_id: an
    # input of the worker, co-partitioned with the inputs (same partition count).
    forget: str = "shop.forget"

    def inputs(self) -> tuple[str, str, str]:
        return (self.clickstream, self.cart, self.orders)


class Settings(BaseSettings):
    """Everything a worker, the simulator and the reports need to know."""

    model_config = SettingsConfigDict(
        env_prefix="FUNNEL_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        populate_by_name=True,
    )

    data_dir: Path = DEFAULT_DATA_DIR
    bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("FUNNEL_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    topics: TopicNames = Field(default_factory=TopicNames)
    partitions: int = Field(default=4, ge=1, le=1024)
    app_id: str = "shop-funnel"

    # ClickHouse: chdb:///<dir> (embedded, default) or http(s)://host:8123.
    clickhouse_dsn: str = ""
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "shop"
    # A ClickHouse cluster (remote_servers name) to create the schema on: Replicated
    # local tables plus Distributed tables (docs/clickhouse-cluster.md). Empty: one node.
    clickhouse_cluster: str = ""
    # How long a starting worker waits for ClickHouse before giving up.
    clickhouse_wait_seconds: float = Field(default=60.0, ge=0)

    # Read-only ClickHouse HTTP endpoint served by a worker that owns the embedded store
    # (sinks/sql_endpoint.py); 0 turns it off. A password is required off loopback.
    sql_port: int = Field(default=8124, ge=0, le=65535)
    sql_host: str = "127.0.0.1"
    sql_user: str = "default"
    sql_password: SecretStr = SecretStr("")
    # Per-query limits on that endpoint, so a heavy query cannot stall ingestion.
    sql_max_execution_seconds: float = Field(default=10.0, gt=0)
    sql_max_result_rows: int = Field(default=1_000_000, ge=1)
    sql_max_result_bytes: int = Field(default=100_000_000, ge=1)
    sql_max_threads: int = Field(default=1, ge=1)
    # Rows read per second per query (ClickHouse's max_execution_speed): above it the
    # engine slows the query down, so heavy queries leave the CPU to ingestion.
    sql_max_rows_per_second: int = Field(default=20_000_000, ge=1)

    metrics_port: int = Field(default=9108, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    window_seconds: int = Field(default=60, ge=1)
    allowed_lateness_seconds: int = Field(default=300, ge=0)
    session_timeout_seconds: int = Field(default=1800, ge=60)

    # Batch processing: at most this many records per fetch, handed to the agent as
    # one batch per partition.
    batch_max_events: int = Field(default=10_000, ge=1)
    # Bytes the consumer fetches ahead per input partition (aiokafka's
    # max_partition_fetch_bytes). A worker behind its input holds up to about this much
    # per partition, raw and decoded: at equal backlog 8 MiB held ~210 MB more heap than
    # 1 MiB, but fetches of 1 MiB make batches of ~2k records instead of ~5k and cost 0.80x
    # the events per CPU-second (BENCHMARKS.md, memory). Lower it where memory is tight.
    consumer_fetch_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    # How long the broker may hold a fetch that finds no new records (aiokafka's
    # fetch_max_wait_ms; Faust fixes it at 1500). aiokafka keeps one fetch in flight per
    # broker, so a fetch of idle partitions only held that long stalls live input just as
    # long (streams/faust_private.py: FetchWaitConsumerThread). Lower: more empty fetches
    # while idle, about 1000 / this many per second.
    consumer_fetch_wait_ms: int = Field(default=100, ge=1, le=1500)
    commit_interval_seconds: float = Field(default=2.0, gt=0)
    # A worker that dies holds its partitions this long before the group moves them.
    # An input partition with nothing to read for this long stops holding back the
    # watermark of the others (its later records for closed windows count as late).
    idle_input_seconds: float = Field(default=60.0, gt=0)
    consumer_session_timeout_seconds: float = Field(default=10.0, ge=6, le=300)
    # An input partition with records to read from which nothing was delivered for this
    # long (while the agent was free) is read again from its processed position; the
    # wait doubles after each attempt (streams/runtime.py, docs/architecture.md).
    input_stall_seconds: float = Field(default=30.0, gt=0)

    # Decoded visitor states kept in memory per partition (LRU, ~5 KB each; the table
    # keeps every visitor's encoded state, ~300 B, whatever this is). Off by default:
    # measured 7-10% slower and +50 MB on simulated traffic (bench/state_memory.py).
    state_cache_visitors: int = Field(default=0, ge=0)
    # Which core processes the partitions: "python" (streams/processor.py) or "compiled"
    # (the Rust crate in native/, streams/compiled/processor.py). Both give identical
    # state, rows and triggers (tests/native/twin.py and the oracle tests). "auto": the
    # compiled core where it is built (`make setup` builds it), else Python with a warning.
    core: Literal["auto", "python", "compiled"] = "auto"
    # Who reads the fetched input records into Records: "compiled" (the Rust crate reads
    # Kafka's record batches, streams/fetch_reader.py) or "aiokafka" (its own reader, one
    # Python object per record). "auto": compiled where the crate is built. The same
    # records and offsets either way (tests/unit/test_fetch_reader.py).
    fetch_reader: Literal["auto", "aiokafka", "compiled"] = "auto"

    # The ClickHouse writer inserts queued rows once the oldest has waited
    # sink_busy_ratio times a recent insert's duration, within sink_flush_min_seconds
    # (capped at sink_flush_seconds) and sink_flush_seconds: a light load inserts often, a
    # heavy one in big batches. It inserts at once when sink_batch_rows rows are queued
    # (sinks/clickhouse.py).
    sink_batch_rows: int = Field(default=100_000, ge=1)
    sink_busy_ratio: float = Field(default=1.0, ge=0, le=100)
    sink_flush_seconds: float = Field(default=1.0, gt=0)
    sink_flush_min_seconds: float = Field(default=0.2, gt=0, le=60)
    # While the input is behind (more records to read than the worker processes in
    # sink_flush_seconds: a restart, a replay, a burst), rows wait up to this long (or
    # sink_batch_rows) and the offset commits do not ask for an early insert: small
    # inserts while catching up cost chDB more than they save (streams/backlog.py).
    sink_behind_flush_seconds: float = Field(default=5.0, gt=0, le=600)
    # At saturation the queue stays full and each commit waits for it to be written, so
    # this bound is also how far committed offsets trail (BENCHMARKS.md, "Scaling pass").
    sink_queue_rows: int = Field(default=200_000, ge=1)
    # On SIGTERM (or --duration), the ClickHouse writer keeps retrying this long, then
    # gives up (nothing is lost: offsets are not committed past unwritten rows); the
    # process exits at most 10 s after that (streams/worker.py).
    shutdown_grace_seconds: float = Field(default=20.0, gt=0, le=600)
    # A full garbage collection runs this often (streams/garbage.py): a safety net, since
    # the known cycle (one per ClickHouse insert) is gone. A full pass costs ~0.4-0.8 s on
    # a soak's heap (BENCHMARKS.md), so it is rare.
    gc_interval_seconds: float = Field(default=600.0, gt=0)

    # Lifecycle (docs/semantics.md 6-8). Days may be fractional (tests use minutes).
    anonymous_ttl_days: float = Field(default=35.0, gt=0)
    buyer_ttl_days: float = Field(default=400.0, gt=0)
    rfm_new_days: float = Field(default=30.0, gt=0)
    rfm_dormant_days: float = Field(default=60.0, gt=0)
    rfm_churn_days: float = Field(default=180.0, gt=0)
    cart_abandon_minutes: float = Field(default=30.0, gt=0)

    # Attribution (docs/semantics.md section 10): sessions this far before an order are
    # its touchpoints (at most attribution_max_touches, the latest); time-decay halves a
    # touchpoint's weight every attribution_half_life_days. Days may be fractional.
    attribution_lookback_days: float = Field(default=30.0, gt=0, le=400)
    attribution_half_life_days: float = Field(default=7.0, gt=0, le=400)
    attribution_max_touches: int = Field(default=50, ge=1, le=1000)
    # How often the worker that holds input partition 0 reads today's ROAS per channel
    # into the Prometheus gauges (streams/attribution_monitor.py).
    attribution_eval_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)

    # Input validation bounds (schemas/validation.py).
    max_payload_bytes: int = Field(default=64 * 1024, ge=256)
    max_future_seconds: int = Field(default=300, ge=0)
    max_past_seconds: int = Field(default=7 * 86400, ge=0)
    replay: bool = False
    # Funnel definitions (docs/semantics.md section 3); `funnel worker --funnels` wins.
    # None: the packaged streams/funnels.yaml.
    funnels_file: Path | None = None
    # Experiment definitions (streams/experiments.py); `funnel worker --experiments` wins.
    # None: the packaged streams/experiments.yaml with the packaged funnels, and no
    # experiments with another funnel file (they name funnel steps of their own file).
    experiments_file: Path | None = None
    # How often the worker that holds input partition 0 reads the experiments out
    # (streams/experiment_monitor.py): statistics, gauges, readout rows, decisions.
    experiment_eval_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)
    # Oldest event/sent time accepted, epoch ms; None: 2000-01-01, or 1971-01-01 with replay.
    earliest_event_time_ms: int | None = Field(default=None, ge=0)

    @field_validator("replay", mode="before")
    @classmethod
    def _parse_bool(cls, value: Any) -> Any:
        # Booleans are parsed explicitly: "0", "false", "no", "off" and "" are false.
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(f"expected a boolean (true/false/1/0), got {value!r}")
        return value

    @field_validator("sink_behind_flush_seconds")
    @classmethod
    def _check_behind_flush(cls, value: float, info: ValidationInfo) -> float:
        live = info.data.get("sink_flush_seconds")
        if live is not None and value < live:
            raise ValueError(
                f"must be at least sink_flush_seconds ({live}): it is the wait while the "
                "input is behind, when inserts should get bigger, not smaller"
            )
        return value

    @field_validator("clickhouse_dsn")
    @classmethod
    def _check_dsn(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in {"chdb", "http", "https"}:
            raise ValueError(
                f"unsupported ClickHouse DSN {value!r}: use chdb:///<dir> for the embedded "
                "engine or http(s)://host:8123 for a server"
            )
        return value

    @property
    def effective_clickhouse_dsn(self) -> str:
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return f"chdb:///{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def allowed_lateness_ms(self) -> int:
        return self.allowed_lateness_seconds * 1000

    @property
    def window_ms(self) -> int:
        return self.window_seconds * 1000

    @property
    def session_timeout_ms(self) -> int:
        return self.session_timeout_seconds * 1000

    def attribution_ms(self) -> dict[str, int]:
        day = 86_400_000
        return {
            "lookback_ms": round(self.attribution_lookback_days * day),
            "half_life_ms": round(self.attribution_half_life_days * day),
            "max_touches": self.attribution_max_touches,
        }

    def lifecycle_ms(self) -> dict[str, int]:
        day = 86_400_000
        return {
            "new_ms": round(self.rfm_new_days * day),
            "dormant_ms": round(self.rfm_dormant_days * day),
            "churn_ms": round(self.rfm_churn_days * day),
            "cart_abandon_ms": round(self.cart_abandon_minutes * 60_000),
            "anonymous_ttl_ms": round(self.anonymous_ttl_days * day),
            "buyer_ttl_ms": round(self.buyer_ttl_days * day),
        }


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; invalid values raise :class:`ConfigError` naming the fix."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"invalid settings ({problems}); fix the FUNNEL_* environment variable or "
            "command-line option named here"
        ) from exc

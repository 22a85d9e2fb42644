"""``funnel forget`` (issue 17, docs/forget.md) without a broker or a store: options,
request ids, the dry run, sending to a fake producer, and waiting for the audit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from funnel import cli_forget
from funnel.cli_forget import (
    ForgetOptionError,
    ForgetSendError,
    ForgetWaitError,
    audit_totals,
    build_requests,
    parse_range,
    parse_time_ms,
    request_ids,
    send_requests,
    wait_until_done,
)
from funnel.settings import TopicNames
from schemas.forget import ForgetRequest, decode_forget
from simulator.partitioner import partition_for

T0 = 1_793_664_000_000  # 2026-11-03T00:00:00Z
DAY = 86_400_000
TOPICS = TopicNames()


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-03", T0),
        ("2026-11-03T00:00:00Z", T0),
        ("2026-11-03T12:30:00", T0 + 45_000_000),
        ("2026-11-03T08:00:00+08:00", T0),
        ("2026-11-03T00:00:00.250Z", T0 + 250),
        (" 2026-11-03 ", T0),
    ],
)
def test_times_are_iso_and_utc(text: str, expected: int) -> None:
    assert parse_time_ms(text, "--from") == expected


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("yesterday", "is not an ISO date or datetime: e.g. 2026-11-03"),
        ("03/11/2026", "is not an ISO date or datetime"),
        ("2026-02-30", "is not an ISO date or datetime"),
        ("1969-12-31", "is outside 1970-01-01..2100-01-01"),
        ("2100-01-02", "is outside 1970-01-01..2100-01-01"),
    ],
)
def test_bad_times_name_the_option_and_the_fix(text: str, fix: str) -> None:
    with pytest.raises(ForgetOptionError, match=f"^--to {text!r} {fix}"):
        parse_time_ms(text, "--to")


def test_the_range_is_from_inclusive_to_exclusive() -> None:
    assert parse_range(None, None) == (None, None)
    assert parse_range("2026-11-03", "2026-11-04") == (T0, T0 + DAY)
    assert parse_range("2026-11-03", None) == (T0, None)
    with pytest.raises(ForgetOptionError, match="--to '2026-11-03' is not after --from"):
        parse_range("2026-11-03", "2026-11-03")


def test_request_ids_are_numbered_only_for_several_visitors() -> None:
    assert request_ids("R", 1) == ["R"]
    assert request_ids("R", 3) == ["R.1", "R.2", "R.3"]
    requests = build_requests("ticket-7", ["a", "b"], T0, None)
    assert requests == [
        ForgetRequest("ticket-7.1", "a", T0, None),
        ForgetRequest("ticket-7.2", "b", T0, None),
    ]


def test_a_request_id_too_long_for_its_numbering_is_refused() -> None:
    build_requests("x" * 64, ["a"], None, None)
    with pytest.raises(ForgetOptionError, match=r"--request-id 'x{62}' is too long for 10"):
        build_requests("x" * 62, [str(i) for i in range(10)], None, None)
    with pytest.raises(ForgetOptionError, match=r"^--request-id 'me@x\.org' contains '@'"):
        build_requests("me@x.org", ["a"], None, None)


# -- sending ----------------------------------------------------------------------------------


class FakeMetadata:
    def __init__(self, partition: int, offset: int) -> None:
        self.partition = partition
        self.offset = offset


class FakeProducer:
    """Records what is sent; ``partitions`` per topic; fails as asked."""

    def __init__(
        self,
        partitions: dict[str, int] | None = None,
        fail_start: bool = False,
        fail_on: str | None = None,
    ) -> None:
        self.partitions = partitions or {TOPICS.forget: 4, TOPICS.clickstream: 4}
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.fail_start = fail_start
        self.fail_on = fail_on
        self.stopped = False

    async def start(self) -> None:
        from aiokafka.errors import KafkaConnectionError

        if self.fail_start:
            raise KafkaConnectionError("connection refused")

    async def stop(self) -> None:
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int]:
        from aiokafka.errors import KafkaTimeoutError

        if topic not in self.partitions:
            raise KafkaTimeoutError("no metadata")
        return set(range(self.partitions[topic]))

    async def send(
        self, topic: str, value: bytes, *, key: bytes, partition: int
    ) -> asyncio.Future[Any]:
        from aiokafka.errors import KafkaTimeoutError

        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if key.decode() == self.fail_on:
            future.set_exception(KafkaTimeoutError("no leader"))
        else:
            self.sent.append((topic, key, value, partition))
            future.set_result(FakeMetadata(partition, len(self.sent) - 1))
        return future


def test_each_request_goes_keyed_to_its_visitors_partition() -> None:
    producer = FakeProducer()
    requests = build_requests("R", ["visitor-a", "visitor-b", "访客-c"], None, T0)
    sent = asyncio.run(send_requests(requests, "k:9", TOPICS, lambda _b: producer))
    assert [(t, k) for t, k, _, _ in producer.sent] == [
        (TOPICS.forget, r.anonymous_id.encode()) for r in requests
    ]
    # The simulator's partitioner: the partition of the visitor's events.
    assert [p for *_, p in producer.sent] == [
        partition_for(r.anonymous_id.encode(), 4) for r in requests
    ]
    assert [decode_forget(v) for _, _, v, _ in producer.sent] == requests
    assert [(s.request_id, s.partition) for s in sent] == [
        (r.request_id, partition_for(r.anonymous_id.encode(), 4)) for r in requests
    ]
    assert producer.stopped


def test_sending_failures_say_what_was_sent_and_the_fix() -> None:
    requests = build_requests("R", ["a", "b"], None, None)
    with pytest.raises(ForgetSendError) as caught:
        asyncio.run(
            send_requests(requests, "k:9", TOPICS, lambda _b: FakeProducer(fail_start=True))
        )
    assert "cannot connect to Kafka at k:9" in str(caught.value)
    assert "nothing was sent" in str(caught.value)
    assert "`funnel broker start`" in str(caught.value)
    assert "FUNNEL_BOOTSTRAP_SERVERS" in str(caught.value)
    failing = FakeProducer(fail_on="b")
    with pytest.raises(ForgetSendError, match=r"acknowledged: R\.1\. Sending them again"):
        asyncio.run(send_requests(requests, "k:9", TOPICS, lambda _b: failing))
    assert failing.stopped


def test_nothing_is_sent_to_a_missing_or_misaligned_topic() -> None:
    requests = build_requests("R", ["a"], None, None)
    missing = FakeProducer({TOPICS.clickstream: 4})
    with pytest.raises(ForgetSendError, match=r"shop.forget was not found.*`funnel topics`"):
        asyncio.run(send_requests(requests, "k:9", TOPICS, lambda _b: missing))
    misaligned = FakeProducer({TOPICS.forget: 2, TOPICS.clickstream: 4})
    with pytest.raises(ForgetSendError, match=r"has 2 partitions but shop\.clickstream has 4"):
        asyncio.run(send_requests(requests, "k:9", TOPICS, lambda _b: misaligned))
    assert missing.sent == misaligned.sent == []


# -- waiting for the audit ------------------------------------------------------------------


def audit_row(rid: str, phase: str, events: int = 3, partition: int = 1) -> tuple[Any, ...]:
    return (rid, partition, phase, events, 7, 12, 250)


def test_audit_totals_need_every_row_done() -> None:
    totals = audit_totals(
        [audit_row("R.1", "done"), audit_row("R.2", "corrected"), audit_row("R.2", "done", 2, 0)],
        ["R.1", "R.2", "R.3"],
    )
    assert totals["R.1"].done and totals["R.1"].rows_deleted == 12
    assert not totals["R.2"].done and totals["R.2"].phase == "corrected"
    assert totals["R.2"].events_forgotten == 5
    assert not totals["R.3"].done and totals["R.3"].phase == ""


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waiting_returns_once_every_request_is_done() -> None:
    clock = FakeClock()
    answers: Iterator[list[tuple[Any, ...]]] = iter(
        [[], [audit_row("R", "started")], [audit_row("R", "done")]]
    )
    totals = wait_until_done(lambda: next(answers), ["R"], 10, clock=clock, sleep=clock.sleep)
    assert totals["R"].done and clock.now == 2.0


def test_a_timeout_names_the_pending_requests_and_the_fix() -> None:
    clock = FakeClock()

    def poll() -> Sequence[tuple[Any, ...]]:
        return [audit_row("R.1", "done"), audit_row("R.2", "corrected")]

    with pytest.raises(ForgetWaitError) as caught:
        wait_until_done(poll, ["R.1", "R.2", "R.3"], 5, clock=clock, sleep=clock.sleep)
    message = str(caught.value)
    assert message.startswith("not done yet: R.2, R.3 (2 of 3 request(s)); in progress: R.2")
    assert "`funnel worker`" in message
    assert clock.now == 5.0


def test_store_errors_and_an_absent_worker_keep_the_wait_going() -> None:
    clock = FakeClock()

    def broken() -> Sequence[tuple[Any, ...]]:
        raise RuntimeError("Table shop.forget_audit does not exist")

    with pytest.raises(ForgetWaitError, match="forget_audit does not exist"):
        wait_until_done(broken, ["R"], 3, clock=clock, sleep=clock.sleep)
    with pytest.raises(ForgetWaitError, match="no worker holds the embedded store"):
        wait_until_done(
            broken,
            ["R"],
            3,
            absent=lambda: "no worker holds the embedded store at /x",
            clock=clock,
            sleep=clock.sleep,
        )


# -- the command ------------------------------------------------------------------------------


class FakeResult:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.result_rows = rows


class FakeStore:
    """The ClickHouse client: a user's anonymous ids and the audit rows."""

    def __init__(self, users: dict[str, list[str]], done: bool = True) -> None:
        self.users = users
        self.done = done
        self.queries: list[str] = []

    def query(self, sql: str, parameters: dict[str, Any]) -> FakeResult:
        self.queries.append(sql)
        if "forget_audit" in sql:
            phase = "done" if self.done else "started"
            return FakeResult([audit_row(rid, phase) for rid in parameters["ids"]])
        return FakeResult([(a,) for a in sorted(self.users.get(parameters["user_id"], []))])


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    made: list[FakeProducer] = []

    def factory(_bootstrap: str) -> FakeProducer:
        made.append(FakeProducer())
        return made[-1]

    monkeypatch.setattr(cli_forget, "new_producer", factory)
    monkeypatch.setattr(cli_forget, "worker_absent", lambda _settings: None)
    for name in ("FUNNEL_TOPICS__FORGET", "FUNNEL_BOOTSTRAP_SERVERS", "FUNNEL_PARTITIONS"):
        monkeypatch.delenv(name, raising=False)
    return made


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    fake = FakeStore({"u-1": ["a-2", "a-1"], "u-single": ["a-9"]})
    monkeypatch.setattr(cli_forget, "store_client", lambda _settings: fake)
    return fake


def run_cli(*args: str) -> Any:
    app = typer.Typer()
    app.command()(cli_forget.forget)
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give exactly one of --user ID"),
        (("--user", "u", "--anonymous-id", "a"), "give exactly one of --user ID"),
        (("--user", " "), "--user is empty"),
        (("--anonymous-id", "a\tb"), "--anonymous-id 'a\\tb' contains the control character"),
        (("--anonymous-id", "a", "--from", "soon"), "--from 'soon' is not an ISO date"),
        (("--anonymous-id", "a", "--from", "2026-11-04", "--to", "2026-11-03"), "not after"),
        (("--anonymous-id", "a", "--request-id", "a b"), "--request-id 'a b' contains ' '"),
        (("--anonymous-id", "a", "--dry-run", "--wait", "5"), "nothing to --wait for"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    args: tuple[str, ...], message: str, kafka: list[FakeProducer], store: FakeStore
) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert kafka == [] and store.queries == []


def test_a_negative_wait_is_refused(kafka: list[FakeProducer]) -> None:
    result = run_cli("--anonymous-id", "a", "--wait", "-1")
    assert result.exit_code == 2
    assert kafka == []


def test_dry_run_resolves_the_user_and_sends_nothing(
    kafka: list[FakeProducer], store: FakeStore
) -> None:
    result = run_cli("--user", "u-1", "--request-id", "T-1", "--from", "2026-11-03", "--dry-run")
    assert result.exit_code == 0, result.output
    assert kafka == []
    out = result.output
    assert "T-1.1" in out and "T-1.2" in out and "a-1" in out and "a-2" in out
    assert "partitions as for 4 (FUNNEL_PARTITIONS)" in " ".join(out.split())
    assert "dry run: 2 forget request(s)" in out and "nothing sent to shop.forget" in out


def test_a_user_without_events_exits_1_and_sends_nothing(
    kafka: list[FakeProducer], store: FakeStore
) -> None:
    result = run_cli("--user", "nobody")
    assert result.exit_code == 1
    assert "no event of user_id 'nobody' is in the store" in result.output
    assert "nothing sent" in result.output
    assert kafka == []


def test_forgetting_a_user_sends_one_request_per_visitor(
    kafka: list[FakeProducer], store: FakeStore
) -> None:
    result = run_cli("--user", "u-1", "--request-id", "T-1", "--to", "2026-11-04")
    assert result.exit_code == 0, result.output
    [producer] = kafka
    assert [decode_forget(v) for _, _, v, _ in producer.sent] == [
        ForgetRequest("T-1.1", "a-1", None, T0 + DAY),
        ForgetRequest("T-1.2", "a-2", None, T0 + DAY),
    ]
    assert [k for _, k, _, _ in producer.sent] == [b"a-1", b"a-2"]
    partition = partition_for(b"a-1", 4)
    assert f"T-1.1 -> partition {partition}" in result.output
    assert "sent 2 forget request(s)" in result.output


def test_one_visitor_keeps_the_request_id_and_gets_a_fresh_one_by_default(
    kafka: list[FakeProducer], store: FakeStore
) -> None:
    assert run_cli("--user", "u-single", "--request-id", "T-2").exit_code == 0
    assert run_cli("--anonymous-id", "a-5").exit_code == 0
    first, second = (decode_forget(p.sent[0][2]) for p in kafka)
    assert isinstance(first, ForgetRequest) and first.request_id == "T-2"
    assert isinstance(second, ForgetRequest) and second.whole_life
    assert len(second.request_id) == 32 and int(second.request_id, 16) >= 0
    assert store.queries and "events_raw" in store.queries[0]


def test_wait_prints_what_each_request_removed(kafka: list[FakeProducer], store: FakeStore) -> None:
    result = run_cli("--anonymous-id", "a-1", "--request-id", "T-3", "--wait", "5")
    assert result.exit_code == 0, result.output
    assert "done: 1 request(s); the audit is in the forget_audit table" in result.output
    assert "events forgotten" in result.output and "0.250" in result.output


def test_wait_timeout_exits_1(kafka: list[FakeProducer], store: FakeStore) -> None:
    store.done = False
    result = run_cli("--anonymous-id", "a-1", "--request-id", "T-4", "--wait", "0.001")
    assert result.exit_code == 1
    assert "not done yet: T-4" in " ".join(result.output.split())
    assert "`funnel worker`" in result.output


def test_kafka_unreachable_exits_1(
    monkeypatch: pytest.MonkeyPatch, kafka: list[FakeProducer]
) -> None:
    monkeypatch.setattr(cli_forget, "new_producer", lambda _b: FakeProducer(fail_start=True))
    result = run_cli("--anonymous-id", "a-1")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "cannot connect to Kafka" in text and "`funnel broker start`" in text


def test_the_command_is_mounted() -> None:
    from funnel import cli

    cli._mount_optional_commands()
    result = CliRunner().invoke(cli.app, ["forget", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--anonymous-id" in result.output and "--request-id" in result.output

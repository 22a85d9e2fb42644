"""The runtime's tick tells the ClickHouse writer when the input is behind.

Driven without a broker, on a fake clock (the harness of the idle-stop tests): the
``end`` offsets are the broker, ``consume_some`` the agent's batches.
"""

from __future__ import annotations

from unittest.mock import call

from tests.unit.test_runtime_idle_stop import Clock, clock  # noqa: F401
from tests.unit.test_runtime_input_stall import StallHarness


def caught_up(clock: Clock) -> StallHarness:  # noqa: F811
    """A harness whose first tick saw the input caught up (100 records, all processed)."""
    h = StallHarness(clock)
    h.produce("clickstream", 100)
    h.consume_some("clickstream", 100)
    h.tick()
    return h


def test_a_backlog_switches_the_writer_to_bulk_inserts_until_it_is_worked_off(
    clock: Clock,  # noqa: F811
) -> None:
    h = caught_up(clock)
    writer = h.runtime.writer
    assert writer.set_behind.call_args_list == []
    h.produce("clickstream", 60_000)  # a burst: 6 s of work at 10,000 a second
    h.consume_some("clickstream", 10_000)
    h.tick()
    assert writer.set_behind.call_args_list == []  # one tick behind: not yet
    h.consume_some("clickstream", 10_000)
    h.tick()
    assert writer.set_behind.call_args_list == [call(True)]
    h.runtime.metrics.input_behind.set.assert_called_with(1)
    h.consume_some("clickstream", 30_000)
    h.tick()  # 10,000 left, 30,000 a second: less than a second of work
    assert writer.set_behind.call_args_list[-1] == call(False)
    h.runtime.metrics.input_behind.set.assert_called_with(0)
    h.consume_some("clickstream", 10_000)
    h.tick()
    assert writer.behind is False
    assert writer.set_behind.call_count == 2


def test_records_waiting_while_none_are_processed_count_as_behind(
    clock: Clock,  # noqa: F811
) -> None:
    h = StallHarness(clock)
    h.produce("orders", 10)
    h.tick()  # no rate yet: no verdict
    h.tick()
    assert h.runtime.writer.set_behind.call_args_list == []
    h.tick()
    assert h.runtime.writer.behind is True


def test_a_rebalance_ends_the_bulk_mode_and_the_input_is_measured_afresh(
    clock: Clock,  # noqa: F811
) -> None:
    h = caught_up(clock)
    writer = h.runtime.writer
    h.produce("clickstream", 60_000)
    for _ in range(2):
        h.consume_some("clickstream", 10_000)
        h.tick()
    assert writer.set_behind.call_args_list == [call(True)]
    # The commit at hand-over must not wait for a bulk insert: the group waits for it.
    h.runtime.leave_bulk_mode("a rebalance")
    assert writer.set_behind.call_args_list == [call(True), call(False)]
    h.runtime.metrics.input_behind.set.assert_called_with(0)
    # Still behind afterwards: bulk again only after two ticks that say so.
    h.consume_some("clickstream", 10_000)
    h.tick()
    assert writer.set_behind.call_args_list[-1] == call(False)
    h.consume_some("clickstream", 10_000)
    h.tick()
    assert writer.set_behind.call_args_list[-1] == call(True)


def test_leaving_the_bulk_mode_when_not_in_it_tells_the_writer_nothing(
    clock: Clock,  # noqa: F811
) -> None:
    h = caught_up(clock)
    h.runtime.leave_bulk_mode("a rebalance")
    assert h.runtime.writer.set_behind.call_args_list == []

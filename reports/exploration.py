"""Query-time exploration over ``events_raw`` (docs/semantics.md section 3a).

`funnel query funnel|paths|retention`: each person (``anonymous_id``) is counted once
in a time range, computed by ClickHouse SQL over the counted events (on time, a
purchase only in its earliest copy per transaction). Every builder here is a pure
function returning ``(sql, parameters)``: user values travel as query parameters; the
only things formatted into the SQL are integers parsed here and fixed expressions
chosen from the tables below (never the user's text).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from reports.errors import ReportError
from schemas.custom import CUSTOM_EVENT_NAME, PROPERTY_KEY
from schemas.model import STREAM_OF_EVENT


class ExplorationError(ReportError):
    """A `funnel query` option is invalid; the message names the option and the fix."""


MODES: Final = ("ordered", "strict", "unordered")
PERIODS: Final = ("day", "week", "month")
_EXPERIMENT_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_WINDOW: Final = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_UNIT_MS["w"] = 7 * _UNIT_MS["d"]
MAX_WINDOW_MS: Final = 366 * _UNIT_MS["d"]
MAX_STEPS: Final = 10

# Built-in properties a --where may filter on: name -> column expression of events_raw.
WHERE_COLUMNS: Final[dict[str, str]] = {
    "channel": "channel",
    "device": "device",
    "platform": "platform",
    "country": "country",
    "campaign": "utm_campaign",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "referrer": "referrer",
    "page_url": "page_url",
    "page_path": "path(page_url)",
    "referral_code": "referral_code",
    "coupon": "coupon",
    "currency": "currency",
    "payment_type": "payment_type",
}
# Dimensions a --by may break down by.
DIMENSION_COLUMNS: Final[dict[str, str]] = {
    name: WHERE_COLUMNS[name] for name in ("channel", "device", "platform", "country", "campaign")
}

# The counted events (docs/semantics.md section 1) of [from, to): on time, and a purchase
# only in its earliest (event_time, event_id) copy per (anonymous_id, transaction_id),
# chosen over all stored time (a copy before the range wins over one inside it).
_COUNTED: Final = """
counted AS (
    SELECT *, toUnixTimestamp64Milli(event_time) AS t
    FROM events_raw FINAL
    WHERE is_late = 0
      AND event_time >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC')
      AND event_time < fromUnixTimestamp64Milli({to_ms:Int64}, 'UTC')
      AND (event_type != 'purchase' OR (anonymous_id, event_id) IN (
          SELECT anonymous_id, argMin(event_id, (event_time, event_id))
          FROM events_raw FINAL
          WHERE is_late = 0 AND event_type = 'purchase'
          GROUP BY anonymous_id, transaction_id))
)"""


# -- input parsing and validation -------------------------------------------------------


def parse_event(value: str, option: str) -> str:
    """A built-in event type (schemas/model.py) or ``custom:<name>``."""
    if value in STREAM_OF_EVENT:
        return value
    if value.startswith("custom:") and CUSTOM_EVENT_NAME.fullmatch(value[len("custom:") :]):
        return value
    raise ExplorationError(
        f"{option} {value!r} is not an event type: use a built-in type "
        f"({', '.join(sorted(STREAM_OF_EVENT)[:6])}, ...; see schemas/model.py) or "
        "custom:<event_name> (a letter, then at most 39 letters, digits or underscores)"
    )


def parse_steps(value: str) -> tuple[str, ...]:
    steps = tuple(s.strip() for s in value.split(",") if s.strip())
    if not 2 <= len(steps) <= MAX_STEPS:
        raise ExplorationError(
            f"--steps {value!r} has {len(steps)} step(s): give 2 to {MAX_STEPS} event types "
            "separated by commas (e.g. --steps view_item,add_to_cart,purchase)"
        )
    return tuple(parse_event(step, "--steps") for step in steps)


def parse_window(value: str) -> int:
    """``30m``, ``2h``, ``1d``, ``1w`` (also ``ms``, ``s``) -> milliseconds."""
    match = _WINDOW.fullmatch(value.strip())
    ms = int(match.group(1)) * _UNIT_MS[match.group(2)] if match else 0
    if not match or not 0 < ms <= MAX_WINDOW_MS:
        raise ExplorationError(
            f"--window {value!r} is not a conversion window: a positive whole number and a "
            "unit (ms, s, m, h, d, w), at most 366d (e.g. --window 1d or --window 30m)"
        )
    return ms


def parse_time(value: str, option: str) -> datetime:
    """An ISO date or datetime; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ExplorationError(
            f"{option} {value!r} is not an ISO date or datetime: e.g. 2026-11-01 or "
            "2026-11-01T12:00:00 (UTC unless an offset is given)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def time_range(start: str, end: str) -> tuple[int, int]:
    """``--from`` and ``--to`` as epoch milliseconds, ``[from, to)``."""
    lo, hi = parse_time(start, "--from"), parse_time(end, "--to")
    if hi <= lo:
        raise ExplorationError(
            f"--to {end!r} is not after --from {start!r}: the range is [from, to), give a "
            "later --to"
        )
    return int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Exclusion:
    event: str
    from_step: int
    to_step: int


def parse_exclusion(value: str, steps: int) -> Exclusion:
    """``EVENT:FROM:TO`` with 1 <= FROM < TO <= steps (EVENT may be ``custom:<name>``)."""
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ExplorationError(
            f"--exclude {value!r} is not EVENT:FROM:TO: e.g. --exclude remove_from_cart:2:3 "
            "(people with that event between steps 2 and 3 leave the funnel)"
        )
    event = parse_event(parts[0], "--exclude")
    lo, hi = int(parts[1]), int(parts[2])
    if not 1 <= lo < hi <= steps:
        raise ExplorationError(
            f"--exclude {value!r}: steps {lo} to {hi} are out of range: need "
            f"1 <= FROM < TO <= {steps} (the number of --steps)"
        )
    return Exclusion(event, lo, hi)


def _property_expression(name: str, option: str, params: dict[str, Any], tag: str) -> str:
    """The SQL expression of a property: a column, ``properties.<key>`` or
    ``experiment:<name>`` (the key travels as parameter ``tag``)."""
    columns = DIMENSION_COLUMNS if option == "--by" else WHERE_COLUMNS
    if name in columns:
        return columns[name]
    if name.startswith("properties.") and PROPERTY_KEY.fullmatch(name[len("properties.") :]):
        params[tag] = name[len("properties.") :]
        return f"properties[{{{tag}:String}}]"
    if name.startswith("experiment:") and _EXPERIMENT_NAME.fullmatch(name[len("experiment:") :]):
        params[tag] = name[len("experiment:") :]
        return f"experiments[{{{tag}:String}}]"
    raise ExplorationError(
        f"{option} {name!r} is not a known {'dimension' if option == '--by' else 'property'}: "
        f"use one of {', '.join(columns)}, experiment:<name> or properties.<key>"
    )


def parse_where(values: list[str], params: dict[str, Any]) -> str:
    """``PROPERTY=VALUE`` conditions (all must hold) as one SQL expression ("1" if none)."""
    conditions = []
    for n, value in enumerate(values):
        name, sep, wanted = value.partition("=")
        if not sep or not name.strip():
            raise ExplorationError(
                f"--where {value!r} is not PROPERTY=VALUE: e.g. --where channel=email or "
                "--where properties.membership_tier=gold"
            )
        expression = _property_expression(name.strip(), "--where", params, f"wk{n}")
        params[f"wv{n}"] = wanted
        conditions.append(f"({expression} = {{wv{n}:String}})")
    return " AND ".join(conditions) or "1"


def parse_attribution(value: str, steps: int) -> tuple[str, int]:
    """``first_touch`` -> ("first", 1), ``last_touch`` -> ("last", 0), ``step:N`` -> ("step", N)."""
    if value == "first_touch":
        return "first", 1
    if value == "last_touch":
        return "last", 0
    if value.startswith("step:") and value[5:].isdigit() and 1 <= int(value[5:]) <= steps:
        return "step", int(value[5:])
    raise ExplorationError(
        f"--attribution {value!r} is not valid: use first_touch, last_touch or step:N with "
        f"1 <= N <= {steps} (the number of --steps)"
    )


# -- funnel -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunnelQuery:
    steps: tuple[str, ...]
    from_ms: int
    to_ms: int
    window_ms: int = 86_400_000
    mode: str = "ordered"
    exclusions: tuple[Exclusion, ...] = ()
    where: tuple[str, ...] = ()
    by: str | None = None
    attribution: str = "first_touch"


@dataclass(frozen=True, slots=True)
class FunnelStepResult:
    breakdown: str | None
    step: int
    event: str
    people: int
    from_previous: float | None
    from_first: float | None
    avg_s: float | None  # time from the previous step's event, seconds
    median_s: float | None


def validate_funnel(query: FunnelQuery) -> None:
    if query.mode not in MODES:
        raise ExplorationError(f"--mode {query.mode!r}: use one of {', '.join(MODES)}")
    if query.exclusions and query.mode != "ordered":
        raise ExplorationError(
            f"--exclude needs --mode ordered: in {query.mode} mode no order between two "
            "steps defines 'between' (drop --exclude or use --mode ordered)"
        )
    if query.mode == "unordered" and len(set(query.steps)) != len(query.steps):
        raise ExplorationError(
            "--mode unordered needs distinct event types in --steps (each event fills at "
            "most one step); remove the repeated step"
        )


def _match(step: int, index: str) -> str:
    """Event at array position ``index`` matches step ``step`` (1-based)."""
    return f"(types[{index}] = {{s{step}:String}} AND oks[{index}])"


def funnel_sql(query: FunnelQuery) -> tuple[str, dict[str, Any]]:
    """Per (breakdown value, step k): people who reached step k, and the average and
    median (exact, interpolated) seconds between their step k-1 and step k events."""
    validate_funnel(query)
    n = len(query.steps)
    w = int(query.window_ms)
    params: dict[str, Any] = {"from_ms": query.from_ms, "to_ms": query.to_ms}
    for k, step in enumerate(query.steps, 1):
        params[f"s{k}"] = step
    ok = parse_where(list(query.where), params)
    dim = _property_expression(query.by, "--by", params, "bk") if query.by else "''"
    kind, attributed_step = parse_attribution(query.attribution, n)
    for e, exclusion in enumerate(query.exclusions):
        params[f"x{e}"] = exclusion.event
    # strict mode needs every event of the person (any other event breaks a chain).
    relevant = (
        ""
        if query.mode == "strict"
        else "WHERE event_type IN ("
        + ", ".join(
            [f"{{s{k}:String}}" for k in range(1, n + 1)]
            + [f"{{x{e}:String}}" for e in range(len(query.exclusions))]
        )
        + ")"
    )
    conditions = ", ".join(f"event_type = {{s{k}:String}} AND ({ok})" for k in range(1, n + 1))
    enum = "arrayEnumerate(ts)"
    if query.mode == "unordered":
        starts = " OR ".join(_match(k, "j") for k in range(1, n + 1))
        firsts = ", ".join(
            f"arrayFirstIndex(j -> j >= i1 AND {_match(k, 'j')} AND ts[j] <= t1 + {w}, {enum})"
            for k in range(1, n + 1)
        )
        chain = f"arraySort(arrayFilter(x -> x > 0, [{firsts}])) AS idx"
    else:
        starts = _match(1, "j")
        links = ["i1"]
        for k in range(2, n + 1):
            p = f"i{k - 1}"
            if query.mode == "strict":
                nxt = f"{p} + 1"
                found = (
                    f"{p} > 0 AND {p} < length(ts) AND {_match(k, nxt)} AND ts[{nxt}] <= t1 + {w}"
                )
                links.append(f"if({found}, {nxt}, 0) AS i{k}")
            else:
                links.append(
                    f"if({p} = 0, 0, arrayFirstIndex(j -> j > {p} AND {_match(k, 'j')} "
                    f"AND ts[j] <= t1 + {w}, {enum})) AS i{k}"
                )
        chain = (
            ", ".join(links[1:])
            + ", arrayFilter(x -> x > 0, ["
            + ", ".join(f"i{k}" for k in range(1, n + 1))
            + "]) AS idx"
        )
    excluded = [
        f"(length(idx) >= {x.to_step} AND arrayExists(j -> j > idx[{x.from_step}] "
        f"AND j < idx[{x.to_step}] AND types[j] = {{x{e}:String}} AND NOT has(idx, j), {enum}))"
        for e, x in enumerate(query.exclusions)
    ]
    qualifies = " OR ".join(excluded) if excluded else "0"
    # ordered without exclusions: the level is windowFunnel's (the furthest step over all
    # the person's events); otherwise the best qualifying chain's (they agree without ties).
    level = "wf_level" if query.mode == "ordered" and not excluded else "length(idx)"
    if kind == "first":
        pick = "idx[1]"
    elif kind == "last":
        pick = "idx[length(idx)]"
    else:
        pick = f"if(length(idx) >= {attributed_step}, idx[{attributed_step}], 0)"
    sql = f"""
WITH {_COUNTED.strip()},
people AS (
    SELECT anonymous_id,
           windowFunnel({w})(toUInt64(t), {conditions}) AS wf_level,
           arraySort(x -> (x.1, x.2), groupArray((t, event_id, event_type, {ok}, {dim}))) AS ev
    FROM counted {relevant}
    GROUP BY anonymous_id
),
arrays AS (
    SELECT anonymous_id, wf_level,
           arrayMap(x -> x.1, ev) AS ts, arrayMap(x -> x.3, ev) AS types,
           arrayMap(x -> toUInt8(x.4), ev) AS oks, arrayMap(x -> toString(x.5), ev) AS dims
    FROM people
),
attempts AS (
    SELECT anonymous_id, wf_level, ts, dims, i1, ts[i1] AS t1, {chain},
           NOT ({qualifies}) AS qualifies
    FROM arrays
    ARRAY JOIN arrayFilter(j -> {starts}, {enum}) AS i1
),
credited AS (
    SELECT anonymous_id, any(wf_level) AS wf_level, any(ts) AS ts, any(dims) AS dims,
           argMax(idx, (length(idx), -toInt64(i1))) AS idx
    FROM attempts WHERE qualifies
    GROUP BY anonymous_id
),
persons AS (
    SELECT anonymous_id, {level} AS level, arrayMap(j -> ts[j], idx) AS times,
           if({pick} > 0, dims[{pick}], '') AS dim
    FROM credited
)
SELECT dim, k, count() AS people,
       countIf(gap >= 0) AS timed,
       avgIf(gap, gap >= 0) AS avg_s,
       quantileExactInclusiveIf(0.5)(gap, gap >= 0) AS median_s
FROM (
    SELECT dim, k,
           if(k > 1 AND length(times) >= k, (times[k] - times[k - 1]) / 1000., -1.) AS gap
    FROM persons
    ARRAY JOIN range(1, toUInt64(level) + 1) AS k
    WHERE level > 0
)
GROUP BY dim, k
ORDER BY dim, k
"""
    return sql, params


def _finite(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def run_funnel(client: Any, query: FunnelQuery) -> list[FunnelStepResult]:
    sql, params = funnel_sql(query)
    rows = client.query(sql, parameters=params).result_rows
    grouped: dict[str, dict[int, tuple[int, float | None, float | None]]] = {}
    for dim, k, people, timed, avg_s, median_s in rows:
        timing = (_finite(avg_s), _finite(median_s)) if timed else (None, None)
        grouped.setdefault(str(dim), {})[int(k)] = (int(people), *timing)
    if not grouped and query.by is None:
        grouped[""] = {}
    out: list[FunnelStepResult] = []
    order = sorted(grouped, key=lambda d: (-grouped[d].get(1, (0, None, None))[0], d))
    for dim in order:
        steps = grouped[dim]
        first = steps.get(1, (0, None, None))[0]
        previous = 0
        for k, event in enumerate(query.steps, 1):
            people, avg_s, median_s = steps.get(k, (0, None, None))
            out.append(
                FunnelStepResult(
                    dim if query.by else None,
                    k,
                    event,
                    people,
                    people / previous if k > 1 and previous else None,
                    people / first if k > 1 and first else None,
                    avg_s,
                    median_s,
                )
            )
            previous = people
    return out


# -- paths ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathEdge:
    step: int  # 1: the anchor and the event next to it; k: k-1 events away -> k events away
    source: str
    target: str
    count: int


def paths_sql(
    event: str, direction: str, from_ms: int, to_ms: int, depth: int = 3, limit: int = 20
) -> tuple[str, dict[str, Any]]:
    """Sessions' paths after (``direction='after'``) the session's first ``event``, or
    before (``'before'``) its last one: per step, the most common (source, target) pairs.
    For 'before', source is the earlier event (left to right, as a Sankey reads)."""
    if direction not in ("after", "before"):
        raise ExplorationError(
            f"direction {direction!r}: give exactly one of --after EVENT (paths after it) "
            "or --before EVENT (paths before it)"
        )
    if not 1 <= depth <= 20:
        raise ExplorationError(f"--depth {depth} is out of range: use 1 to 20")
    if not 1 <= limit <= 10_000:
        raise ExplorationError(f"--limit {limit} is out of range: use 1 to 10000")
    params: dict[str, Any] = {"from_ms": from_ms, "to_ms": to_ms, "anchor": event}
    if direction == "after":
        path = f"arraySlice(seq, indexOf(seq, {{anchor:String}}), {depth + 1})"
        pair = "path[k] AS source, path[k + 1] AS target"
    else:
        # Reversed so that path[1] is the anchor and path[k + 1] the event k before it.
        path = (
            f"arraySlice(arrayReverse(seq), indexOf(arrayReverse(seq), {{anchor:String}}), "
            f"{depth + 1})"
        )
        pair = "path[k + 1] AS source, path[k] AS target"
    sql = f"""
WITH {_COUNTED.strip()},
sessions AS (
    SELECT arrayMap(x -> x.3, arraySort(x -> (x.1, x.2),
               groupArray((t, event_id, toString(event_type))))) AS seq
    FROM counted
    GROUP BY anonymous_id, session_id
    HAVING has(seq, {{anchor:String}})
)
SELECT k, {pair}, count() AS sessions
FROM (SELECT {path} AS path FROM sessions)
ARRAY JOIN arrayEnumerate(arrayPopBack(path)) AS k
GROUP BY k, source, target
ORDER BY k, sessions DESC, source, target
LIMIT {int(limit)} BY k
"""
    return sql, params


def run_paths(
    client: Any,
    event: str,
    direction: str,
    from_ms: int,
    to_ms: int,
    depth: int = 3,
    limit: int = 20,
) -> list[PathEdge]:
    sql, params = paths_sql(event, direction, from_ms, to_ms, depth, limit)
    return [
        PathEdge(int(k), str(s), str(t), int(c))
        for k, s, t, c in client.query(sql, parameters=params).result_rows
    ]


# -- retention --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionCohort:
    cohort: date
    size: int
    returned: tuple[int | None, ...]  # per period 0..P-1; None: not started before --to

    def rate(self, k: int) -> float | None:
        value = self.returned[k]
        return None if value is None or not self.size else value / self.size


_PERIOD_START: Final = {
    "day": "toDate({})",
    "week": "toMonday({})",
    "month": "toStartOfMonth({})",
}
_PERIOD_INDEX: Final = {
    "day": "toRelativeDayNum({b}) - toRelativeDayNum({a})",
    "week": "intDiv(toRelativeDayNum(toMonday({b})) - toRelativeDayNum({a}), 7)",
    "month": "toRelativeMonthNum({b}) - toRelativeMonthNum({a})",
}


_RETENTION_CHUNK: Final = 31


def retention_sql(
    start: str, returning: str, period: str, periods: int, from_ms: int, to_ms: int
) -> tuple[str, dict[str, Any]]:
    """Cohorts by the period of each person's first ``start`` event in the range; per
    period k, the people with a ``returning`` event in period k after (period 0: at or
    after that first start event), by ClickHouse's ``retention``."""
    if period not in PERIODS:
        raise ExplorationError(f"--period {period!r}: use one of {', '.join(PERIODS)}")
    if not 1 <= periods <= 120:
        raise ExplorationError(f"--periods {periods} is out of range: use 1 to 120")
    params: dict[str, Any] = {
        "from_ms": from_ms,
        "to_ms": to_ms,
        "start": start,
        "ret": returning,
    }
    cohort = _PERIOD_START[period].format("fromUnixTimestamp64Milli(f.t0, 'UTC')")
    index = _PERIOD_INDEX[period].format(a="cohort", b="toDate(c.event_time)")
    conditions = [
        f"c.event_type = {{ret:String}} AND {index} = {k}" + (" AND c.t >= f.t0" if k == 0 else "")
        for k in range(periods)
    ]
    # ClickHouse's retention takes at most 32 conditions: 1 and up to 31 periods per call.
    n = _RETENTION_CHUNK
    calls = ",\n           ".join(
        f"retention(1, {', '.join(conditions[i : i + n])}) AS r{i // n}"
        for i in range(0, periods, n)
    )
    sums = ", ".join(f"sum(r{k // n}[{k % n + 2}])" for k in range(periods))
    sql = f"""
WITH {_COUNTED.strip()},
firsts AS (
    SELECT anonymous_id, min(t) AS t0 FROM counted
    WHERE event_type = {{start:String}} GROUP BY anonymous_id
),
per_person AS (
    SELECT f.anonymous_id AS anonymous_id, {cohort} AS cohort,
           {calls}
    FROM firsts AS f INNER JOIN counted AS c ON c.anonymous_id = f.anonymous_id
    GROUP BY f.anonymous_id, cohort
)
SELECT cohort, count() AS size,
       {sums}
FROM per_person
GROUP BY cohort ORDER BY cohort
"""
    return sql, params


def _add_period(day: date, period: str, k: int) -> date:
    if period == "day":
        return day + timedelta(days=k)
    if period == "week":
        return day + timedelta(weeks=k)
    months = day.year * 12 + day.month - 1 + k
    return date(months // 12, months % 12 + 1, 1)


def run_retention(
    client: Any,
    start: str,
    returning: str,
    period: str,
    periods: int,
    from_ms: int,
    to_ms: int,
) -> list[RetentionCohort]:
    sql, params = retention_sql(start, returning, period, periods, from_ms, to_ms)
    end = datetime.fromtimestamp(to_ms / 1000, UTC)
    out = []
    for cohort, size, *counts in client.query(sql, parameters=params).result_rows:
        day = cohort if isinstance(cohort, date) else date.fromisoformat(str(cohort))
        if isinstance(day, datetime):
            day = day.date()
        returned = tuple(
            int(c)
            if datetime.combine(_add_period(day, period, k), datetime.min.time(), UTC) < end
            else None
            for k, c in enumerate(counts)
        )
        out.append(RetentionCohort(day, int(size), returned))
    return out

"""`funnel report --html FILE` (issue #17): the SVG primitives, numbers per locale and
currency exponent, escaping of hostile labels, and the whole page from a store filled
by the real processing core.

The store: a simulated week (``simulator.generate``) processed by the real core into
embedded ClickHouse (``tests/core_store.py``). Every chart's ``data-value`` is then
compared with the number the report readers return for it.
"""

from __future__ import annotations

import gc
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any, Final

import clickhouse_connect
import pytest
import typer
from typer.testing import CliRunner

import streams
from funnel import cli
from funnel.cli_html import report_callback, report_html
from reports import attribution as attr
from reports import queries
from reports.errors import ReportError
from reports.experiment_readout import experiment_sums, readout
from reports.html import data as html_data
from reports.html import page, svg
from reports.html.data import AttributionData
from reports.html.fmt import NumberFormat
from simulator.config import SimConfig
from sinks.clickhouse import ClickHouseTarget, apply_migrations, open_client
from sinks.sql_endpoint import SqlEndpoint
from streams.experiments import load_experiments
from streams.funnels import Breakdown, load_funnels
from tests.core_store import DAYS_LIFECYCLE, fill_store

SVG_NS: Final = "{http://www.w3.org/2000/svg}"
NOW: Final = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
DATABASE: Final = "shop"
EXPERIMENTS_FILE: Final = Path(streams.__file__).parent / "experiments.yaml"
# The packaged funnels, the shop funnel broken down by device (a configured breakdown).
FUNNELS_YAML: Final = """\
funnels:
  - name: shop
    steps: [session_start, view_item, add_to_cart, begin_checkout, purchase]
    scope: session
    window: 1h
    breakdown: {dimensions: [device], attribution: first_touch}
  - name: checkout
    steps: [begin_checkout, add_shipping_info, add_payment_info, purchase]
    scope: session
    window: 1h
"""
# A week of traffic with every delivery fault, lifecycle thresholds of days so that
# buyers move through every stage within it.
CONFIG: Final = SimConfig(
    seed=3,
    users=600,
    days=8,
    duplicate_pct=2,
    out_of_order_pct=5,
    late_pct=2,
    malformed_pct=1,
    json_pct=5,
)
HOSTILE: Final = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>&amp;"


# -- the store ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    data_dir: Path  # the embedded store is data_dir / "clickhouse", database "shop"
    funnels_file: Path
    experiments_file: Path = EXPERIMENTS_FILE

    @property
    def dsn(self) -> str:
        return f"chdb:///{(self.data_dir / 'clickhouse').resolve()}"


def build_store(data_dir: Path, config: SimConfig = CONFIG) -> Store:
    """A simulated run processed by the core, in the embedded store under ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    funnels_file = data_dir / "funnels.yaml"
    funnels_file.write_text(FUNNELS_YAML)
    store = Store(data_dir, funnels_file)
    client = open_client(ClickHouseTarget(dsn=store.dsn, database=DATABASE))
    try:
        fill_store(client, config, funnels_file, DAYS_LIFECYCLE)
    finally:
        client.close()
    return store


def write_demo_page(data_dir: Path, out: Path, locale: str = "en_US") -> Path:
    """Build the store and write its page (tests/integration/test_html_report_browser.py
    runs this in a process of its own: chDB opens one directory per process)."""
    store = build_store(data_dir)
    client = open_client(ClickHouseTarget(dsn=store.dsn, database=DATABASE))
    try:
        problems = report_html(
            out,
            client,
            source=f"simulator run (seed {CONFIG.seed}, {CONFIG.users} users, "
            f"{CONFIG.days:g} days) processed by the core",
            locale=locale,
            funnels_file=store.funnels_file,
            experiments_file=store.experiments_file,
            now=NOW,
        )
    finally:
        client.close()
    assert not problems, problems
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    # chDB has one engine per process, on one path: let the clients other modules left go
    # first, and ours before the next module opens its own.
    gc.collect()
    yield build_store(tmp_path_factory.mktemp("html-report") / "data")
    gc.collect()


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[Any]:
    handle = open_client(ClickHouseTarget(dsn=store.dsn, database=DATABASE))
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(scope="module")
def report(store: Store, client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("html-page") / "report.html"
    problems = report_html(
        out,
        client,
        source="test store",
        funnels_file=store.funnels_file,
        experiments_file=store.experiments_file,
        now=NOW,
    )
    assert problems == {}
    return out.read_text()


# -- reading the page back --------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    axis_labels: list[str]
    data: list[dict[str, str]]  # the attributes of each datum
    texts: list[str]

    def values(self, series: str | None = None) -> list[tuple[str, float]]:
        return [
            (d["data-label"], float(d["data-value"]))
            for d in self.data
            if series is None or d.get("data-series") == series
        ]


def charts_of(html: str) -> dict[str, Chart]:
    """Every ``<svg data-chart>`` of the page, parsed as XML (which it must be)."""
    out = {}
    for fragment in re.findall(r"<svg\b.*?</svg>", html, flags=re.S):
        root = ET.fromstring(fragment)
        name = root.attrib["data-chart"]
        title = root.find(f"{SVG_NS}title")
        assert title is not None and title.text == root.attrib["aria-label"]
        out[name] = Chart(
            name,
            title.text,
            [t.text or "" for t in root.iter(f"{SVG_NS}text") if t.get("class") == "axis-label"],
            [
                {k: v for k, v in el.attrib.items() if k.startswith("data-")}
                for el in root.iter()
                if el.get("class") == "datum"
            ],
            ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text")],
        )
    return out


def texts_of(html: str) -> str:
    """The page's visible text, roughly: tags dropped, entities left as they are."""
    return re.sub(r"<[^>]+>", " ", html)


# -- numbers per locale and currency exponent ---------------------------------------------


@pytest.mark.parametrize(
    ("locale", "currency", "minor", "text"),
    [
        ("en_US", "JPY", 169_914, "¥169,914"),  # exponent 0: no decimals
        ("en_US", "KWD", 1_299, "KWD1.299"),  # exponent 3
        ("en_US", "USD", 1_299, "$12.99"),
        ("de_DE", "EUR", 123_456_789, "€1.234.567,89"),
        ("de_DE", "KWD", 1_234_567, "KWD1.234,567"),
        ("de_DE", "JPY", 123_456_789, "¥123.456.789"),
        ("ja_JP", "JPY", 1_000, "￥1,000"),
    ],
)
def test_money_follows_the_currency_exponent_and_the_locale(
    locale: str, currency: str, minor: int, text: str
) -> None:
    assert NumberFormat(locale).money(minor, currency) == text


def test_counts_percentages_ratios_and_durations_per_locale() -> None:
    de, us = NumberFormat("de_DE"), NumberFormat("en-US")
    assert (de.count(1_234_567), us.count(1_234_567)) == ("1.234.567", "1,234,567")
    assert (de.percent(0.1234), us.percent(0.1234)) == ("12,3%", "12.3%")
    assert (de.signed_percent(0.25, 0), de.signed_percent(-0.5), de.signed_percent(0.0)) == (
        "+25%",
        "-50,0%",
        "0,0%",
    )
    assert (de.ratio(1234.5), us.ratio(1234.5), us.ratio(None)) == ("1.234,50", "1,234.50", "-")
    assert (de.duration(42.5), us.duration(200), us.duration(7500)) == ("42,5s", "3m 20s", "2h 05m")
    assert (de.pvalue(0.0312), us.pvalue(1e-9)) == ("0,031", "<0.001")
    assert (de.day(date(2026, 11, 1)), us.day(date(2026, 11, 1))) == ("1. Nov.", "Nov 1")
    assert us.hour(datetime(2026, 11, 1, 14)) == "Nov 1 14:00"
    assert (de.tag, us.tag) == ("de-DE", "en-US")


def test_an_unknown_locale_names_the_fix() -> None:
    with pytest.raises(ReportError, match=r"unknown locale 'xx_YY'.*de_DE"):
        NumberFormat("xx_YY")


def test_money_on_chart_axes_and_bars_uses_the_currency_exponent_and_locale() -> None:
    rows = [
        attr.ChannelRoas("paid_search", "KWD", 1_234_567, True, {"last_non_direct": 2_600_000}),
        attr.ChannelRoas("email", "JPY", 250_000, True, {"last_non_direct": 1_000_000_000_000}),
    ]
    days = attr.DayRange(date(2026, 11, 1), date(2026, 11, 7))
    charts = charts_of(
        "".join(page.attribution_charts(AttributionData("last_non_direct", days, rows), DE))
    )
    kwd, jpy = charts["cost-revenue/KWD"], charts["cost-revenue/JPY"]
    assert "KWD1.234,567" in kwd.texts  # the cost bar: three decimals, de_DE separators
    assert "KWD0,003" in kwd.texts  # 2.6 minor units of net revenue, shown to the fils
    assert any(re.fullmatch(r"KWD\d[\d.]*,\d{3}", t) for t in kwd.texts if t != "KWD1.234,567")
    assert "¥250.000" in jpy.texts and "¥1.000.000" in jpy.texts  # no decimals for yen
    assert all("," not in t for t in jpy.texts if t.startswith("¥"))
    assert kwd.values("cost") == [("paid_search", 1_234_567.0)]
    assert kwd.values("net revenue (last_non_direct)") == [("paid_search", 2.6)]
    roas = charts["roas-by-channel"]
    assert ("paid_search (KWD)", 2.6 / 1_234_567) in roas.values("last_non_direct")


DE: Final = NumberFormat("de_DE")
US: Final = NumberFormat("en_US")


# -- chart primitives ---------------------------------------------------------------------------


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert svg.nice_ticks(0, 733) == [0, 200, 400, 600, 800]
    assert svg.nice_ticks(-0.389, 0.67) == [-0.5, -0.25, 0, 0.25, 0.5, 0.75]
    assert svg.nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.nice_ticks(3, 3)[0] <= 3 <= svg.nice_ticks(3, 3)[-1]


def test_a_bar_chart_has_a_title_axis_labels_and_one_exact_element_per_datum() -> None:
    data = [
        svg.Datum("a", 3, "3"),
        svg.Datum("b", 0.1 + 0.2, "0.3", {"step": "2"}),
        svg.Datum("c", 0, "0"),
    ]
    for horizontal in (False, True):
        text = svg.bar_chart(
            "bars", "Bars", data, x_label="letter", y_label="count", tick=US.count,
            horizontal=horizontal,
        )  # fmt: skip
        (chart,) = charts_of(text).values()
        assert chart.name == "bars" and chart.title == "Bars"
        assert sorted(chart.axis_labels) == ["count", "letter"]
        assert chart.values() == [("a", 3.0), ("b", 0.1 + 0.2), ("c", 0.0)]
        assert chart.data[1]["data-value"] == repr(0.1 + 0.2)  # exact, not rounded
        assert chart.data[1]["data-step"] == "2"
        assert {"a", "b", "c", "3", "0.3", "0"} <= set(chart.texts)


def test_a_grouped_chart_names_each_series() -> None:
    text = svg.grouped_bar_chart(
        "groups",
        "Groups",
        ["x", "y"],
        [
            svg.Series("one", [svg.Datum("x", 1, "1"), None]),
            svg.Series("two", [svg.Datum("x", 2, "2"), svg.Datum("y", 4, "4")]),
        ],
        x_label="category",
        y_label="value",
        tick=US.count,
        horizontal=True,
    )
    chart = charts_of(text)["groups"]
    assert chart.values("one") == [("x", 1.0)]  # None: no element
    assert chart.values("two") == [("x", 2.0), ("y", 4.0)]
    assert "one" in chart.texts and "two" in chart.texts  # the legend


def test_a_line_chart_draws_a_point_per_value_and_breaks_at_a_gap() -> None:
    values = [svg.Datum("t0", 0.5, "50%"), None, svg.Datum("t2", 0.25, "25%")]
    values += [svg.Datum("t3", 0.75, "75%")]
    text = svg.line_chart(
        "lines", "Lines", ["t0", "t1", "t2", "t3"], [svg.Series("s", values)],
        x_label="time", y_label="rate", tick=US.percent,
    )  # fmt: skip
    chart = charts_of(text)["lines"]
    assert chart.values("s") == [("t0", 0.5), ("t2", 0.25), ("t3", 0.75)]
    assert text.count("<polyline") == 1  # t0 stands alone; t2-t3 is one line


def test_a_heatmap_leaves_missing_cells_blank() -> None:
    cells: list[list[svg.Datum | None]] = [
        [svg.Datum("r1", 1.0, "100%"), svg.Datum("r1", 0.2, "20%")],
        [svg.Datum("r2", 1.0, "100%"), None],
    ]
    text = svg.heatmap(
        "heat", "Heat", ["r1", "r2"], ["P0", "P1"], cells, x_label="period", y_label="cohort",
        row_notes=["n=5", "n=4"],
    )  # fmt: skip
    chart = charts_of(text)["heat"]
    assert [(d["data-label"], d["data-series"]) for d in chart.data] == [
        ("r1", "P0"), ("r1", "P1"), ("r2", "P0"),
    ]  # fmt: skip
    assert {"n=5", "n=4", "20%"} <= set(chart.texts)


def test_an_interval_plot_keeps_unbounded_ends_exact_and_draws_them_as_arrows() -> None:
    text = svg.interval_plot(
        "iv",
        "Intervals",
        [
            svg.Interval("B: primary", 0.1, -0.05, 0.25, "+10%", series="B"),
            svg.Interval("B: guard", 0.4, -math.inf, 3.5, "+40%", series="B"),
        ],
        x_label="lift",
        y_label="metric",
        tick=US.signed_percent,
    )
    chart = charts_of(text)["iv"]
    assert [(d["data-low"], d["data-value"], d["data-high"]) for d in chart.data] == [
        ("-0.05", "0.1", "0.25"),
        ("-inf", "0.4", "3.5"),
    ]
    assert text.count('class="open-end"') == 2  # -inf and 3.5 (beyond +100%)
    assert sorted(chart.axis_labels) == ["lift", "metric"]


# -- escaping -----------------------------------------------------------------------------------


def test_hostile_labels_are_text_in_every_primitive() -> None:
    d = svg.Datum(HOSTILE, 1, HOSTILE, {"x": HOSTILE})
    outputs = [
        svg.bar_chart(HOSTILE, HOSTILE, [d], x_label=HOSTILE, y_label=HOSTILE, tick=US.count),
        svg.grouped_bar_chart(
            "g", HOSTILE, [HOSTILE], [svg.Series(HOSTILE, [d])], x_label=HOSTILE,
            y_label=HOSTILE, tick=US.count, horizontal=True,
        ),
        svg.line_chart(
            "l", HOSTILE, [HOSTILE], [svg.Series(HOSTILE, [d])], x_label=HOSTILE,
            y_label=HOSTILE, tick=US.count,
        ),
        svg.heatmap(
            "h", HOSTILE, [HOSTILE], [HOSTILE], [[d]], x_label=HOSTILE, y_label=HOSTILE,
            row_notes=[HOSTILE],
        ),
        svg.interval_plot(
            "i", HOSTILE, [svg.Interval(HOSTILE, 0.1, 0, 0.2, HOSTILE, HOSTILE, {"x": HOSTILE})],
            x_label=HOSTILE, y_label=HOSTILE, tick=US.percent,
        ),
    ]  # fmt: skip
    for text in outputs:
        assert "<script" not in text and "<img" not in text
        (chart,) = charts_of(text).values()  # well-formed: nothing broke out of its place
        assert chart.title == HOSTILE
        assert chart.data[0]["data-label"] == HOSTILE and chart.data[0]["data-x"] == HOSTILE
        assert HOSTILE in chart.axis_labels


def test_hostile_values_from_the_store_are_escaped_on_the_page() -> None:
    steps = [
        queries.FunnelStepRow("shop", 1, "view_item", 10, None, None),
        queries.FunnelStepRow("shop", 2, HOSTILE, 4, 0.4, 0.4),
    ]
    funnel = html_data.FunnelData(
        "shop",
        steps,
        queries.Timing(4, 60.0, 50.0),
        Breakdown(("properties.coupon",)),
        [((HOSTILE,), [6, 3]), (("",), [4, 1])],
        [(HOSTILE, [10, 4])],
        [(60.0, 4)],
    )
    data = html_data.ReportData(
        source=HOSTILE,
        generated_at=NOW,
        kpis=[queries.KpiRow(HOSTILE, 1, 100, 100.0, 0, 0, 1, 1, 0, 0)],
        pipeline={HOSTILE: 1},
        funnels=[funnel],
        dead_letters=[(HOSTILE, 3)],
        late_events=[(NOW, 2)],
        attribution=AttributionData(
            "last_non_direct",
            attr.DayRange(date(2026, 11, 1), date(2026, 11, 2)),
            [attr.ChannelRoas(HOSTILE, "CNY", 100, True, {"last_non_direct": 200_000_000})],
        ),
        problems={"retention": HOSTILE},
    )
    text = page.render(data, US)
    assert "<script" not in text and "<img" not in text
    assert text.count("&lt;script&gt;") >= 8  # every place a hostile value reached
    charts = charts_of(text)
    assert charts["funnel-breakdown/shop"].values("view_item")[0] == (HOSTILE, 6.0)
    assert charts["funnel-channels/shop"].values("view_item") == [(HOSTILE, 10.0)]
    assert charts["funnel-steps/shop"].values() == [("view_item", 10.0), (HOSTILE, 4.0)]
    assert charts["dead-letters"].values() == [(HOSTILE, 3.0)]
    assert charts["cost-revenue/CNY"].values("cost") == [(HOSTILE, 100.0)]
    # The hostile text is on the page as text.
    assert escape(HOSTILE) in texts_of(text)


# -- the whole page from a store filled by the core ---------------------------------------------

EXPECTED_CHARTS: Final = (
    "conversion-over-time",
    "funnel-steps/shop",
    "funnel-breakdown/shop",
    "funnel-channels/shop",
    "time-to-convert/shop",
    "funnel-steps/checkout",
    "funnel-channels/checkout",
    "time-to-convert/checkout",
    "retention",
    "lifecycle-stages",
    "lifecycle-sizes",
    "lifecycle-flows",
    "lifecycle-triggers",
    "experiment/checkout_button",
    "experiment/free_shipping_banner",
    "roas-by-channel",
    "cost-revenue/CNY",
    "dead-letters",
    "late-events",
)


def test_every_chart_is_drawn_with_data(report: str) -> None:
    charts = charts_of(report)
    assert set(charts) == set(EXPECTED_CHARTS)
    assert 'class="no-data"' not in report
    for chart in charts.values():
        assert chart.title and chart.data, chart.name
        assert len(chart.axis_labels) == 2 and all(chart.axis_labels), chart.name
    # Self-contained: no script, nothing fetched from anywhere.
    assert "<script" not in report
    assert not re.search(r"""(src|href)=["'](?!#)""", report)
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", report)


def _step_counts(chart: Chart, steps: list[str]) -> list[tuple[str, list[int]]]:
    """Per category of a per-step chart: its entities at each step."""
    labels = list(dict.fromkeys(d["data-label"] for d in chart.data))
    return [
        (label, [int(dict(chart.values(step)).get(label, 0)) for step in steps]) for label in labels
    ]


def test_funnel_charts_equal_the_funnel_readers(report: str, client: Any) -> None:
    charts = charts_of(report)
    rows = queries.funnel_steps(client)
    for name in ("shop", "checkout"):
        steps = [r for r in rows if r.funnel == name]
        assert charts[f"funnel-steps/{name}"].values() == [(r.step_name, r.entered) for r in steps]
        names = [r.step_name for r in steps]
        by_channel = queries.funnel_by_channel(client, name)
        assert len(by_channel) > page.MAX_VALUES  # the caption counts the rest
        want = [(c, counts + [0] * (len(names) - len(counts))) for c, counts in by_channel]
        assert _step_counts(charts[f"funnel-channels/{name}"], names) == want[: page.MAX_VALUES]
        # The time-to-convert histogram counts every converted entity once: as many as
        # the exact time to convert (funnel_attempts) has.
        ttc = charts[f"time-to-convert/{name}"].values()
        assert ttc == [(page._ttc_label(le), n) for le, n in html_data.ttc_histogram(client)[name]]
        assert sum(n for _, n in ttc) == queries.time_to_convert_overall(client, name).entities
        assert sum(n for _, n in ttc) == steps[-1].entered
    shop = [r.step_name for r in rows if r.funnel == "shop"]
    by_device = [
        (page._values_label(v), counts + [0] * (len(shop) - len(counts)))
        for v, counts in queries.funnel_by_breakdown(client, "shop")
    ]
    assert {label for label, _ in by_device} == {"mobile", "desktop", "tablet"}
    assert _step_counts(charts["funnel-breakdown/shop"], shop) == by_device


def test_conversion_over_time_adds_up_to_the_funnel_totals(report: str, client: Any) -> None:
    chart = charts_of(report)["conversion-over-time"]
    rows = queries.funnel_steps(client)
    for name in ("shop", "checkout"):
        points = [d for d in chart.data if d["data-series"] == name]
        first, last = (
            r.entered
            for r in rows
            if r.funnel == name and r.step in (1, 5 if name == "shop" else 4)
        )
        assert sum(int(d["data-entered"]) for d in points) == first
        assert sum(int(d["data-converted"]) for d in points) == last
        for d in points:
            assert float(d["data-value"]) == int(d["data-converted"]) / int(d["data-entered"])
        assert len(points) == 8  # a point per day of the simulated week (and a bit)


def test_retention_heatmap_equals_the_triangle(report: str, client: Any) -> None:
    chart = charts_of(report)["retention"]
    cohorts = queries.retention_triangle(client, "first_visit", "day", "visit")
    want = [
        (US.day(c.cohort_start), f"D{n}", c.rate(n), c.users[n])
        for c in cohorts
        for n in range(len(c.users))
    ]
    got = [
        (d["data-label"], d["data-series"], float(d["data-value"]), int(d["data-users"]))
        for d in chart.data
    ]
    assert got == want
    assert len(cohorts) == 8 and max(len(c.users) for c in cohorts) == 8


def test_lifecycle_charts_equal_the_segment_readers(report: str, client: Any) -> None:
    charts = charts_of(report)
    rfm = queries.rfm_summary(client)
    assert charts["lifecycle-stages"].values() == [(s.stage, s.buyers) for s in rfm.stages]
    daily = queries.segment_sizes(client, html_data.SEGMENT_DAYS)
    for stage in queries.STAGE_ORDER:
        assert charts["lifecycle-sizes"].values(stage) == [
            (US.day(d.day), d.sizes[stage]) for d in daily
        ]
    flows = charts["lifecycle-flows"].data
    assert [(d["data-from"], d["data-to"], int(d["data-value"])) for d in flows] == (
        html_data.stage_flows(client)
    )
    # Flows in minus flows out of each stage: the stage's size at the end of the last day.
    net: Counter[str] = Counter()
    for d in flows:
        net[d["data-to"]] += int(d["data-value"])
        net[d["data-from"]] -= int(d["data-value"])
    assert {s: net[s] for s in queries.STAGE_ORDER} == daily[-1].sizes
    assert {"prospect", "new", "active", "dormant", "churned"} <= set(net)
    assert charts["lifecycle-triggers"].values() == list(queries.trigger_counts(client).items())


def test_experiment_charts_equal_the_readouts(report: str, client: Any, store: Store) -> None:
    charts = charts_of(report)
    for exp in load_experiments(store.experiments_file, load_funnels(store.funnels_file)):
        r = readout(exp, experiment_sums(client, exp))
        want = [
            (m.always_valid.relative_lift, m.always_valid.relative_ci)
            for metrics in r.metrics.values()
            for m in metrics
            if m.always_valid.relative_lift is not None
        ]
        got = [
            (float(d["data-value"]), float(d["data-low"]), float(d["data-high"]))
            for d in charts[f"experiment/{exp.name}"].data
        ]
        assert got == [(lift, ci.low, ci.high) for lift, ci in want if ci is not None]
        assert got and all(low <= value <= high for value, low, high in got)


def test_attribution_charts_equal_the_roas_reader(report: str, client: Any) -> None:
    charts = charts_of(report)
    days = html_data.attribution_days(client)
    assert days == attr.DayRange(date(2026, 11, 1), date(2026, 11, 8))  # the simulated week
    roas = attr.roas_by_channel(client, days)
    costed = [r for r in roas if r.has_cost and r.cost_minor]
    assert {r.currency for r in costed} == {"CNY"} and len(costed) >= 5
    for model in attr.MODELS:
        assert charts["roas-by-channel"].values(model) == [
            (r.channel, r.roas(model)) for r in costed if r.roas(model) is not None
        ]
    cny = [r for r in roas if r.currency == "CNY"]
    chart = charts["cost-revenue/CNY"]
    assert chart.values("cost") == [(r.channel, r.cost_minor) for r in cny if r.has_cost]
    assert chart.values("net revenue (last_non_direct)") == [
        (r.channel, r.net_revenue_micro.get("last_non_direct", 0) / attr.SHARE_UNIT) for r in cny
    ]
    others = [r for r in roas if r.currency != "CNY"]
    assert report.count("<tr>", report.index('data-table="revenue-without-cost"')) == (
        len(others) + 1
    )


def test_dead_letters_and_late_events_equal_the_pipeline_counts(report: str, client: Any) -> None:
    charts = charts_of(report)
    counts = queries.pipeline_counts(client)
    dead = charts["dead-letters"].values()
    assert dead == [(reason, n) for reason, n in html_data.dead_letter_reasons(client)]
    assert sum(n for _, n in dead) == counts["dead letters"] and len(dead) >= 10
    late = charts["late-events"].values("late events")
    assert sum(n for _, n in late) == counts["late events"] > 0
    assert [d["data-at"][:10] for d in charts["late-events"].data] == [
        f"2026-11-0{day}" for day in range(1, 9)
    ]


def test_the_page_in_german(store: Store, client: Any, tmp_path: Path) -> None:
    out = tmp_path / "bericht.html"
    report_html(
        out, client, source="test", locale="de_DE", funnels_file=store.funnels_file,
        experiments_file=store.experiments_file, now=NOW,
    )  # fmt: skip
    text = out.read_text()
    assert '<html lang="de-DE">' in text
    gmv = queries.kpis(client)[0]
    assert f"<td>{DE.money(gmv.gmv_minor, gmv.currency)}</td>" in text
    assert re.search(r"CN¥\d{1,3}(\.\d{3})+,\d\d", text)  # "." groups, "," decimals
    assert "Nov." in text and "Nov 1" not in text  # German month abbreviations
    assert set(charts_of(text)) == set(EXPECTED_CHARTS)


def test_the_live_endpoint_gives_the_same_page(store: Store, report: str, tmp_path: Path) -> None:
    # A running worker serves its store read-only over HTTP; the page read through it is
    # the page read from the store.
    endpoint = SqlEndpoint(
        str((store.data_dir / "clickhouse").resolve()), port=0, database=DATABASE
    )
    endpoint.start()
    try:
        http = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.port)
        out = tmp_path / "live.html"
        problems = report_html(
            out, http, source="test store", funnels_file=store.funnels_file,
            experiments_file=store.experiments_file, now=NOW,
        )  # fmt: skip
        http.close()
    finally:
        endpoint.stop()
    assert problems == {}
    assert out.read_text() == report


def test_an_empty_store_says_no_data_in_every_section(store: Store, tmp_path: Path) -> None:
    empty = open_client(ClickHouseTarget(dsn=store.dsn, database="html_empty"))
    try:
        apply_migrations(empty)
        out = tmp_path / "empty.html"
        problems = report_html(
            out, empty, source="empty", funnels_file=store.funnels_file,
            experiments_file=store.experiments_file, now=NOW,
        )  # fmt: skip
    finally:
        empty.close()
    text = out.read_text()
    assert problems == {}
    assert charts_of(text) == {}
    notes = re.findall(r'class="no-data" data-section="([^"]+)"', text)
    assert set(notes) == {
        "kpis", "funnels", "retention", "lifecycle-stages", "lifecycle-sizes",
        "lifecycle-flows", "lifecycle-triggers", "experiment/checkout_button",
        "experiment/free_shipping_banner", "attribution", "dead-letters", "late-events",
    }  # fmt: skip


def test_a_store_without_the_tables_names_what_could_not_be_read(
    store: Store, tmp_path: Path
) -> None:
    bare = open_client(ClickHouseTarget(dsn=store.dsn, database="html_bare"))
    try:
        problems = report_html(
            tmp_path / "bare.html", bare, source="bare", funnels_file=store.funnels_file,
            experiments_file=store.experiments_file, now=NOW,
        )  # fmt: skip
    finally:
        bare.close()
    assert set(problems) >= {"overview", "funnels", "retention", "lifecycle", "attribution"}
    text = (tmp_path / "bare.html").read_text()
    assert "cannot read it" in text and charts_of(text) == {}


# -- `funnel report --html FILE` --------------------------------------------------------------


def run_report(*args: str) -> Any:
    """The report group as funnel/cli.py registers it with this callback."""
    app = typer.Typer()
    group = typer.Typer(no_args_is_help=True)
    group.callback(invoke_without_command=True)(report_callback)
    group.command("kpi")(cli.report_kpi)
    app.add_typer(group, name="report")
    return CliRunner().invoke(app, ["report", *args], env={"COLUMNS": "200"})


@pytest.fixture
def no_funnel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("FUNNEL_")]:
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_funnel_env")
def test_the_command_writes_the_page_and_the_report_commands_still_work(
    store: Store, client: Any, tmp_path: Path
) -> None:
    out = tmp_path / "cli.html"
    common = ("--data-dir", str(store.data_dir))
    files = ("--funnels", str(store.funnels_file), "--experiments", str(store.experiments_file))
    result = run_report(*common, "--html", str(out), "--locale", "de_DE", *files)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in " ".join(result.output.split())
    text = out.read_text()
    assert '<html lang="de-DE">' in text and set(charts_of(text)) == set(EXPECTED_CHARTS)
    assert f"embedded store {store.data_dir / 'clickhouse'}" in text
    assert (out.stat().st_mode & 0o777) == 0o666 & ~_umask()
    # The group's --data-dir still reaches the report commands.
    kpi = run_report(*common, "kpi")
    assert kpi.exit_code == 0, kpi.output
    assert "KPIs" in kpi.output


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.usefixtures("no_funnel_env")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a report command"),
        (("--html", "x.html", "kpi"), "leave out the command 'kpi'"),
        (("--html", "x.html", "--locale", "xx_YY"), "unknown locale 'xx_YY'"),
        (("--html", "x.html", "--model", "best"), "unknown attribution model 'best'"),
        (("--html", "x.html", "--granularity", "year"), "--granularity 'year'"),
        (("--html", "/nonexistent/dir/x.html"), "the folder /nonexistent/dir does not exist"),
    ],
)
def test_bad_uses_are_refused_with_the_fix(
    store: Store, args: tuple[str, ...], message: str
) -> None:
    result = run_report("--data-dir", str(store.data_dir), *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())

"""`funnel report --html FILE` in a real browser: Debian's headless Chromium (issue #17).

The page is written from a simulated week processed by the real core into embedded
ClickHouse (``tests/unit/test_html_report.py`` ``write_demo_page``, run in a process of
its own: chDB opens one directory per process). Chromium, driven by Selenium through
Debian's ``/usr/bin/chromedriver`` (given explicitly, so Selenium Manager downloads
nothing), opens the file with every host name unresolvable, and the test checks through
the DOM that every chart drew: the expected ``svg[data-chart]`` with its title, its axis
labels and its data elements, each with a size on screen and the value the file has.
The browser console must have logged no error (a probe error checks that it is read at
all), and the page must have requested no resource. A full-page screenshot is taken and
must show a picture, not one colour; with ``FUNNEL_REPORT_SCREENSHOT=PATH`` it is also
copied there (``docs/report-demo.png`` is made that way, docs/report.md).

A missing Chromium or driver fails the test, naming the Debian packages to install
(``scripts/bootstrap.sh --test-tools`` installs them).
"""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from reports import attribution as attr
from reports.html import page, svg
from reports.html.data import AttributionData, ReportData
from reports.html.fmt import NumberFormat
from tests.unit.test_html_report import EXPECTED_CHARTS, HOSTILE, NOW, charts_of

REPO: Final = Path(__file__).resolve().parents[2]
CHROMIUM: Final = Path(os.environ.get("FUNNEL_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER: Final = Path(os.environ.get("FUNNEL_CHROMEDRIVER", "/usr/bin/chromedriver"))
INSTALL: Final = (
    "install Debian's chromium and chromium-driver: apt-get install chromium chromium-driver "
    "(bash scripts/bootstrap.sh --test-tools does it)"
)
WIDTH: Final = 1280

# Per chart in the DOM: title, size, axis labels, data elements (with a size on screen).
CHARTS_JS: Final = """
const out = {};
for (const chart of document.querySelectorAll('svg[data-chart]')) {
  const box = chart.getBoundingClientRect();
  const data = [...chart.querySelectorAll('.datum')];
  out[chart.dataset.chart] = {
    title: chart.querySelector(':scope > title')?.textContent ?? '',
    aria: chart.getAttribute('aria-label'),
    width: box.width,
    height: box.height,
    axis: [...chart.querySelectorAll('text.axis-label')].map(t => t.textContent),
    labels: data.map(e => e.dataset.label),
    values: data.map(e => e.dataset.value),
    drawn: data.filter(e => { const b = e.getBBox(); return b.width > 0 && b.height > 0; })
               .length,
    text: [...chart.querySelectorAll('text')].filter(t => t.getComputedTextLength() > 0)
              .map(t => t.textContent),
  };
}
return out;
"""

# Colours of a PNG (data URL) on a grid of points, drawn on a canvas.
COLOURS_JS: Final = """
const [url, done] = arguments;
const image = new Image();
image.onload = () => {
  const canvas = document.createElement('canvas');
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, image.width, image.height).data;
  const seen = new Set();
  let inked = 0, points = 0;
  for (let y = 0; y < image.height; y += 3) {
    for (let x = 0; x < image.width; x += 3) {
      const i = (y * image.width + x) * 4;
      seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
      points += 1;
      if (pixels[i] + pixels[i + 1] + pixels[i + 2] < 600) inked += 1;
    }
  }
  done({width: image.width, height: image.height, colours: seen.size, inked: inked / points});
};
image.onerror = () => done({error: 'the screenshot does not decode as a PNG'});
image.src = url;
"""


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"no {' or '.join(missing)}: {INSTALL}")


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("html-browser")
    out = folder / "report.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from tests.unit.test_html_report import write_demo_page; "
            "write_demo_page(Path(sys.argv[1]), Path(sys.argv[2]))",
            str(folder / "data"),
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: pip install -e '.[dev]' (pyproject.toml, dev extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},1000",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--lang=en-US",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        # No network: any host name fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything either
    try:
        driver = webdriver.Chrome(
            options=options, service=Service(executable_path=str(CHROMEDRIVER))
        )
    finally:
        if offline is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = offline
    try:
        yield driver
    finally:
        driver.quit()


def _errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _open(driver: Any, file: Path) -> None:
    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(file.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def _full_page_png(driver: Any) -> bytes:
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip},
    )
    return base64.b64decode(shot["data"])


def _colours(driver: Any, png: bytes) -> dict[str, Any]:
    """Decoded by the browser itself, in a blank tab of its own."""
    page_tab = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        driver.set_script_timeout(60)
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        result: dict[str, Any] = driver.execute_async_script(COLOURS_JS, url)
    finally:
        driver.close()
        driver.switch_to.window(page_tab)
    return result


def test_every_chart_draws_in_chromium_with_no_error(
    browser: Any, page_file: Path, tmp_path: Path
) -> None:
    _open(browser, page_file)
    errors = _errors(browser)
    drawn = browser.execute_script(CHARTS_JS)
    expected = charts_of(page_file.read_text())
    assert set(drawn) == set(EXPECTED_CHARTS) == set(expected)
    for name, chart in drawn.items():
        want = expected[name]
        assert chart["title"] == chart["aria"] == want.title != "", name
        assert chart["width"] > 300 and chart["height"] > 100, (name, chart)
        assert len(chart["axis"]) == 2 and all(chart["axis"]), (name, chart["axis"])
        assert chart["labels"] and chart["labels"] == [d["data-label"] for d in want.data], name
        assert chart["values"] == [d["data-value"] for d in want.data], name
        assert chart["drawn"] == len(chart["values"]), f"{name}: a datum has no size on screen"
        assert want.title in chart["text"], f"{name}: its title is not drawn"
        assert set(want.axis_labels) <= set(chart["text"]), f"{name}: an axis label is missing"
    assert browser.execute_script("return document.querySelectorAll('.no-data').length") == 0
    # Opened offline: nothing requested, no script on the page, and no error logged.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert browser.execute_script("return document.scripts.length") == 0
    assert errors == []
    browser.execute_script("console.error('probe: the console is read')")
    assert any("probe: the console is read" in e["message"] for e in _errors(browser))

    png = _full_page_png(browser)
    (tmp_path / "report.png").write_bytes(png)
    width, height = _png_size(png)
    assert width == WIDTH and height > 3000, (width, height)
    seen = _colours(browser, png)
    assert seen.get("error") is None, seen
    assert (seen["width"], seen["height"]) == (width, height)
    assert seen["colours"] > 50, seen  # charts in colour, text antialiased: not one colour
    assert 0.01 < seen["inked"] < 0.6, seen
    target = os.environ.get("FUNNEL_REPORT_SCREENSHOT")
    if target:
        shutil.copyfile(tmp_path / "report.png", target)


def test_hostile_labels_stay_text_in_the_browser(browser: Any, tmp_path: Path) -> None:
    data = ReportData(
        source=HOSTILE,
        generated_at=NOW,
        dead_letters=[(HOSTILE, 3), ("undecodable", 1)],
        late_events=[(NOW, 2)],
        attribution=AttributionData(
            "last_non_direct",
            attr.DayRange(NOW.date(), NOW.date()),
            [attr.ChannelRoas(HOSTILE, "KWD", 1_234_567, True, {"last_non_direct": 9 * 10**9})],
        ),
    )
    file = tmp_path / "hostile.html"
    file.write_text(page.render(data, NumberFormat("en_US")))
    _open(browser, file)
    assert _errors(browser) == []
    found = browser.execute_script(
        """
        const chart = document.querySelector('svg[data-chart="dead-letters"]');
        return {
          elements: document.querySelectorAll('script, img, iframe, object').length,
          label: chart.querySelector('.datum').dataset.label,
          text: [...chart.querySelectorAll('text.category')].map(t => t.textContent),
          source: document.querySelector('[data-source]').textContent,
          alerted: typeof window.__alerted !== 'undefined',
        };
        """
    )
    assert found["elements"] == 0
    assert found["label"] == HOSTILE and found["source"] == HOSTILE
    assert svg.short(HOSTILE) in found["text"]
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


# `funnel report --html` registered on the report group as funnel/cli.py registers it.
REPORT_CLI: Final = (
    "import sys\n"
    "from funnel import cli\n"
    "from funnel.cli_html import report_callback\n"
    "cli.report_app.callback(invoke_without_command=True)(report_callback)\n"
    "sys.argv[0] = 'funnel'\n"
    "cli.main()\n"
)

# A worker's hold on the store and its live SQL endpoint, as streams/worker.py starts it.
HOLDER: Final = (
    "import time\n"
    "from funnel.settings import load_settings\n"
    "from sinks.clickhouse import open_client\n"
    "from streams.worker import clickhouse_target, start_sql_endpoint\n"
    "settings = load_settings()\n"
    "target = clickhouse_target(settings)\n"
    "client = open_client(target)\n"
    "endpoint = start_sql_endpoint(settings, target)\n"
    "assert endpoint is not None\n"
    "print('serving', flush=True)\n"
    "time.sleep(120)\n"
)


def test_a_running_workers_store_is_read_through_its_live_endpoint(
    page_file: Path, browser: Any, tmp_path: Path
) -> None:
    from tests.pipeline_harness import free_port

    data_dir = page_file.parent / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    env.update(FUNNEL_DATA_DIR=str(data_dir), FUNNEL_SQL_PORT=str(free_port()), COLUMNS="200")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "serving"
        out = tmp_path / "live.html"
        files = ["--funnels", str(data_dir / "funnels.yaml")]
        files += ["--experiments", str(REPO / "streams" / "experiments.yaml")]
        done = subprocess.run(
            [sys.executable, "-c", REPORT_CLI, "report", "--html", str(out), *files],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.kill()
        holder.wait(10)
    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text()
    assert (
        f"the running worker&#x27;s live SQL endpoint at http://127.0.0.1:{env['FUNNEL_SQL_PORT']}"
        in text
    )
    # The same numbers as read from the store directly, and they draw.
    assert charts_of(text) == charts_of(page_file.read_text())
    _open(browser, out)
    assert _errors(browser) == []
    drawn = browser.execute_script(CHARTS_JS)
    assert set(drawn) == set(EXPECTED_CHARTS)
    assert all(c["drawn"] == len(c["values"]) > 0 for c in drawn.values())

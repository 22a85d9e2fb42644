"""Render the Grafana dashboards and alert rules (deploy/grafana/dashboards.py, alerting.py).

    python deploy/grafana/build.py

writes deploy/grafana/dashboards/<uid>.json and
deploy/grafana/provisioning/alerting/shopfunnel-alerts.yml (both committed; a unit test
checks they equal this output).
"""

from __future__ import annotations

import sys
from pathlib import Path

GRAFANA_DIR = Path(__file__).resolve().parent
REPO_ROOT = GRAFANA_DIR.parents[1]
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
ALERTING_FILE = GRAFANA_DIR / "provisioning" / "alerting" / "shopfunnel-alerts.yml"


def rendered_files() -> dict[Path, str]:
    """Every generated file and its content."""
    sys.path.insert(0, str(REPO_ROOT))  # runnable from a checkout without installing
    from deploy.grafana.alerting import render_dashboard, render_grafana_alert_rules
    from deploy.grafana.dashboards import DASHBOARDS

    files = {DASHBOARD_DIR / f"{d.uid}.json": render_dashboard(d) for d in DASHBOARDS}
    files[ALERTING_FILE] = render_grafana_alert_rules()
    return files


def main() -> int:
    files = rendered_files()
    for stale in set(DASHBOARD_DIR.glob("*.json")) - set(files):
        stale.unlink()
        print(f"removed {stale}")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Render the Prometheus rules from deploy/prometheus/alert_rules.py.

    python deploy/prometheus/rules.py                 # production: rules/shopfunnel.rules.yml
    python deploy/prometheus/rules.py --scale 60 -o /tmp/fast.rules.yml   # every duration / 60

The committed rules file must equal the production render (a unit test checks it). The
funnels come from streams/funnels.yaml: re-render after adding or changing one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "rules" / "shopfunnel.rules.yml"


def main(argv: list[str] | None = None) -> int:
    # Runnable from a checkout without installing the project.
    sys.path.insert(0, str(REPO_ROOT))
    from deploy.prometheus.alert_rules import render_rules

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="divide every duration by this")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render_rules(args.scale), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

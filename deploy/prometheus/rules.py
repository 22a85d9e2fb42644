"""Render the Prometheus rules from deploy/prometheus/alert_rules.py.

    python deploy/prometheus/rules.py                 # production: rules/shopfunnel.rules.yml
    python deploy/prometheus/rules.py --scale 60 -o /tmp/fast.rules.yml   # every duration / 60
    python deploy/prometheus/rules.py --funnels my_funnels.yaml -o my.rules.yml

The committed rules file must equal the production render (a unit test checks it). The
funnels come from streams/funnels.yaml: re-render after adding or changing one. A worker
run with its own FUNNEL_FUNNELS_FILE needs rules rendered from that file (``--funnels``),
or its funnels get no conversion-drop alerts.
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
    from deploy.errors import GeneratorError
    from deploy.prometheus.alert_rules import RuleParams, render_rules
    from streams.errors import FunnelConfigError
    from streams.funnels import load_funnels

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="divide every duration by this")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--funnels",
        type=Path,
        help="the funnel file the workers run with (FUNNEL_FUNNELS_FILE); "
        "default streams/funnels.yaml",
    )
    args = parser.parse_args(argv)
    try:
        params = None
        if args.funnels is not None:
            definitions = load_funnels(args.funnels)
            params = RuleParams(funnels={f.name: f.steps for f in definitions})
        text = render_rules(args.scale, params)
    except (FunnelConfigError, GeneratorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

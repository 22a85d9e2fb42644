#!/usr/bin/env bash
# `make demo`: set up (idempotent), start the local Kafka broker, run the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$PWD/.data/kafka}" PYTHON="$PWD/.venv/bin/python" \
    bash deploy/local/kafka.sh start
fi
exec .venv/bin/python scripts/demo.py

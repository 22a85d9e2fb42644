# The README's two commands: `make demo` and `make test`.
.PHONY: demo test setup setup-test lint typecheck bench bench-smoke clean-data

setup:
	bash scripts/bootstrap.sh

setup-test:
	bash scripts/bootstrap.sh --test-tools

demo:
	bash scripts/demo.sh

# The broker-free tests (unit, native) on both cores, then the integration tests one at a
# time: they share one broker and start real workers.
test: setup-test
	.venv/bin/python -m pytest -n 2 tests/unit tests/native
	.venv/bin/python -m pytest tests/integration

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

typecheck:
	.venv/bin/mypy

bench: setup
	.venv/bin/python -m bench.run

bench-smoke: setup
	.venv/bin/python -m bench.run --smoke

clean-data:
	bash deploy/local/kafka.sh stop || true
	rm -rf .data

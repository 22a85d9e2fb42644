"""The crate's own Rust unit tests (the `#[test]` functions in native/src), run by cargo.

The differential tests beside this file compare each module with its Python twin; these
check module internals directly (wide window arithmetic, the JSON, RowBinary and Native
codecs' edges, the state read in place against the tree, Python's rounding and whitespace
rules, the timer wheel). `make test` did not run
them before, so a broken one would have gone unnoticed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

NATIVE = Path(__file__).resolve().parents[2] / "native"


def _cargo() -> str:
    found = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    assert Path(found).exists(), "cargo not found: `make setup-test` installs the Rust toolchain"
    return found


def test_the_crates_rust_unit_tests_pass() -> None:
    # Offline and locked: the crates are the ones the extension's build fetched.
    result = subprocess.run(
        [_cargo(), "test", "--release", "--lib", "--offline", "--locked"],
        cwd=NATIVE,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "CARGO_TERM_COLOR": "never"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = re.search(r"test result: ok\. (\d+) passed; (\d+) failed", result.stdout)
    assert summary is not None, output[-6000:]
    passed, failed = int(summary.group(1)), int(summary.group(2))
    assert failed == 0 and passed >= 51, summary.group(0)

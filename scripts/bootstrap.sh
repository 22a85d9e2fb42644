#!/usr/bin/env bash
# Set up everything this project needs on a fresh Debian 12 machine. Idempotent: a second
# run only checks. Usage: scripts/bootstrap.sh [--test-tools]
#   --test-tools  also install the Debian packages the tests need (promtool, amtool, and
#                 headless Chromium with its driver for the HTML report's browser test)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
PYTHON_BIN="${PYTHON_BIN:-python3}"
VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
WANT_TEST_TOOLS=0
[[ "${1:-}" == "--test-tools" ]] && WANT_TEST_TOOLS=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=""
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root to install ${missing[*]}: run as root or install them with apt-get"
    sudo="sudo"
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq || die "apt-get update failed: check the Debian mirror is reachable"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

command -v java >/dev/null || apt_install openjdk-17-jre-headless
command -v mvn >/dev/null || apt_install maven
"$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python >= 3.11 is required (found $("$PYTHON_BIN" --version)); set PYTHON_BIN"
"$PYTHON_BIN" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
if ((WANT_TEST_TOOLS)); then
  command -v promtool >/dev/null || apt_install prometheus
  command -v amtool >/dev/null || apt_install prometheus-alertmanager
  # tests/integration/test_html_report_browser.py drives /usr/bin/chromium through
  # /usr/bin/chromedriver (Selenium gets the path: it downloads no browser or driver).
  command -v chromium >/dev/null || apt_install chromium
  command -v chromedriver >/dev/null || apt_install chromium-driver
fi

if [[ ! -f "$STAMP" ]]; then
  say "creating the Python environment in .venv"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON_BIN" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[dev,bench]' || die "pip install failed: check that PyPI is reachable"
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi

# The compiled core (native/, issue #16): Rust from Debian's packages where none is found
# (no downloaded toolchains). Debian 12's cargo (0.66) reaches crates.io only through the
# sparse index, which it has behind an unstable switch; newer cargo uses it by default.
[[ -x "$HOME/.cargo/bin/cargo" ]] && PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || apt_install cargo rustc
NATIVE_STAMP="$VENV/.native-$(cat native/Cargo.toml native/Cargo.lock native/src/*.rs | sha256sum | cut -c1-16)"
if [[ ! -f "$NATIVE_STAMP" ]]; then
  say "building the compiled core (native/, $(cargo --version))"
  cargo_env=()
  if cargo --version | awk '{split($2, v, "."); exit !(v[1] == 0 || (v[1] == 1 && v[2] < 68))}'; then
    cargo_env=(RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_SPARSE_REGISTRY=true)
  fi
  started=$SECONDS
  env "${cargo_env[@]}" VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" develop --release --locked \
    -m native/Cargo.toml -q \
    || die "building native/ failed: check that crates.io is reachable and that cargo works (cargo --version)"
  say "built the compiled core in $((SECONDS - started)) s"
  rm -f "$VENV"/.native-*
  touch "$NATIVE_STAMP"
fi

say "fetching the Kafka broker jars (cached outside git)"
PYTHON="$VENV/bin/python" bash deploy/local/kafka.sh fetch
say "ready"

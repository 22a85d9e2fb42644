"""A regular (non-editable) install has everything the package reads at run time.

The fixture builds a wheel from a copy of this checkout (so the working tree gets no
``build/`` or ``*.egg-info``), installs it without dependencies into a fresh virtualenv,
and only then makes this environment's dependencies visible there through a ``.pth``
file holding the path of this environment's site-packages. A path line in a ``.pth`` is
appended to ``sys.path`` as is: the ``.pth`` files inside that directory, among them the
editable-install finder that maps the packages to this checkout, are not processed, so
the checkout stays invisible (:func:`test_project_modules_come_from_the_installed_package`
checks that). Every command runs from a temporary directory outside the repository.

Nothing is downloaded when this environment's setuptools can build the project
(``[build-system] requires``); otherwise pip's isolated build fetches the build backend.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = sorted((REPO / "sinks" / "migrations").glob("*.sql"))
PACKAGE_DATA = ("streams/funnels.yaml", "schemas/channels.yaml")
# Directories of a checkout that are not sources (caches, environments, build output).
NOT_SOURCES = frozenset(
    {
        ".git",
        ".venv",
        ".data",
        ".cache",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "__pycache__",
        "build",
        "dist",
        "out",
    }
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path
    workdir: Path
    data_dir: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def probe(self, code: str) -> Any:
        """Run ``code`` in the installed venv; it prints one JSON document last."""
        result = self.run(self.python, "-c", code)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])


def _project() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def top_level_packages() -> list[str]:
    includes = _project()["tool"]["setuptools"]["packages"]["find"]["include"]
    names = {pattern.rstrip("*").rstrip(".") for pattern in includes}
    return sorted(name for name in names if (REPO / name / "__init__.py").is_file())


def _can_build_offline() -> bool:
    """Does this environment have the build backend pyproject.toml asks for?"""
    for spec in _project()["build-system"]["requires"]:
        requirement = Requirement(spec)
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            return False
        if not requirement.specifier.contains(installed, prereleases=True):
            return False
    return True


def _copy_sources(destination: Path) -> Path:
    def ignore(_directory: str, names: list[str]) -> list[str]:
        return [n for n in names if n in NOT_SOURCES or n.endswith((".egg-info", ".pyc"))]

    return Path(shutil.copytree(REPO, destination, ignore=ignore))


def _pip(*args: str | Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"pip {args[0]} failed:\n{result.stdout}\n{result.stderr}"


def _clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without anything that points Python or the pipeline
    elsewhere (PYTHONPATH, FUNNEL_*, KAFKA_*)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "FUNNEL_", "KAFKA_", "PIP_")) and k != "VIRTUAL_ENV"
    }
    env.update({"PYTHONNOUSERSITE": "1", "COLUMNS": "1000", "HOME": str(home)})
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("installed")
    assert not root.resolve().is_relative_to(REPO), "the temporary directory is in the repo"
    build_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}

    source = _copy_sources(root / "src")
    dist = root / "dist"
    offline = ("--no-build-isolation", "--no-index") if _can_build_offline() else ()
    _pip("wheel", "--no-deps", *offline, "--wheel-dir", dist, source, env=build_env)
    (wheel,) = dist.glob("shop_funnel-*.whl")

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    python = venv / "bin" / "python"
    # Installed before the .pth exists, so pip sees an empty environment.
    _pip("--python", python, "install", "--no-deps", "--no-index", wheel, env=build_env)
    site_packages = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    dependencies = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages / "_test_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(dependencies))
    )

    workdir = root / "cwd"
    workdir.mkdir()
    data_dir = root / "data"
    env = _clean_env(root)
    env["FUNNEL_DATA_DIR"] = str(data_dir)
    yield Installed(wheel, venv, site_packages, workdir, data_dir, env)


def test_the_wheel_contains_the_package_data(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    assert MIGRATIONS, "no sinks/migrations/*.sql in the checkout"
    for path in MIGRATIONS:
        assert f"sinks/migrations/{path.name}" in names
    for name in PACKAGE_DATA:
        assert name in names
    assert not any(n.startswith("deploy/") for n in names), "deploy/ is not package code"


def test_project_modules_come_from_the_installed_package(installed: Installed) -> None:
    packages = top_level_packages()
    assert {"funnel", "schemas", "sinks", "streams", "simulator"} <= set(packages)
    found = installed.probe(
        f"PACKAGES = {packages!r}\n"
        + """
import importlib, json, sys
for name in PACKAGES + ["funnel.cli", "sinks.clickhouse", "streams.funnels",
                        "schemas.channels", "streams.worker"]:
    importlib.import_module(name)
files = {n: getattr(m, "__file__", None) for n, m in sys.modules.items()}
print(json.dumps({
    "files": {n: f for n, f in files.items() if f},
    "path": sys.path,
    "meta_path": [f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', f)}"
                  for f in sys.meta_path],
}))
"""
    )
    site = installed.site_packages.resolve()
    files = {name: Path(file).resolve() for name, file in found["files"].items()}
    for name in [*packages, "funnel.cli", "sinks.clickhouse", "streams.funnels"]:
        assert files[name].is_relative_to(site), f"{name} imported from {files[name]}"
    # Dependencies come from this environment's site-packages; nothing else of the repo.
    dependencies = {Path(sysconfig.get_path(k)).resolve() for k in ("purelib", "platlib")}
    from_repo = {
        name: file
        for name, file in files.items()
        if file.is_relative_to(REPO) and not any(file.is_relative_to(d) for d in dependencies)
    }
    assert not from_repo, f"modules imported from the checkout: {from_repo}"
    assert not any("__editable__" in entry for entry in found["meta_path"]), found["meta_path"]
    assert not any("__editable__" in name for name in files), "the editable finder ran"
    for entry in found["path"]:
        resolved = Path(entry or installed.workdir).resolve()
        assert resolved not in (REPO, *(REPO / p for p in packages)), entry


def test_installed_funnel_migrate_applies_every_migration(installed: Installed) -> None:
    funnel = installed.venv / "bin" / "funnel"
    result = installed.run(funnel, "migrate")
    assert result.returncode == 0, result.stdout + result.stderr
    names = [path.stem for path in MIGRATIONS]
    assert " ".join(result.stdout.split()) == f"applied: {', '.join(names)}"

    state = installed.probe(
        """
import json
from funnel.settings import load_settings
from sinks.clickhouse import open_client
from streams.worker import clickhouse_target
client = open_client(clickhouse_target(load_settings()), create_database=False)
print(json.dumps({
    "applied": [list(r) for r in client.query(
        "SELECT number, name FROM schema_migrations ORDER BY number").result_rows],
    "tables": sorted(r[0] for r in client.query("SHOW TABLES").result_rows),
}))
"""
    )
    assert state["applied"] == [[number, name] for number, name in enumerate(names, start=1)]
    created = {
        match.group(1)
        for path in MIGRATIONS
        for match in re.finditer(r"CREATE (?:TABLE|VIEW) IF NOT EXISTS (\w+)", path.read_text())
    }
    assert len(created) > len(MIGRATIONS)
    assert set(state["tables"]) == created | {"schema_migrations"}
    assert (installed.data_dir / "clickhouse").is_dir()  # the fresh store of this test


def test_default_funnels_and_channel_rules_load(installed: Installed) -> None:
    loaded = installed.probe(
        """
import json
from schemas.channels import DEFAULT_RULES_PATH, ChannelRules
from streams.funnels import DEFAULT_FUNNELS, load_funnels
rules = ChannelRules.load()
print(json.dumps({
    "funnels": {f.name: list(f.steps) for f in load_funnels()},
    "funnels_file": str(DEFAULT_FUNNELS),
    "rules_file": str(DEFAULT_RULES_PATH),
    "paid_search": rules.classify("google", "cpc", None),
    "kol": rules.classify("Douyin", "kol", None),
}))
"""
    )
    shipped = yaml.safe_load((REPO / "streams" / "funnels.yaml").read_text())
    assert loaded["funnels"] == {f["name"]: f["steps"] for f in shipped["funnels"]}
    site = installed.site_packages.resolve()
    assert Path(loaded["funnels_file"]).resolve().is_relative_to(site)
    assert Path(loaded["rules_file"]).resolve().is_relative_to(site)
    assert (loaded["paid_search"], loaded["kol"]) == ("paid_search", "kol")


def test_funnel_broker_without_a_checkout_names_the_fix(installed: Installed) -> None:
    result = installed.run(installed.venv / "bin" / "funnel", "broker", "status")
    message = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in message
    assert "run it from a checkout: bash deploy/local/kafka.sh status" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message

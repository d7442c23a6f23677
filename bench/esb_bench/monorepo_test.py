"""Tests of the synthetic monorepo generator, offline: the locks are checked by the plugin's own
`check_lock` (`uv lock --check --offline` with the uv the plugin pins)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import tomllib

from esb_bench.monorepo import PROFILES, PROFILES_DIR, Monorepo, change_lock, generate
from imagetool.venv.lock_checks import check_lock
from imagetool.venv.uv_binary import extract_uv_binary
from imagetool.venv.uv_process import Uv

# Fetched by the `uv-wheel` target that the tests depend on; the sandbox is the build root.
UV_WHEEL = (
    Path(__file__).resolve().parents[2]
    / "pants-plugins/imagetool/venv"
    / "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
)
# Debian 12's python3, as base/packages.lock.json records it.
BASE_PYTHON = "3.11.2"
COUNT = 12


def write_checkout(root: Path) -> Path:
    """The part of a checkout that `generate` reads or replaces: the example services."""
    example = root / "services" / "api"
    (example / "src" / "esb_api").mkdir(parents=True)
    (example / "BUILD").write_text('esb_service_image(name="api")\n')
    (example / "src" / "esb_api" / "__init__.py").write_text("")
    return root


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def relative_services(monorepo: Monorepo) -> list[tuple[str, ...]]:
    return [
        (
            service.name,
            service.directory.relative_to(monorepo.root).as_posix(),
            service.package,
            service.profile,
            service.edit_file.relative_to(monorepo.root).as_posix(),
        )
        for service in monorepo.services
    ]


def read_toml(path: Path) -> dict:
    return tomllib.loads(path.read_text())


@pytest.fixture(scope="module")
def uv(tmp_path_factory: pytest.TempPathFactory) -> Uv:
    return Uv(extract_uv_binary(UV_WHEEL, tmp_path_factory.mktemp("uv")))


@pytest.fixture(scope="module")
def monorepo(tmp_path_factory: pytest.TempPathFactory) -> Monorepo:
    return generate(write_checkout(tmp_path_factory.mktemp("checkout")), COUNT)


def test_generate_replaces_the_example_services(monorepo: Monorepo) -> None:
    names = [f"svc-{index:03d}" for index in range(1, COUNT + 1)]
    assert sorted(path.name for path in (monorepo.root / "services").iterdir()) == names
    assert [service.name for service in monorepo.services] == names
    for service in monorepo.services:
        assert service.directory == monorepo.root / "services" / service.name
        assert service.edit_file.is_file()
        assert service.edit_file.is_relative_to(service.directory / "src" / service.package)
        build = (service.directory / "BUILD").read_text()
        assert f'command=["python", "-m", "{service.package}"]' in build
        assert "python_sources" not in build and "python_requirements" not in build


def test_generation_is_deterministic(monorepo: Monorepo, tmp_path: Path) -> None:
    again = generate(write_checkout(tmp_path), COUNT)
    assert relative_services(again) == relative_services(monorepo)
    assert files_under(again.root / "services") == files_under(monorepo.root / "services")


def test_services_share_profiles_and_their_locks(monorepo: Monorepo) -> None:
    services_by_profile = Counter(service.profile for service in monorepo.services)
    assert len(services_by_profile) > 1
    popular, sharing = services_by_profile.most_common(1)[0]
    assert sharing >= 2
    locks = {
        (service.directory / "uv.lock").read_text().replace(service.name, "<service>")
        for service in monorepo.services
        if service.profile == popular
    }
    assert len(locks) == 1, "services of one profile have the same lock, but for the project name"


def test_each_lock_is_the_services_own_and_up_to_date(monorepo: Monorepo, uv: Uv) -> None:
    for service in monorepo.services:
        project = read_toml(service.directory / "pyproject.toml")["project"]["name"]
        lock = read_toml(service.directory / "uv.lock")
        roots = [
            package["name"] for package in lock["package"] if package["source"] == {"virtual": "."}
        ]
        assert project == f"esb-bench-{service.name}"
        assert roots == [project]
        check_lock(uv, service.directory, BASE_PYTHON)


def test_change_lock_takes_a_new_profile_at_each_step(tmp_path: Path, uv: Uv) -> None:
    monorepo = generate(write_checkout(tmp_path), COUNT)
    service = monorepo.services[4]
    sources_before = files_under(service.directory / "src")
    profiles = [service.profile]
    for step in range(1, 6):
        service = change_lock(monorepo, service, step)
        profiles.append(service.profile)
        pyproject = read_toml(service.directory / "pyproject.toml")
        expected = read_toml(PROFILES_DIR / service.profile / "pyproject.toml")
        assert pyproject["project"]["dependencies"] == expected["project"]["dependencies"]
        check_lock(uv, service.directory, BASE_PYTHON)
    assert len(set(profiles)) == len(profiles)
    assert files_under(service.directory / "src") == sources_before
    with pytest.raises(ValueError, match="step must be from 1 to"):
        change_lock(monorepo, service, len(PROFILES))


def test_profiles_install_wheels_only_and_stay_small() -> None:
    assert sorted(path.name for path in PROFILES_DIR.iterdir()) == sorted(p.name for p in PROFILES)
    for profile in PROFILES:
        lock = read_toml(PROFILES_DIR / profile.name / "uv.lock")
        assert lock["requires-python"] == ">=3.11"
        locked = [package for package in lock["package"] if package["source"] != {"virtual": "."}]
        assert len(locked) < 25, profile.name
        without_wheels = [package["name"] for package in locked if not package.get("wheels")]
        assert not without_wheels, f"{profile.name} locks sdist-only packages: {without_wheels}"


@pytest.mark.parametrize("count", [0, 10_000])
def test_a_count_without_service_names_is_refused(count: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"count must be from 1 to 9999 .*, not {count}"):
        generate(tmp_path, count)

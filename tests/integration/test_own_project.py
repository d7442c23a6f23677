"""A service that is a package: its own project (dynamic version, console script, entry points,
package data) is built and installed into /.venv, its files under /app carry bytecode and no
BUILD file, its flat layout imports, and a local package whose metadata only its `setup.py`
knows locks, checks and builds without a loop."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from docker import DockerClient

from integration.checkouts import Checkout
from integration.containers import run_to_exit

SERVICE = "services/clock"
TARGET = f"{SERVICE}:clock"
SETUPTOOLS = "setuptools==75.8.0"

PYPROJECT = f"""\
[project]
name = "esb-clock"
dynamic = ["version"]
requires-python = ">=3.11"
dependencies = ["greeting", "six==1.17.0"]

[project.scripts]
esb-clock = "app.main:main"

[project.entry-points."esb.plugins"]
clock = "app.main:main"

[build-system]
requires = ["{SETUPTOOLS}"]
build-backend = "setuptools.build_meta"

[tool.setuptools.dynamic]
version = {{attr = "app.__version__"}}

[tool.setuptools.packages.find]
include = ["app*"]

[tool.setuptools.package-data]
app = ["data/*.txt"]

[tool.uv.sources]
greeting = {{ path = "libs/greeting", editable = true }}
"""

MAIN = """\
import importlib.metadata
from importlib.resources import files

import greeting


def main():
    plugins = [e.value for e in importlib.metadata.entry_points(group="esb.plugins")]
    print("version", importlib.metadata.version("esb-clock"), plugins)
    print("data", files("app").joinpath("data/banner.txt").read_text().strip())
    print("greeting", greeting.hello(), importlib.metadata.version("greeting"))


if __name__ == "__main__":
    main()
"""

BUILD = """\
esb_service_image(
    name="clock",
    base="//base:esb-service-base",
    repository="esb/clock",
    user="esb",
    sources=["pyproject.toml", "uv.lock", "build-constraints.txt", "app/**", "libs/**"],
    command=["esb-clock"],
)
"""


def write_service(root: Path) -> None:
    service = root / SERVICE
    (service / "app" / "data").mkdir(parents=True)
    (service / "pyproject.toml").write_text(PYPROJECT)
    (service / "BUILD").write_text(BUILD)
    (service / "app" / "__init__.py").write_text('__version__ = "2.5.0"\n')
    (service / "app" / "main.py").write_text(MAIN)
    (service / "app" / "data" / "banner.txt").write_text("tick tock\n")
    # A BUILD file among the shipped globs, as `tailor` writes them: it must not ship.
    (service / "app" / "BUILD").write_text("# The service's modules.\n")
    package = service / "libs" / "greeting"
    (package / "greeting").mkdir(parents=True)
    (package / "setup.py").write_text(
        textwrap.dedent(
            """\
            from setuptools import setup

            setup(
                name="greeting",
                version=open("VERSION").read().strip(),
                packages=["greeting"],
                install_requires=["idna==3.10"],
            )
            """
        )
    )
    (package / "VERSION").write_text("0.4\n")
    (package / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["{SETUPTOOLS}"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    (package / "greeting" / "__init__.py").write_text('def hello():\n    return "hello"\n')


@pytest.fixture
def checkout(repo_root: Path, scratch: Path) -> Checkout:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    write_service(checkout.root)
    return checkout


def test_a_package_service_runs_its_console_script_with_its_metadata_and_data(
    checkout: Checkout, docker_client: DockerClient
) -> None:
    lock = checkout.pants("esb-lock", TARGET)
    assert lock.returncode == 0, lock.report()
    # The metadata of the own project and of the local package comes from their setuptools:
    # the offline check must get it without calling the fresh lock stale.
    lint = checkout.pants("lint", TARGET)
    assert lint.returncode == 0, lint.report()
    package = checkout.pants("package", TARGET)
    assert package.returncode == 0, package.report()

    image = checkout.load_service_image(TARGET, docker_client)

    started = run_to_exit(docker_client, image.id)
    assert started.status == 0, started.report()
    assert started.stdout == (
        "version 2.5.0 ['app.main:main']\ndata tick tock\ngreeting hello 0.4\n"
    ), started.report()

    probe = run_to_exit(
        docker_client,
        image.id,
        [
            "python",
            "-c",
            "import os, shutil, sys;"
            "print(shutil.which('esb-clock'));"
            "print(open(shutil.which('esb-clock')).readline().strip());"
            "print(os.path.isfile('/app/app/__pycache__/main.cpython-311.pyc'));"
            "print(os.path.exists('/app/app/BUILD'), os.path.exists('/app/BUILD'));"
            "print(open('/.venv/lib/python3.11/site-packages/esb_service_sources.pth')"
            ".read().strip())",
        ],
    )
    assert probe.status == 0, probe.report()
    assert probe.stdout.splitlines() == [
        "/.venv/bin/esb-clock",
        "#!/.venv/bin/python",
        "True",
        "False False",
        "/app",
    ], probe.report()

    # A flat layout imports from any directory, as a module too.
    as_module = run_to_exit(docker_client, image.id, ["python", "-m", "app.main"], working_dir="/")
    assert as_module.status == 0, as_module.report()
    assert as_module.stdout.startswith("version 2.5.0"), as_module.report()


def test_a_dependency_added_without_relocking_is_still_stale(checkout: Checkout) -> None:
    assert checkout.pants("esb-lock", TARGET).returncode == 0
    checkout.substitute(
        f"{SERVICE}/libs/greeting/setup.py", r'"idna==3\.10"', '"idna==3.10", "attrs==24.2.0"'
    )

    lint = checkout.pants("lint", TARGET)

    assert lint.returncode != 0, lint.report()
    stale = f"{SERVICE}/uv.lock does not match {SERVICE}/pyproject.toml"
    assert stale in lint.stderr, lint.report()
    assert f"pants esb-lock {TARGET}" in lint.stderr, lint.report()


def test_a_package_whose_build_fails_names_the_service_and_the_fix(checkout: Checkout) -> None:
    assert checkout.pants("esb-lock", TARGET).returncode == 0
    # The build reads a readme that the target's `sources` do not select.
    (checkout.root / SERVICE / "setup.py").write_text(
        'from setuptools import setup\n\nsetup(long_description=open("README.md").read())\n'
    )
    (checkout.root / SERVICE / "README.md").write_text("The clock.\n")
    checkout.substitute(f"{SERVICE}/BUILD", r'"libs/\*\*"\]', '"libs/**", "setup.py"]')

    package = checkout.pants("package", TARGET)

    assert package.returncode != 0, package.report()
    assert (
        f"The service {TARGET} is a package ({SERVICE}/pyproject.toml" in package.stderr
    ), package.report()
    assert f"`sources` field of {TARGET}" in package.stderr, package.report()
    assert f"`pants package {TARGET}`" in package.stderr, package.report()
    assert "No such file or directory: 'README.md'" in package.stderr, package.report()
    assert "Traceback" not in package.stderr, package.report()
    assert "ProcessExecutionFailure" not in package.stderr, package.report()

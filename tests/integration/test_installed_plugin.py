"""The plugin as a user installs it: the wheel `pants package` builds, in a repository of its own.

A copy of the checkout builds the wheel. A new repository in a scratch directory installs it with
`[GLOBAL].plugins` from a find-links directory (its requirements from PyPI), has nothing of this
repository's `pants-plugins/` on its path and no resolve for the image tool, and holds the base and
two services of the example with their locks. There, `package`, `lint`, `publish` and
`dependents` run as in this repository, and build the same images.

Where Pants imported the backend from is reported by a probe backend of the new repository (on
its `pythonpath`, listed after `esb`): it prints the files of `esb` and `imagetool` that Pants'
own interpreter has loaded, which must be those of the installed wheel.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import tomllib

from integration.checkouts import Checkout, ImageTarget, PantsRun, scratch_directory
from integration.test_publish import PublishCheckout

# `test_registry` is the fixture, shared with the upstream base's tests.
from integration.test_upstream_base import SharedRegistry, test_registry  # noqa: F401

WHEEL_TARGET = "pants-plugins:esb-images"
BASE = ImageTarget("base:esb-service-base", "esb_base_image", ())
SERVICES = (ImageTarget.service("services/api:api"), ImageTarget.service("services/worker:worker"))
# What the new repository takes from this one, as it is in the working tree.
COPIED = (
    "pants",
    "3rdparty/pants/requirements.txt",
    "base/packages.lock.json",
    "base/ensure_ca_trust.sh",
    "base/entrypoint.sh",
    "3rdparty/python/service-api.lock",
    "3rdparty/python/service-worker.lock",
    "services/api",
    "services/worker",
)
# The sections of this repository's pants.toml that set Pants up on these machines (interpreters,
# the pex binary, pip's configuration), copied as they are.
MACHINE_SECTIONS = ("python-bootstrap", "pex", "pex-cli", "subprocess-environment")
PROBE = '''"""Reports the files Pants imported the esb backend and its image tool's package from."""

import sys
from importlib import resources

import esb

print(f"esb-probe: esb={esb.__file__}", file=sys.stderr)
print(f"esb-probe: imagetool={resources.files('imagetool')}", file=sys.stderr)
'''
_PROBE_LINE = re.compile(r"^esb-probe: (\w+)=(.+)$", re.MULTILINE)


@dataclass(frozen=True)
class InstalledRepository:
    publisher: PublishCheckout
    version: str
    wheels: Path
    """The find-links directory, which holds only the wheel."""

    @property
    def checkout(self) -> Checkout:
        return self.publisher.checkout


def _section(text: str, name: str) -> str:
    """The section `[name]` of a TOML file, from its header to the next header."""
    match = re.search(rf"^\[{re.escape(name)}\]\n(?:(?!\[).*\n|\n)*", text, re.MULTILINE)
    assert match, f"no [{name}] in pants.toml"
    return match.group(0)


def _base_build(repo_root: Path) -> str:
    """The `esb_base_image` target of this repository's base/BUILD: the other targets there are
    this repository's tests, on a resolve the new repository does not have."""
    text = (repo_root / "base" / "BUILD").read_text()
    match = re.search(r"^esb_base_image\(\n(?:    .*\n|\n)*\)\n", text, re.MULTILINE)
    assert match, "no esb_base_image in base/BUILD"
    return match.group(0)


def _pants_toml(repo_root: Path, version: str, wheels: Path) -> str:
    own = (repo_root / "pants.toml").read_text()
    global_options = tomllib.loads(own)["GLOBAL"]
    machine = "\n".join(_section(own, name) for name in MACHINE_SECTIONS)
    return f"""[GLOBAL]
pants_version = {json.dumps(global_options["pants_version"])}
plugins = ["esb-images=={version}"]
pythonpath = ["%(buildroot)s/probe"]
backend_packages = ["pants.backend.python", "esb", "esb_probe"]
ca_certs_path = {json.dumps(global_options["ca_certs_path"])}

[python-repos]
find_links = ["file://{wheels}"]
indexes = ["https://pypi.org/simple/"]

[source]
root_patterns = ["/base", "/services/*", "/services/*/src", "/services/*/tests"]

[python]
interpreter_constraints = ["CPython==3.11.*"]
enable_resolves = true
default_resolve = "service-api"

[python.resolves]
service-api = "3rdparty/python/service-api.lock"
service-worker = "3rdparty/python/service-worker.lock"

{machine}"""


def _new_repository(repo_root: Path, root: Path, version: str, wheels: Path) -> Checkout:
    repository = Checkout.copy_of(repo_root, root, paths=COPIED)
    (root / "base" / "BUILD").write_text(_base_build(repo_root))
    (root / "probe" / "esb_probe").mkdir(parents=True)
    (root / "probe" / "esb_probe" / "__init__.py").write_text("")
    (root / "probe" / "esb_probe" / "register.py").write_text(PROBE)
    (root / "pants.toml").write_text(_pants_toml(repo_root, version, wheels))
    return repository


@pytest.fixture(scope="module")
def installed(
    repo_root: Path, test_registry: SharedRegistry  # noqa: F811
) -> Iterator[InstalledRepository]:
    with scratch_directory("esb-integration-installed-") as scratch:
        source = Checkout.copy_of(repo_root, scratch / "source")
        built = source.pants("package", WHEEL_TARGET)
        assert built.returncode == 0, built.report()
        (wheel,) = source.dist.glob("esb_images-*.whl")
        # The wheel's name is `esb_images-<version>-<tags>.whl`.
        version = wheel.name.split("-")[1]
        wheels = scratch / "wheels"
        wheels.mkdir()
        shutil.copy2(wheel, wheels)
        repository = _new_repository(repo_root, scratch / "repository", version, wheels)
        namespace = f"installed-{uuid.uuid4().hex[:12]}"
        publisher = PublishCheckout.set_up(repository, test_registry, namespace, scratch)
        yield InstalledRepository(publisher, version, wheels)


@pytest.fixture(scope="module")
def packaged(installed: InstalledRepository) -> PantsRun:
    return installed.checkout.pants("package", "::")


def test_pants_loads_the_backend_from_the_installed_wheel(
    installed: InstalledRepository, packaged: PantsRun, repo_root: Path
) -> None:
    assert packaged.returncode == 0, packaged.report()
    loaded = dict(_PROBE_LINE.findall(packaged.stderr))
    assert set(loaded) == {"esb", "imagetool"}, packaged.report()
    esb_package = Path(loaded["esb"]).parent
    site_packages = esb_package.parent
    # Installed from the wheel: its metadata is beside the packages, in Pants' plugin cache.
    assert (site_packages / f"esb_images-{installed.version}.dist-info").is_dir(), loaded
    assert Path(loaded["imagetool"]) == site_packages / "imagetool", loaded
    assert "named_caches" in site_packages.parts, loaded
    for path in loaded.values():
        assert not Path(path).is_relative_to(repo_root), loaded
        assert not Path(path).is_relative_to(installed.checkout.root), loaded


def test_package_builds_the_images_this_repository_builds(
    installed: InstalledRepository, packaged: PantsRun, built_checkout: Checkout
) -> None:
    assert packaged.returncode == 0, packaged.report()
    targets = [BASE, *SERVICES]
    digests = installed.checkout.digests(targets)
    assert digests == built_checkout.digests(targets)


def test_lint_passes(installed: InstalledRepository, packaged: PantsRun) -> None:
    linted = installed.checkout.pants("lint", "::")
    assert linted.returncode == 0, linted.report()


def test_publish_tags_the_built_images(installed: InstalledRepository, packaged: PantsRun) -> None:
    assert packaged.returncode == 0, packaged.report()
    published = installed.publisher.publish("::")
    assert published.returncode == 0, published.report()
    for target in (BASE, *SERVICES):
        metadata = installed.checkout.outputs(target).metadata
        repository = f"{installed.publisher.namespace}/{metadata['repository']}"
        assert installed.publisher.tagged_digest(repository, "latest") == metadata["digest"]


def test_dependents_of_the_base_are_the_services(installed: InstalledRepository) -> None:
    run = installed.checkout.pants("dependents", BASE.address)
    assert run.returncode == 0, run.report()
    assert set(run.stdout.split()) == {target.address for target in SERVICES}, run.stdout

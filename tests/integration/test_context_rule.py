"""The context rule: every way a file from outside `services/api` could enter its image fails
`package` and `lint`, naming the offending path, and leaves nothing in dist/. Each case returns
the path the messages must name and the reason `package` must give."""

from __future__ import annotations

import gzip
import json
import os
import tarfile
from pathlib import Path
from typing import Callable

import pytest

from integration.checkouts import Checkout, ImageTarget

SERVICE = "services/api"
TARGET = f"{SERVICE}:api"
MODULE_DIR = f"{SERVICE}/src/esb_api"


def add_field(checkout: Checkout, field: str) -> None:
    checkout.substitute(f"{SERVICE}/BUILD", r'name="api",', f'name="api",\n    {field},')


def explicit_dependency(checkout: Checkout) -> tuple[str, str]:
    add_field(checkout, 'dependencies=["//services/worker:worker"]')
    return (
        "services/worker:worker",
        "services/worker:worker is a dependency (declared in `dependencies`)",
    )


def glob_reaching_up(checkout: Checkout) -> tuple[str, str]:
    add_field(
        checkout, 'sources=["pyproject.toml", "uv.lock", "src/**/*.py", "../worker/src/**/*.py"]'
    )
    return "'../worker/src/**/*.py'", "has glob(s) that leave the service's directory services/api/"


def relative_link_outside(checkout: Checkout) -> tuple[str, str]:
    os.symlink("../../../worker/src/esb_worker/__main__.py", checkout.root / MODULE_DIR / "leak.py")
    return (
        f"{MODULE_DIR}/leak.py",
        "is a symbolic link to `../../../worker/src/esb_worker/__main__.py`",
    )


def absolute_link(checkout: Checkout) -> tuple[str, str]:
    os.symlink("/etc/hostname", checkout.root / MODULE_DIR / "hostname.py")
    # `lint` reads every target's files before any linter runs, and Pants' own error names it.
    return f"{MODULE_DIR}/hostname.py", "is a symbolic link to the absolute path `/etc/hostname`"


def uv_path_source_outside(checkout: Checkout) -> tuple[str, str]:
    checkout.append(
        f"{SERVICE}/pyproject.toml", '\n[tool.uv.sources]\nshared = { path = "../shared" }\n'
    )
    return (
        "shared = '../shared' (in services/api/pyproject.toml)",
        "depends on local paths outside its directory",
    )


def secret_file(checkout: Checkout) -> tuple[str, str]:
    (checkout.root / MODULE_DIR / ".env").write_text("DATABASE_PASSWORD=hunter2\n")
    add_field(checkout, 'sources=["pyproject.toml", "uv.lock", "src/**"]')
    return f"{MODULE_DIR}/.env", "looks like a secret"


@pytest.mark.parametrize(
    "violate",
    [
        explicit_dependency,
        glob_reaching_up,
        relative_link_outside,
        absolute_link,
        uv_path_source_outside,
        secret_file,
    ],
    ids=lambda violate: violate.__name__,
)
def test_a_violation_fails_package_and_lint_naming_the_path(
    repo_root: Path,
    image_targets: list[ImageTarget],
    scratch: Path,
    violate: Callable[[Checkout], tuple[str, str]],
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    path, reason = violate(checkout)
    service = next(target for target in image_targets if target.address == TARGET)

    package = checkout.pants("package", TARGET)
    lint = checkout.pants("lint", TARGET)

    assert package.returncode != 0, package.report()
    assert path in package.stderr and reason in package.stderr, package.report()
    assert lint.returncode != 0, lint.report()
    assert path in lint.stderr, lint.report()
    assert checkout.files_under_output_prefix(service) == []


def test_a_link_through_a_link_to_a_directory_cannot_bypass_the_rule(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path
) -> None:
    # Read as text, `up/..` cancels out and `leak.py` stays in services/api/; the system and
    # Pants follow `up` to services/api/data first, so `leak.py` is the worker's __main__.py.
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    (checkout.root / SERVICE / "data").mkdir()
    (checkout.root / SERVICE / "data" / "keep.txt").write_text("")
    os.symlink("../../data", checkout.root / MODULE_DIR / "up")
    leak_target = "up/../../../services/worker/src/esb_worker/__main__.py"
    os.symlink(leak_target, checkout.root / MODULE_DIR / "leak.py")
    assert (checkout.root / MODULE_DIR / "leak.py").resolve() == (
        checkout.root / "services/worker/src/esb_worker/__main__.py"
    ).resolve()
    service = next(target for target in image_targets if target.address == TARGET)

    for goal in ("lint", "package"):
        run = checkout.pants(goal, TARGET)

        assert run.returncode == 1, run.report()
        assert (
            f"{MODULE_DIR}/leak.py is a symbolic link to `{leak_target}`, which goes through "
            f"the symbolic link {MODULE_DIR}/up (to `../../data`) and resolves to "
            "`services/worker/src/esb_worker/__main__.py`, outside services/api/"
        ) in " ".join(run.stderr.split()), run.report()
        assert "replace the link with a copy of what it points to" in run.stderr, run.report()
        assert "Traceback (most recent call last)" not in run.stderr, run.report()
    assert checkout.files_under_output_prefix(service) == []


def test_a_loop_of_links_is_named_before_pants_reads_it(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    os.symlink("loop_b.py", checkout.root / MODULE_DIR / "loop_a.py")
    os.symlink("loop_a.py", checkout.root / MODULE_DIR / "loop_b.py")
    service = next(target for target in image_targets if target.address == TARGET)

    package = checkout.pants("package", TARGET)
    ours = checkout.pants("lint", "--only=esb-context", "--only=esb-uv-lock", TARGET)
    # Plain `lint` first reads the files of its arguments for Pants' own `regex-lint`, and Pants
    # 2.17 crashes there on a loop of links to files, before any linter runs: it never passes.
    lint = checkout.pants("lint", TARGET)

    for run in (package, ours):
        assert run.returncode == 1, run.report()
        assert (
            f"{MODULE_DIR}/loop_a.py is a symbolic link to `loop_b.py`, which goes through the "
            f"symbolic link {MODULE_DIR}/loop_b.py (to `loop_a.py`) and never ends: the links loop"
        ) in run.stderr, run.report()
        assert "Pants cannot read a loop of links" in run.stderr, run.report()
        assert "Traceback (most recent call last)" not in run.stderr, run.report()
    assert lint.returncode != 0, lint.report()
    assert checkout.files_under_output_prefix(service) == []


def test_an_allowed_secret_and_tests_stay_as_the_target_says(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    (checkout.root / MODULE_DIR / ".env.example").write_text("DATABASE_PASSWORD=\n")
    (checkout.root / MODULE_DIR / "fake.key").write_text("not a key\n")
    (checkout.root / MODULE_DIR / "test_app.py").write_text("def test_nothing(): pass\n")
    add_field(checkout, 'sources=["pyproject.toml", "uv.lock", "src/**"]')
    add_field(checkout, 'allowed_secrets=["src/esb_api/fake.key"]')
    service = next(target for target in image_targets if target.address == TARGET)

    run = checkout.pants("package", TARGET)

    assert run.returncode == 0, run.report()
    shipped = app_layer_names(checkout, service)
    assert "app/src/esb_api/fake.key" in shipped
    assert "app/src/esb_api/.env.example" in shipped
    assert "app/src/esb_api/test_app.py" not in shipped
    # The only bytecode is what the build compiles for the modules it ships.
    compiled = {name for name in shipped if "/__pycache__/" in name and name.endswith(".pyc")}
    assert compiled and all(
        name.replace("/__pycache__/", "/").replace(".cpython-311.pyc", ".py") in shipped
        for name in compiled
    ), sorted(compiled)


def app_layer_names(checkout: Checkout, service: ImageTarget) -> set[str]:
    """The paths in the image's last layer: the service's app layer."""
    layout = checkout.outputs(service).layout
    manifest_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_text())
    blob = layout / "blobs" / "sha256" / manifest["layers"][-1]["digest"].split(":")[1]
    with gzip.open(blob) as stream, tarfile.open(fileobj=stream) as tar:
        return set(tar.getnames())

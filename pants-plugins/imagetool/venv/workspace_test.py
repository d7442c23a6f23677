"""A uv workspace, locked at its root with the real uv: each member exports only what it
installs, the check covers the whole workspace, and a shared member builds on its own."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from imagetool.cli import main
from imagetool.venv.builds import build_local_wheels
from imagetool.venv.conftest import DEBIAN_12, TARGET_ARGS
from imagetool.venv.export import export_requirements
from imagetool.venv.indexes import LockError
from imagetool.venv.lock_checks import check_lock
from imagetool.venv.uv_process import Uv
from imagetool.venv.workspace import lock_workspace

FLIT_BACKEND = (
    '[build-system]\nrequires = ["flit_core==3.10.1"]\nbuild-backend = "flit_core.buildapi"\n'
)


def member(root: Path, directory: str, name: str, dependencies: list[str], extra: str = "") -> None:
    (root / directory).mkdir(parents=True)
    (root / directory / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "{name}"
            version = "1.0"
            description = "A member."
            requires-python = "==3.11.*"
            dependencies = {dependencies!r}
            """
        ).replace("'", '"')
        + extra
    )


def write_workspace(root: Path) -> Path:
    """Two services and the library both use; the root is no project."""
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["services/*", "libs/*"]\nexclude = ["services/old"]\n'
    )
    uses_shared = "\n[tool.uv.sources]\nshared = { workspace = true }\n"
    member(root, "services/a", "svc-a", ["shared", "idna==3.10"], uses_shared)
    member(root, "services/b", "svc-b", ["shared", "six==1.17.0"], uses_shared)
    member(root, "libs/shared", "shared", ["six==1.17.0"], "\n" + FLIT_BACKEND)
    (root / "libs/shared/shared.py").write_text("GREETING = 'hello'\n")
    # Excluded: neither locked nor checked with the workspace.
    (root / "services/old").mkdir()
    (root / "services/old/pyproject.toml").write_text("not toml [")
    return root


@pytest.fixture
def workspace(uv: Uv, tmp_path: Path) -> Path:
    root = write_workspace(tmp_path / "repo")
    lock_workspace(uv, root, "3.11.2", display_dir="repo", relock_command="pants esb-lock x:x")
    return root


def test_lock_writes_one_lock_for_every_member(workspace: Path) -> None:
    lock = (workspace / "uv.lock").read_text()
    for name in ("svc-a", "svc-b", "shared", "idna", "six"):
        assert f'name = "{name}"' in lock
    assert not (workspace / "services/a/uv.lock").exists()


def test_each_member_exports_only_what_it_installs(uv: Uv, workspace: Path) -> None:
    a = export_requirements(uv, workspace, package="svc-a").for_target(DEBIAN_12)
    b = export_requirements(uv, workspace, package="svc-b").for_target(DEBIAN_12)
    assert [d.name for d in a.distributions] == ["idna", "six"]
    assert [d.name for d in b.distributions] == ["six"]
    # The shared member, relative to the root; the member itself is not among them.
    assert a.local_directories == b.local_directories == ("libs/shared",)


def test_check_needs_only_the_pyprojects_and_catches_a_stale_member(
    uv: Uv, workspace: Path, tmp_path: Path
) -> None:
    staged = tmp_path / "staged"
    for path in (
        "pyproject.toml",
        "uv.lock",
        *(f"{d}/pyproject.toml" for d in ("services/a", "services/b", "libs/shared")),
    ):
        (staged / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(workspace / path, staged / path)
    check_lock(uv, staged, "3.11.2", display_dir="repo", relock_command="pants esb-lock s/a:a")
    # A dependency of the other member changes: the workspace lock is stale for every member.
    pyproject = staged / "services/b/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("six==1.17.0", "six==1.16.0", 1))
    with pytest.raises(LockError) as error:
        check_lock(uv, staged, "3.11.2", display_dir="repo", relock_command="pants esb-lock s/a:a")
    assert "repo/uv.lock does not match repo/pyproject.toml" in str(error.value)
    assert "run `pants esb-lock s/a:a` and commit repo/uv.lock" in str(error.value)


def test_root_without_lock_names_the_fix(uv: Uv, tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "repo")
    with pytest.raises(LockError) as error:
        check_lock(uv, root, "3.11.2", display_dir="repo", relock_command="pants esb-lock s/a:a")
    assert "repo has no uv.lock" in str(error.value)
    assert "`pants esb-lock s/a:a`" in str(error.value)


def test_shared_member_builds_without_the_rest_of_the_workspace(
    uv: Uv, workspace: Path, tmp_path: Path
) -> None:
    staged = tmp_path / "members"
    shutil.copytree(workspace / "libs/shared", staged / "libs/shared")
    wheels = [
        build_local_wheels(
            uv, staged, ["libs/shared"], tmp_path / f"wheels{i}", source_date_epoch=315532800
        )[0].read_bytes()
        for i in range(2)
    ]
    assert wheels[0] == wheels[1]


def test_lock_refuses_a_root_without_workspace_table(uv: Uv, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n')
    with pytest.raises(LockError) as error:
        lock_workspace(uv, tmp_path, "3.11.2", display_dir="repo")
    assert "repo/pyproject.toml has no `[tool.uv.workspace]` table" in str(error.value)


def test_the_root_build_constraints_cover_every_member_and_serve_each(
    uv_wheel: Path, uv: Uv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_workspace(tmp_path / "repo")
    shared = root / "libs/shared/pyproject.toml"
    # A backend its authors left unpinned, as most projects do.
    shared.write_text(shared.read_text().replace("flit_core==3.10.1", "flit_core>=3.8,<4"))
    constraints = root / "build-constraints.txt"
    common = [f"--project={root}", f"--uv={uv_wheel}", "--display-dir=repo"]
    lock = ["uv-lock", *common, "--python-version=3.11.2", "--workspace"]
    exported = [
        "export-lock",
        *common,
        *TARGET_ARGS,
        "--package=svc-a",
        f"--build-constraints={constraints}",
        f"--out={tmp_path / 'export.json'}",
    ]

    assert main([*lock, f"--build-constraints={constraints}"]) == 0
    written = constraints.read_text()
    assert "# build: local libs/shared requires=flit_core>=3.8,<4\n" in written
    assert "flit-core==" in written and "--hash=sha256:" in written
    assert main(exported) == 0
    # The unpinned backend builds, hash-checked, from the root's file.
    wheels = [
        build_local_wheels(
            uv,
            root,
            ["libs/shared"],
            tmp_path / f"wheels{i}",
            source_date_epoch=315532800,
            build_constraints=constraints,
        )[0].read_bytes()
        for i in range(2)
    ]
    assert wheels[0] == wheels[1]

    # A member's changed backend makes the file stale for every member.
    shared.write_text(shared.read_text().replace(">=3.8,<4", ">=3.9,<4"))
    assert main(["uv-lock", *common, "--python-version=3.11.2", "--workspace"]) == 0
    capsys.readouterr()
    assert main(exported) == 1
    stderr = capsys.readouterr().err
    assert "repo/build-constraints.txt is stale" in stderr
    assert "+ local libs/shared requires=flit_core>=3.9,<4" in stderr
    assert "Traceback" not in stderr

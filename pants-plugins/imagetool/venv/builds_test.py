"""Wheels built from real sdists of PyPI, pinned by version and sha256: reproducible for a
pure-Python one, refused naming the distribution for one that needs a C compiler."""

from __future__ import annotations

import hashlib
import http.server
import json
import sys
import tarfile
import textwrap
import threading
from pathlib import Path

import pytest

from imagetool.cli import main
from imagetool.venv.build_constraints import (
    build_sources,
    check_build_constraints,
    write_build_constraints,
)
from imagetool.venv.builds import BuildConstraintsError, NeedsCompilerError, build_wheel
from imagetool.venv.conftest import DEBIAN_12
from imagetool.venv.export import export_requirements
from imagetool.venv.indexes import HashMismatchError, LockError, read_toml
from imagetool.venv.sdists import LockedSdist, fetch_sdist, sdist_only_distributions
from imagetool.venv.uv_process import Uv

EPOCH = 315532800
# Published only as sdists: pure Python (setup.py), and a C++ extension.
DOCOPT = LockedSdist(
    "docopt",
    "0.6.2",
    "https://files.pythonhosted.org/packages/a2/55/8f8cab2afd404cf578136ef2cc5dfb50baa1761b68c9da1fb1e4eed343c9/docopt-0.6.2.tar.gz",
    "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491",
)
MMH3 = LockedSdist(
    "mmh3",
    "2.5.1",
    "https://files.pythonhosted.org/packages/fa/7e/3ddcab0a9fcea034212c02eb411433db9330e34d626360b97333368b4052/mmh3-2.5.1.tar.gz",
    "185209a217c52afe43e079e5b232d0ef0f3a262601eaaf4371326ab6dcbec508",
)
RELOCK = "pants esb-lock services/cli:cli"


def lock_service(uv: Uv, root: Path, dependencies: list[str]) -> Path:
    project = root / "cli"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "cli"
            version = "0.1.0"
            requires-python = "==3.11.*"
            dependencies = {json.dumps(dependencies)}

            [tool.uv]
            exclude-newer = "2025-06-01T00:00:00Z"
            """
        )
    )
    result = uv.run(["lock", "--python", sys.executable], cwd=project)
    assert result.returncode == 0, result.stderr
    return project


def constraints_text(constraints_file: Path) -> str:
    """The file's requirements, without its header."""
    lines = constraints_file.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


def constraints_for(uv: Uv, project: Path) -> Path:
    lock = read_toml(project / "uv.lock", "uv.lock", "")
    sources = build_sources(project, lock, (), display_dir="services/cli")
    out = project / "build-constraints.txt"
    assert write_build_constraints(
        uv, project, sources, out, relock_command=RELOCK, exclude_newer="2025-06-01T00:00:00Z"
    )
    return out


def build_from_pypi(uv: Uv, sdist: LockedSdist, tmp_path: Path, constraints: Path) -> Path:
    return build_wheel(
        uv,
        fetch_sdist(sdist, tmp_path),
        tmp_path / "out",
        source_date_epoch=EPOCH,
        build_constraints=constraints,
        display=sdist.display,
    )


@pytest.fixture(scope="module")
def docopt_service(uv: Uv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = lock_service(uv, tmp_path_factory.mktemp("docopt"), ["docopt==0.6.2"])
    constraints_for(uv, project)
    return project


def test_the_lock_marks_the_sdist_only_distribution(uv: Uv, docopt_service: Path) -> None:
    lock = read_toml(docopt_service / "uv.lock", "uv.lock", "")
    assert sdist_only_distributions(lock) == {("docopt", "0.6.2"): DOCOPT}
    (docopt,) = export_requirements(uv, docopt_service).for_target(DEBIAN_12).distributions
    assert docopt.sdist_url == DOCOPT.url


def test_esb_lock_pins_setuptools_with_hashes_and_records_the_sdist(docopt_service: Path) -> None:
    constraints = docopt_service / "build-constraints.txt"
    text = constraints.read_text()
    assert f"# build: sdist docopt==0.6.2 sha256:{DOCOPT.sha256}\n" in text
    assert RELOCK in text
    pins = constraints_text(constraints)
    assert pins.startswith("setuptools==") and "--hash=sha256:" in pins


def test_two_builds_give_the_same_wheel_bytes(uv: Uv, docopt_service: Path, tmp_path: Path) -> None:
    sdist = fetch_sdist(DOCOPT, tmp_path)
    digests = []
    for attempt in ("a", "b"):
        wheel = build_wheel(
            uv,
            sdist,
            tmp_path / attempt,
            source_date_epoch=EPOCH,
            build_constraints=docopt_service / "build-constraints.txt",
            display=DOCOPT.display,
        )
        assert wheel.name == "docopt-0.6.2-py2.py3-none-any.whl"
        digests.append(hashlib.sha256(wheel.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_a_build_requirement_missing_from_the_constraints_fails_closed(
    uv: Uv, tmp_path: Path
) -> None:
    empty = tmp_path / "build-constraints.txt"
    empty.write_text("")
    with pytest.raises(BuildConstraintsError) as error:
        build_from_pypi(uv, DOCOPT, tmp_path, empty)
    message = str(error.value)
    assert "Building docopt 0.6.2 needs the build requirement `setuptools" in message
    assert "`pants esb-lock <service target>`" in message


def test_an_sdist_that_needs_a_compiler_is_refused_naming_it(uv: Uv, tmp_path: Path) -> None:
    project = lock_service(uv, tmp_path, ["mmh3==2.5.1"])
    constraints = constraints_for(uv, project)
    with pytest.raises(NeedsCompilerError) as error:
        build_from_pypi(uv, MMH3, tmp_path, constraints)
    message = str(error.value)
    assert message.startswith("mmh3 2.5.1 needs a C compiler to build")
    assert "private index" in message and "`pants esb-lock <service target>`" in message
    assert "uv lock" not in message.split("uv said:")[0]


def test_a_replaced_sdist_is_refused(tmp_path: Path) -> None:
    replaced = LockedSdist(DOCOPT.name, DOCOPT.version, DOCOPT.url, "0" * 64)
    with pytest.raises(HashMismatchError, match="not the 0000"):
        fetch_sdist(replaced, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_constraints_are_checked_offline(uv: Uv, docopt_service: Path, tmp_path: Path) -> None:
    lock = read_toml(docopt_service / "uv.lock", "uv.lock", "")
    sources = build_sources(docopt_service, lock, (), display_dir="services/cli")
    constraints = docopt_service / "build-constraints.txt"
    check_build_constraints(
        constraints, sources, shown_file="services/cli/build-constraints.txt", relock_command=RELOCK
    )
    with pytest.raises(LockError, match=f"(?s)is missing.*docopt 0.6.2 \\(sdist\\).*`{RELOCK}`"):
        check_build_constraints(
            tmp_path / "absent.txt", sources, shown_file="x", relock_command=RELOCK
        )
    stale = tmp_path / "stale.txt"
    stale.write_text(constraints.read_text().replace(DOCOPT.sha256, "1" * 64))
    with pytest.raises(LockError, match="is stale"):
        check_build_constraints(stale, sources, shown_file="x", relock_command=RELOCK)
    # Nothing to build: no file is needed.
    check_build_constraints(tmp_path / "absent.txt", (), shown_file="x", relock_command=RELOCK)


def test_the_distribution_layer_of_a_built_sdist_is_reproducible(
    uv_wheel: Path, docopt_service: Path, tmp_path: Path
) -> None:
    target = [
        f"--python-version={DEBIAN_12.version}",
        f"--python-platform={DEBIAN_12.platform}",
        f"--interpreter={DEBIAN_12.interpreter}",
    ]
    export = tmp_path / "export.json"
    assert (
        main(
            [
                "export-lock",
                f"--project={docopt_service}",
                f"--uv={uv_wheel}",
                *target,
                f"--build-constraints={docopt_service / 'build-constraints.txt'}",
                f"--out={export}",
            ]
        )
        == 0
    )
    (docopt,) = json.loads(export.read_text())["distributions"]
    descriptors = []
    for attempt in ("a", "b"):
        wheels = tmp_path / attempt / "wheel"
        assert (
            main(
                [
                    "sdist-wheel",
                    f"--requirement={docopt['requirement']}",
                    f"--sdist-url={docopt['sdist_url']}",
                    *target,
                    f"--uv={uv_wheel}",
                    f"--build-constraints={docopt_service / 'build-constraints.txt'}",
                    f"--out-dir={wheels}",
                ]
            )
            == 0
        )
        (wheel,) = wheels.iterdir()
        out = tmp_path / attempt
        assert (
            main(
                [
                    "distribution-layer",
                    f"--wheel={wheel}",
                    f"--uv={uv_wheel}",
                    *target,
                    f"--out-blob={out / 'l.tar.gz'}",
                    f"--out-descriptor={out / 'l.json'}",
                    f"--out-inventory={out / 'l.inventory.json'}",
                ]
            )
            == 0
        )
        descriptors.append(json.loads((out / "l.json").read_text()))
    assert descriptors[0] == descriptors[1]
    with tarfile.open(tmp_path / "a" / "l.tar.gz") as layer:
        names = layer.getnames()
    assert ".venv/lib/python3.11/site-packages/docopt.py" in names
    assert not any("direct_url.json" in name for name in names)


def test_an_sdist_of_a_private_index_is_fetched_with_its_credentials(tmp_path: Path) -> None:
    seen: list[str] = []

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            if self.headers.get("Authorization") != "Basic dXNlcjpzM2NyZXQ=":
                self.send_response(401)
                self.end_headers()
                return
            body = b"sdist bytes"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/files/internal-1.0.tar.gz"
        sdist = LockedSdist("internal", "1.0", url, hashlib.sha256(b"sdist bytes").hexdigest())
        with pytest.raises(Exception, match="refused access to the sdist of internal 1.0"):
            fetch_sdist(sdist, tmp_path)
        netrc = "machine 127.0.0.1 login user password s3cret\n"
        fetched = fetch_sdist(sdist, tmp_path, netrc)
    finally:
        server.shutdown()
    assert fetched.name == "internal-1.0.tar.gz" and fetched.read_bytes() == b"sdist bytes"
    assert seen == ["", "Basic dXNlcjpzM2NyZXQ="]

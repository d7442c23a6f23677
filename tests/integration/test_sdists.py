"""Dependencies published only as a source distribution (sdist): `pants esb-lock` pins their
build requirements in build-constraints.txt, `lint` checks that file and builds them as
`package` does, and `package` installs the wheel built from the sdist in a layer of its own; an
sdist that needs a C compiler is refused naming it and what to do."""

from __future__ import annotations

from docker import DockerClient

from integration.checkouts import WORKER, Checkout, ImageTarget, add_worker_dependency
from integration.containers import run_to_exit

SERVICE = WORKER
TARGET = f"{SERVICE}:worker"
CONSTRAINTS = f"{SERVICE}/build-constraints.txt"
# Published only as sdists on PyPI, pinned by version and sha256 (the lock records the hash and
# the tests check it): docopt is pure Python (setup.py); mmh3 2.5.1 is a C++ extension.
DOCOPT = "docopt==0.6.2"
DOCOPT_SHA256 = "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491"
MMH3 = "mmh3==2.5.1"
MMH3_SHA256 = "185209a217c52afe43e079e5b232d0ef0f3a262601eaaf4371326ab6dcbec508"
# The index as of this date: the build requirements esb-lock resolves do not move.
EXCLUDE_NEWER = "2025-06-01T00:00:00Z"


def add_dependency(checkout: Checkout, requirement: str) -> None:
    add_worker_dependency(checkout, requirement)
    checkout.append(f"{SERVICE}/pyproject.toml", f'exclude-newer = "{EXCLUDE_NEWER}"\n')


def test_an_sdist_only_dependency_is_built_installed_and_linted(
    checkout: Checkout, docker_client: DockerClient
) -> None:
    add_dependency(checkout, DOCOPT)
    # A lock that pins the sdist, made before build-constraints.txt existed (e.g. by hand with
    # uv): lint reports the missing file, as package does.
    lock = checkout.pants("esb-lock", TARGET)
    assert lock.returncode == 0, lock.report()
    assert f"Wrote {CONSTRAINTS}" in lock.stdout, lock.report()
    constraints = (checkout.root / CONSTRAINTS).read_text()
    (checkout.root / CONSTRAINTS).unlink()
    for goal in ("lint", "package"):
        missing = checkout.pants(goal, TARGET)
        assert missing.returncode != 0, missing.report()
        assert f"{CONSTRAINTS} is missing" in missing.stderr, missing.report()
        assert "docopt 0.6.2 (sdist)" in missing.stderr, missing.report()
        assert f"pants esb-lock {TARGET}" in missing.stderr, missing.report()

    relock = checkout.pants("esb-lock", TARGET)
    assert relock.returncode == 0, relock.report()
    assert (checkout.root / CONSTRAINTS).read_text() == constraints
    assert f"# build: sdist docopt==0.6.2 sha256:{DOCOPT_SHA256}\n" in constraints
    assert "\nsetuptools==" in constraints and "--hash=sha256:" in constraints

    lint = checkout.pants("lint", TARGET)
    assert lint.returncode == 0, lint.report()
    package = checkout.pants("package", TARGET)
    assert package.returncode == 0, package.report()

    image = checkout.load_service_image(TARGET, docker_client)
    used = run_to_exit(
        docker_client,
        image.id,
        ["python", "-c", "import docopt; print(docopt.__version__, docopt.__file__)"],
    )
    assert used.status == 0, used.report()
    assert used.stdout == "0.6.2 /.venv/lib/python3.11/site-packages/docopt.py\n", used.report()

    # The wheel is byte-reproducible: a second build from scratch gives the same image.
    outputs = checkout.outputs(ImageTarget.service(TARGET))
    digest = outputs.digest
    rebuilt = checkout.pants("--no-local-cache", "package", TARGET)
    assert rebuilt.returncode == 0, rebuilt.report()
    assert outputs.digest == digest


def test_an_sdist_that_needs_a_compiler_fails_lint_and_package_naming_it(
    checkout: Checkout,
) -> None:
    add_dependency(checkout, MMH3)
    lock = checkout.pants("esb-lock", TARGET)
    assert lock.returncode == 0, lock.report()
    assert (
        f"# build: sdist mmh3==2.5.1 sha256:{MMH3_SHA256}"
        in (checkout.root / CONSTRAINTS).read_text()
    )

    for goal in ("lint", "package"):
        refused = checkout.pants(goal, TARGET)
        assert refused.returncode != 0, refused.report()
        assert "mmh3 2.5.1 needs a C compiler to build" in refused.stderr, refused.report()
        assert f"pants esb-lock {TARGET}" in refused.stderr, refused.report()
        assert "private index" in refused.stderr, refused.report()
        assert "Traceback" not in refused.stderr, refused.report()
    assert not checkout.files_under_output_prefix(ImageTarget.service(TARGET))


def test_esb_lock_removes_the_constraints_when_nothing_is_built(checkout: Checkout) -> None:
    add_dependency(checkout, DOCOPT)
    assert checkout.pants("esb-lock", TARGET).returncode == 0
    assert (checkout.root / CONSTRAINTS).is_file()
    checkout.substitute(f"{SERVICE}/pyproject.toml", f'"{DOCOPT}",', "")

    lock = checkout.pants("esb-lock", TARGET)

    assert lock.returncode == 0, lock.report()
    assert f"Removed {CONSTRAINTS}" in lock.stdout, lock.report()
    assert not (checkout.root / CONSTRAINTS).exists()

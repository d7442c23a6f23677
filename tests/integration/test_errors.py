"""Misconfigurations fail `./pants package ::` with a message that names what is wrong and how
to fix it, and leave nothing of the failed images in dist/."""

from __future__ import annotations

from pathlib import Path

from integration.checkouts import Checkout, ImageTarget, PantsRun

NOT_AN_IMAGE = "not-an-image"
# A Debian package that base/packages.lock.json does not hold.
UNLOCKED_PACKAGE = "curl"
# A field checked when the target is read fails the run before anything builds, well within
# this. A run that wrote outside dist/ would instead retry without end, its own outputs changing
# the workspace Pants watches ("Filesystem changed during run: retrying").
TARGET_ERROR_TIMEOUT_S = 300


def test_a_base_that_is_not_an_image_target_fails_naming_the_field_and_the_target(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    service = next(target for target in image_targets if target.is_service)
    build_file = f"{service.spec_path}/BUILD"
    checkout.substitute(build_file, r'\bbase\s*=\s*"[^"]*"', f'base=":{NOT_AN_IMAGE}"')
    checkout.append(build_file, f'\nfiles(name="{NOT_AN_IMAGE}", sources=["pyproject.toml"])\n')

    run = checkout.pants("package", "::")

    assert run.returncode == 1, run.report()
    assert "`base`" in run.stderr and service.address in run.stderr, run.report()
    assert f":{NOT_AN_IMAGE}" in run.stderr, run.report()
    assert checkout.files_under_output_prefix(service) == []


def test_a_stale_base_lock_fails_naming_the_lock_and_the_command_that_renews_it(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    base = next(target for target in image_targets if not target.is_service)
    checkout.substitute(
        f"{base.spec_path}/BUILD", r"\bpackages\s*=\s*\[", f'packages=["{UNLOCKED_PACKAGE}", '
    )

    run = checkout.pants("package", "::")

    assert run.returncode == 1, run.report()
    assert "packages.lock.json" in run.stderr and "pants esb-lock" in run.stderr, run.report()
    assert base.address in run.stderr, run.report()
    # Every image is built on the base: none may land, not even in part.
    for target in image_targets:
        assert checkout.files_under_output_prefix(target) == [], target.address


def _service_with(
    repo_root: Path,
    image_targets: list[ImageTarget],
    scratch: Path,
    pattern: str,
    replacement: str,
) -> tuple[Checkout, ImageTarget]:
    """A copy of the checkout whose first service's BUILD has `pattern` replaced."""
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    service = next(target for target in image_targets if target.is_service)
    checkout.substitute(f"{service.spec_path}/BUILD", pattern, replacement)
    return checkout, service


def _assert_refused(run: PantsRun, *expected: str) -> None:
    """The run failed with a message holding each of `expected`, and no Python traceback."""
    assert run.returncode == 1, run.report()
    for text in expected:
        assert text in run.stderr, run.report()
    assert "Traceback" not in run.stderr, run.report()


def test_an_output_path_outside_dist_fails_at_once_naming_the_field_and_the_fix(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path
) -> None:
    checkout, service = _service_with(
        repo_root,
        image_targets,
        scratch,
        r'\bbase\s*=\s*"[^"]*"',
        r'\g<0>, output_path="../outside/api"',
    )

    run = checkout.pants("package", "::", timeout_s=TARGET_ERROR_TIMEOUT_S)

    _assert_refused(
        run,
        f"The `output_path` field of the target {service.address} is '../outside/api', a path "
        "that leaves the dist directory",
        "Fix: give a relative path",
    )
    assert not (checkout.root / "outside").exists()
    for target in image_targets:
        assert checkout.files_under_output_prefix(target) == [], target.address


def test_a_stop_signal_linux_lacks_fails_naming_the_field_and_the_fix(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path
) -> None:
    checkout, service = _service_with(
        repo_root, image_targets, scratch, r'\bbase\s*=\s*"[^"]*"', r'\g<0>, stop_signal="SIGFOO"'
    )

    run = checkout.pants("package", service.address, timeout_s=TARGET_ERROR_TIMEOUT_S)

    _assert_refused(
        run,
        f"The `stop_signal` field of the target {service.address} is 'SIGFOO', which is not a "
        "Linux signal",
        'Fix: use a signal name such as `"SIGTERM"`',
    )
    assert checkout.files_under_output_prefix(service) == []


def test_a_user_the_base_lacks_fails_the_build_naming_the_field_the_accounts_and_the_fix(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path
) -> None:
    checkout, service = _service_with(
        repo_root, image_targets, scratch, r'\buser\s*=\s*"[^"]*"', 'user="nosuchuser"'
    )

    run = checkout.pants("package", service.address)

    _assert_refused(
        run,
        f"Assemble the image {service.address} failed:",
        "The `user` field is 'nosuchuser', but the image has no user 'nosuchuser'",
        # The base's accounts: Debian's system accounts and its `service_accounts`.
        "root (0)",
        "esb (10001)",
        'Fix: add `"nosuchuser:<uid from 1000 to 59999>"` to the `service_accounts` field',
        'or use a numeric uid, e.g. `user="10001"`',
    )
    assert checkout.files_under_output_prefix(service) == []

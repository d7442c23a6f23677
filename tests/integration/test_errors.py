"""Misconfigurations fail `./pants package ::` with a message that names what is wrong and how
to fix it, and leave nothing of the failed images in dist/."""

from __future__ import annotations

from pathlib import Path

from integration.checkouts import Checkout, ImageTarget

NOT_AN_IMAGE = "not-an-image"
# A Debian package that base/packages.lock.json does not hold.
UNLOCKED_PACKAGE = "curl"


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

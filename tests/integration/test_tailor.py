"""`pants tailor` gives a new service directory its image target, and the image builds."""

from __future__ import annotations

import shutil
from pathlib import Path

from integration.checkouts import Checkout


def test_tailor_adds_an_image_target_for_a_new_service_that_then_builds(
    repo_root: Path, scratch: Path
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    service = checkout.root / "services" / "billing"
    (service / "src" / "esb_billing").mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(checkout.root / "services" / "worker" / name, service / name)
    (service / "src" / "esb_billing" / "__main__.py").write_text("print('billing')\n")

    check = checkout.pants("tailor", "--check", "::")
    assert check.returncode == 1, check.report()
    assert "Add esb_service_image target billing" in check.stdout + check.stderr, check.report()

    tailor = checkout.pants("tailor", "::")

    assert tailor.returncode == 0, tailor.report()
    build = (service / "BUILD").read_text()
    # Pants formats the BUILD file itself; compare without its whitespace.
    compact = "".join(build.split())
    assert 'base="//base:esb-service-base"' in compact, build
    assert 'command=["python","-m","esb_billing",]' in compact, build
    package = checkout.pants("package", "services/billing:billing")
    assert package.returncode == 0, package.report()

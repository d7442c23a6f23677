from __future__ import annotations

from esb.goals.run import EsbRunSubsystem, run_image_args
from pants.testutil.option_util import create_subsystem


def test_run_args_publish_ports_and_pick_network() -> None:
    subsystem = create_subsystem(EsbRunSubsystem, network="none", publish_ports=True, load_only=False)
    assert run_image_args("tool/pex", ("8080/tcp", "9000/udp"), subsystem) == (
        "{chroot}/tool/pex",
        "run-image",
        "--layout",
        "{chroot}/image.oci",
        "--metadata",
        "{chroot}/image.image.json",
        "--network",
        "none",
        "--publish",
        "8080:8080/tcp",
        "--publish",
        "9000:9000/udp",
    )


def test_load_only_without_ports() -> None:
    subsystem = create_subsystem(EsbRunSubsystem, network=None, publish_ports=False, load_only=True)
    assert run_image_args("pex", ("8080/tcp",), subsystem)[-1] == "--load-only"

"""`created="commit"`: images dated by the commit checked out, the same from any checkout of it.

A copy of the checkout has no `.git`: each test commits its copy itself, with a fixed committer
date, as a CI job checks out the same commit.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
from docker import DockerClient

from integration.checkouts import Checkout, ImageTarget

BASE = "base:esb-service-base"
API = "services/api:api"
TARGETS = (ImageTarget(BASE, "esb_base_image", ()), ImageTarget.service(API))
# Not `latest`: loading the images must not move the tags of other tests' images.
TAG = "created-commit"
COMMITTER_TIME = 1_700_000_000
COMMITTER_DATE = "2023-11-14T22:13:20Z"
DATED_BY_COMMIT = (
    "\n__defaults__({(esb_base_image, esb_service_image): "
    f'dict(created="commit", image_tags=["{TAG}"])}})\n'
)


def commit_all(checkout: Checkout) -> None:
    """Makes the copy a git checkout whose HEAD was committed at COMMITTER_TIME."""
    identity = {"NAME": "esb", "EMAIL": "esb@example.com"}
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(checkout.root),
        "GIT_CONFIG_NOSYSTEM": "1",
        **{
            f"GIT_{who}_{key}": value
            for who in ("AUTHOR", "COMMITTER")
            for key, value in identity.items()
        },
        "GIT_AUTHOR_DATE": f"@{COMMITTER_TIME} +0000",
        "GIT_COMMITTER_DATE": f"@{COMMITTER_TIME} +0000",
    }
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "The checkout"]):
        subprocess.run(["git", *argv], cwd=checkout.root, env=env, check=True)


def dated_checkout(repo_root: Path, destination: Path) -> Checkout:
    checkout = Checkout.copy_of(repo_root, destination)
    checkout.append("BUILD", DATED_BY_COMMIT)
    commit_all(checkout)
    return checkout


def test_images_dated_by_the_commit_are_the_same_from_any_checkout_of_it(
    repo_root: Path, scratch: Path, docker_client: DockerClient
) -> None:
    # Paths of different lengths: the commit's time is all that the checkout gives the images.
    first = dated_checkout(repo_root, scratch / "first" / "checkout")
    second = dated_checkout(repo_root, scratch / "second" / "a-checkout-at-a-longer-path")
    for checkout in (first, second):
        run = checkout.pants("package", BASE, API)
        assert run.returncode == 0, run.report()

    for target in TARGETS:
        config = first.outputs(target).config
        assert config["created"] == COMMITTER_DATE, target.address
        assert {entry["created"] for entry in config["history"]} == {COMMITTER_DATE}
    assert first.digests(TARGETS) == second.digests(TARGETS)

    # What `docker images` and `docker inspect` show once the image is loaded.
    outputs = first.outputs(TARGETS[1])
    config_digest = outputs.metadata["config_digest"]
    try:
        docker_client.images.get(config_digest)
        loaded_before = True
    except docker.errors.ImageNotFound:
        loaded_before = False
    image = outputs.load_into(docker_client)
    try:
        assert image.attrs["Created"] == COMMITTER_DATE
        (listed,) = docker_client.api.images(name=f"esb/api:{TAG}")
        assert listed["Created"] == COMMITTER_TIME
    finally:
        if not loaded_before:
            docker_client.images.remove(config_digest, force=True)

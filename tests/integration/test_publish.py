"""`./pants publish` to a real registry: Debian's docker-registry of tests/infra/registry.sh (TLS by
its own CA, htpasswd), then `docker pull` of what was pushed.

The copy of the checkout publishes under a namespace of its own (`[esb-registries.publish]`'s
address `<registry>/publish-<run>`), so that every run starts from repositories that hold nothing
and the counts of uploaded blobs mean something, while the images and their digests stay those
of the checkout. Credentials reach Pants only through a Docker config file in the test's scratch
directory, and the registry's CA is a file of the repository named in `[esb-registries]`.

Not here: a registry killed mid-push and the resumed push, covered against the same kind of
registry by `pants-plugins/imagetool/registry/registry_integration_test.py`
(`test_interrupted_push_resumes`, and `test_read_only_registry`), since `publish` runs exactly
that `push-image`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import tomllib
from docker import DockerClient

from esb_contract.media_types import INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE
from imagetool.registry.auth import pull_scope
from imagetool.registry.credentials import DockerConfig
from imagetool.registry.transport import RegistryClient, RegistryOptions
from integration.checkouts import Checkout, ImageTarget, PantsRun, scratch_directory

# `test_registry` is the fixture, shared with the upstream base's tests.
from integration.test_upstream_base import (  # noqa: F401
    SharedRegistry,
    test_registry,
    write_docker_config,
)

CA_IN_REPOSITORY = "certs/test-registry-ca.pem"
ALIAS = "test"
# What `push-image` prints: a line per blob on stderr, and a summary per image on stdout.
BLOB_LINE = re.compile(
    r"^(sha256:[0-9a-f]{64}) \((\d+) bytes\): (uploaded|skipped|mounted)$", re.MULTILINE
)
PUSHED_LINE = re.compile(
    r"^Pushed (?P<name>\S+)@(?P<digest>sha256:[0-9a-f]{64}) \(tags: (?P<tags>[^)]*)\): "
    r"(?P<uploaded>\d+) blobs uploaded \((?P<bytes>\d+) bytes\), (?P<present>\d+) present, "
    r"(?P<mounted>\d+) mounted\.$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class PublishCheckout:
    checkout: Checkout
    registry: SharedRegistry
    namespace: str
    """Under which every repository of this copy is pushed."""
    docker_config: Path
    scratch: Path

    @classmethod
    def set_up(
        cls, checkout: Checkout, registry: SharedRegistry, namespace: str, scratch: Path
    ) -> PublishCheckout:
        """Sets `checkout` up to publish to `registry` under `namespace`: credentials in a Docker
        config file under `scratch`, the registry's CA a file of the repository named in
        `[esb-registries]`, and `namespace` the address of the default publish alias."""
        docker_config = write_docker_config(scratch / "docker" / "config.json", registry)
        (checkout.root / CA_IN_REPOSITORY).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(registry.ca, checkout.root / CA_IN_REPOSITORY)
        checkout.append(
            "pants.toml",
            f'\n[esb-registries]\ndocker_config = "{docker_config}"\n\n'
            f'[esb-registries.registries."{registry.host}"]\nca_bundle = "{CA_IN_REPOSITORY}"\n\n'
            f'[esb-registries.publish.{ALIAS}]\naddress = "{registry.host}/{namespace}"\ndefault = true\n',
        )
        return cls(checkout, registry, namespace, docker_config, scratch)

    def name(self, repository: str) -> str:
        """`registry/namespace/repository`: where `publish` puts an image."""
        return f"{self.registry.host}/{self.namespace}/{repository}"

    def publish(self, *args: str) -> PantsRun:
        return self.checkout.pants("publish", *args)

    def tagged_digest(self, repository: str, tag: str) -> str | None:
        """The digest the registry has under `repository:tag` (a path on the registry), asked
        with the right credentials; None when it has no such tag."""
        options = RegistryOptions(
            docker_config=DockerConfig.load(self.docker_config, helper_search_path=None),
            ca_bundles={self.registry.host: self.registry.ca},
        )
        with RegistryClient(options) as client:
            response = client.endpoint(self.registry.host).request(
                "HEAD",
                f"/v2/{repository}/manifests/{tag}",
                scopes=[pull_scope(repository)],
                ok=(200, 404),
                headers={"Accept": f"{MANIFEST_MEDIA_TYPE}, {INDEX_MEDIA_TYPE}"},
            )
        return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None

    def tag_list(self, repository: str) -> list[str] | None:
        """The tags the registry lists for `repository` (a path on the registry); None when it
        has no such repository."""
        options = RegistryOptions(
            docker_config=DockerConfig.load(self.docker_config, helper_search_path=None),
            ca_bundles={self.registry.host: self.registry.ca},
        )
        with RegistryClient(options) as client:
            response = client.endpoint(self.registry.host).request(
                "GET", f"/v2/{repository}/tags/list", scopes=[pull_scope(repository)], ok=(200, 404)
            )
        return response.json().get("tags") or [] if response.status_code == 200 else None


@pytest.fixture(scope="module")
def publish_checkout(repo_root: Path, test_registry: SharedRegistry) -> Iterator[PublishCheckout]:
    """A copy of the checkout set up to publish to the test registry, after `package ::`."""
    with scratch_directory("esb-integration-publish-") as scratch:
        checkout = Checkout.copy_of(repo_root, scratch / "checkout")
        namespace = f"publish-{uuid.uuid4().hex[:12]}"
        publisher = PublishCheckout.set_up(checkout, test_registry, namespace, scratch)
        built = checkout.pants("package", "::")
        assert built.returncode == 0, built.report()
        yield publisher


@pytest.fixture(scope="module")
def first_publish(publish_checkout: PublishCheckout) -> PantsRun:
    return publish_checkout.publish("::")


def blob_outcomes(run: PantsRun) -> dict[str, list[str]]:
    """What each push did with each blob, by digest, over the whole run."""
    outcomes: dict[str, list[str]] = defaultdict(list)
    for digest, _, outcome in BLOB_LINE.findall(run.stderr):
        outcomes[digest].append(outcome)
    return outcomes


def test_publish_pushes_every_image_and_docker_pulls_the_same_digest(
    publish_checkout: PublishCheckout,
    first_publish: PantsRun,
    image_targets: list[ImageTarget],
    docker_client: DockerClient,
) -> None:
    assert first_publish.returncode == 0, first_publish.report()
    registry = publish_checkout.registry
    auth = {"username": registry.username, "password": registry.password}
    for target in image_targets:
        outputs = publish_checkout.checkout.outputs(target)
        metadata = outputs.metadata
        name = publish_checkout.name(metadata["repository"])
        # What `package` wrote for the tools that read Pants' docker-info.json: where `publish`
        # pushes the image, and the ID the engine gives it once pulled.
        info = outputs.docker_info
        assert info == {
            "version": 1,
            "image_id": metadata["config_digest"],
            "registries": [
                {
                    "alias": ALIAS,
                    "address": f"{registry.host}/{publish_checkout.namespace}",
                    "repository": metadata["repository"],
                    "tags": [
                        {
                            "template": "latest",
                            "tag": "latest",
                            "uses_local_alias": False,
                            "name": f"{name}:latest",
                        }
                    ],
                }
            ],
        }, target.address
        assert (
            f"✓ {name}:latest published to @{ALIAS} ({registry.host}/{publish_checkout.namespace})."
        ) in first_publish.stderr, first_publish.report()
        # Docker reaches a registry on 127.0.0.0/8 without checking its certificate; the image
        # tool, which pushed, always checks it.
        pulled = docker_client.images.pull(name, tag="latest", auth_config=auth)
        try:
            assert f"{name}@{metadata['digest']}" in pulled.attrs["RepoDigests"], (
                target.address,
                pulled.attrs,
            )
            assert pulled.id == info["image_id"], (target.address, pulled.attrs)
        finally:
            docker_client.images.remove(f"{name}:latest")
        # What `publish` recorded for CI: what the registry now has under the tag.
        assert outputs.published()[name] == {
            "name": name,
            "registry": registry.host,
            "repository": f"{publish_checkout.namespace}/{metadata['repository']}",
            "digest": metadata["digest"],
            "tags": ["latest"],
            "platforms": [],
        }, target.address
        assert (
            publish_checkout.tagged_digest(
                f"{publish_checkout.namespace}/{metadata['repository']}", "latest"
            )
            == metadata["digest"]
        )


def test_the_base_layers_are_uploaded_once_and_mounted_by_the_others(
    publish_checkout: PublishCheckout, first_publish: PantsRun, image_targets: list[ImageTarget]
) -> None:
    assert first_publish.returncode == 0, first_publish.report()
    outcomes = blob_outcomes(first_publish)
    assert all(found.count("uploaded") <= 1 for found in outcomes.values()), outcomes
    base = next(target for target in image_targets if not target.is_service)
    for layer in publish_checkout.checkout.outputs(base).metadata["layers"]:
        # Whichever image of the family went first uploaded it; every other one mounted it.
        assert sorted(outcomes[layer["digest"]]) == ["mounted"] * (len(image_targets) - 1) + [
            "uploaded"
        ], (
            layer,
            first_publish.report(),
        )


def test_an_unchanged_republish_uploads_no_blob(
    publish_checkout: PublishCheckout, first_publish: PantsRun, image_targets: list[ImageTarget]
) -> None:
    assert first_publish.returncode == 0, first_publish.report()
    again = publish_checkout.publish("::")
    assert again.returncode == 0, again.report()
    pushes = list(PUSHED_LINE.finditer(again.stdout))
    assert len(pushes) == len(image_targets), again.stdout
    for push in pushes:
        assert (push["uploaded"], push["bytes"], push["mounted"]) == ("0", "0", "0"), push[0]
    assert "uploaded" not in {
        outcome for found in blob_outcomes(again).values() for outcome in found
    }


def test_wrong_credentials_are_refused_naming_the_registry_and_the_credentials(
    publish_checkout: PublishCheckout,
) -> None:
    registry = publish_checkout.registry
    wrong_password = f"not-the-password-{uuid.uuid4().hex[:8]}"
    wrong = publish_checkout.scratch / "wrong-docker" / "config.json"
    write_docker_config(
        wrong, SharedRegistry(registry.host, registry.ca, registry.username, wrong_password)
    )
    namespace = f"{publish_checkout.namespace}-denied"
    run = publish_checkout.publish(
        f"--esb-registries-docker-config={wrong}",
        f'--esb-registries-publish={{"{ALIAS}": {{"address": "{registry.host}/{namespace}", "default": True}}}}',
        "services/worker:worker",
    )
    assert run.returncode != 0, run.report()
    assert (
        f"{registry.host} refused access to {namespace}/esb/worker (pull+push): "
        f"401 Unauthorized; used credentials for {registry.host} from {wrong} (auths). Check the "
        f"credentials (e.g. `docker login {registry.host}`) and that they grant this access."
    ) in run.stderr, run.report()
    assert f"✕ {registry.host}/{namespace}/esb/worker:latest failed for @{ALIAS}" in run.stderr
    assert (
        wrong_password not in run.stderr + run.stdout
        and registry.password not in run.stderr + run.stdout
    )
    assert "Traceback" not in run.stderr
    assert publish_checkout.tagged_digest(f"{namespace}/esb/worker", "latest") is None


def test_a_registry_whose_ca_is_unknown_is_refused(publish_checkout: PublishCheckout) -> None:
    assert_unknown_ca_refused(publish_checkout, "services/worker:worker")


def assert_unknown_ca_refused(publisher: PublishCheckout, worker: str) -> None:
    """Publishing `worker` (the worker image's target) without the registry's CA in
    `[esb-registries]` fails naming the registry and the setting, and tags nothing."""
    registry = publisher.registry
    namespace = f"{publisher.namespace}-untrusted"
    run = publisher.publish(
        "--esb-registries-registries={}",
        f'--esb-registries-publish={{"{ALIAS}": {{"address": "{registry.host}/{namespace}", "default": True}}}}',
        worker,
    )
    assert run.returncode != 0, run.report()
    assert f"The TLS certificate of {registry.host} does not verify (" in run.stderr
    assert (
        "If it is signed by a private CA, trust that CA for this registry with "
        f'`ca_bundle = "<PEM file>"` in the `[esb-registries.registries."{registry.host}"]` section '
        "of pants.toml."
    ) in run.stderr, run.report()
    assert "Traceback" not in run.stderr
    assert publisher.tagged_digest(f"{namespace}/esb/worker", "latest") is None


def test_two_images_in_one_repository_are_refused_before_anything_is_pushed(
    publish_checkout: PublishCheckout, image_targets: list[ImageTarget]
) -> None:
    checkout, registry = publish_checkout.checkout, publish_checkout.registry
    signer_build = checkout.root / "services/signer/BUILD"
    original = signer_build.read_text()
    namespace = f"{publish_checkout.namespace}-collision"
    expected = (
        f"The image targets services/api:api and services/signer:signer both take "
        f"{registry.host}/{namespace}/esb/api:latest: whichever is published or loaded last would "
        "replace the other's tag. The name comes from the fields `repository` ('esb/api' and "
        "'esb/api'), `image_tags` and `registries`"
    )
    fix = (
        "Fix: give services/signer:signer a `repository` of its own (e.g. "
        '`repository="esb/signer"`)'
    )
    try:
        checkout.substitute(
            "services/signer/BUILD", r'repository="esb/signer"', 'repository="esb/api"'
        )
        published = publish_checkout.publish(
            f'--esb-registries-publish={{"{ALIAS}": {{"address": "{registry.host}/{namespace}", '
            '"default": True}}',
            "::",
        )
        assert published.returncode == 1, published.report()
        assert expected in published.stderr and fix in published.stderr, published.report()
        assert "Traceback" not in published.stderr
        repositories = {checkout.outputs(target).metadata["repository"] for target in image_targets}
        for repository in sorted(repositories | {"esb/signer"}):
            assert publish_checkout.tag_list(f"{namespace}/{repository}") is None, repository

        packaged = checkout.pants(
            "package",
            f'--esb-registries-publish={{"{ALIAS}": {{"address": "{registry.host}/{namespace}", '
            '"default": True}}',
            "::",
        )
        assert packaged.returncode == 1, packaged.report()
        assert expected in packaged.stderr and fix in packaged.stderr, packaged.report()
    finally:
        signer_build.write_text(original)


def commit_the_copy(root: Path) -> str:
    """Makes the copy (which has no `.git`) a repository with one commit; its hash."""
    git = [
        "git",
        "-C",
        str(root),
        "-c",
        "user.name=esb test",
        "-c",
        "user.email=esb-test@example.invalid",
    ]
    subprocess.run([*git, "init", "--quiet"], check=True)
    subprocess.run([*git, "add", "--all"], check=True)
    subprocess.run([*git, "commit", "--quiet", "--message", "publish test"], check=True)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_tag_placeholders_are_filled_in_at_publish_only(
    publish_checkout: PublishCheckout, image_targets: list[ImageTarget]
) -> None:
    checkout = publish_checkout.checkout
    api = next(target for target in image_targets if target.address == "services/api:api")
    before = checkout.outputs(api).metadata
    checkout.substitute(
        "services/api/BUILD",
        r'repository="esb/api",',
        'repository="esb/api",\n    image_tags=["latest", "sha-{digest}", "v{version}", "git-{git_commit}"],',
    )
    commit = commit_the_copy(checkout.root)

    packaged = checkout.pants("package", api.address)
    assert packaged.returncode == 0, packaged.report()
    after = checkout.outputs(api).metadata
    # `package` gives the image only its literal tags: same image, same digest.
    assert (after["digest"], after["tags"]) == (before["digest"], ["latest"])

    published = publish_checkout.publish(api.address)
    assert published.returncode == 0, published.report()
    version = tomllib.loads((checkout.root / "services/api/pyproject.toml").read_text())["project"][
        "version"
    ]
    digest = after["digest"]
    tags = ["latest", f"sha-{digest.removeprefix('sha256:')[:12]}", f"v{version}", f"git-{commit}"]
    name = publish_checkout.name("esb/api")
    for tag in tags:
        assert f"✓ {name}:{tag} published to @{ALIAS}" in published.stderr, published.report()
        assert (
            publish_checkout.tagged_digest(f"{publish_checkout.namespace}/esb/api", tag) == digest
        ), tag


def test_skip_push_pushes_nothing_and_says_so(publish_checkout: PublishCheckout) -> None:
    checkout, registry = publish_checkout.checkout, publish_checkout.registry
    worker_build = checkout.root / "services/worker/BUILD"
    original = worker_build.read_text()
    namespace = f"{publish_checkout.namespace}-skipped"
    try:
        checkout.substitute(
            "services/worker/BUILD",
            r'repository="esb/worker",',
            'repository="esb/worker",\n    skip_push=True,',
        )
        run = publish_checkout.publish(
            f'--esb-registries-publish={{"{ALIAS}": {{"address": "{registry.host}/{namespace}", '
            '"default": True}}',
            "services/worker:worker",
        )
        assert run.returncode == 0, run.report()
        assert (
            "esb/worker skipped (by `skip_push` on services/worker:worker)" in run.stderr
        ), run.report()
        assert publish_checkout.tag_list(f"{namespace}/esb/worker") is None
        worker = ImageTarget.service("services/worker:worker")
        assert f"{registry.host}/{namespace}/esb/worker" not in checkout.outputs(worker).published()
    finally:
        worker_build.write_text(original)


def test_a_registry_with_skip_push_gets_nothing(publish_checkout: PublishCheckout) -> None:
    registry = publish_checkout.registry
    namespace = f"{publish_checkout.namespace}-registry-skipped"
    run = publish_checkout.publish(
        f'--esb-registries-publish={{"{ALIAS}": {{"address": "{registry.host}/{namespace}", '
        '"default": True, "skip_push": True}}',
        "services/worker:worker",
    )
    assert run.returncode == 0, run.report()
    name = f"{registry.host}/{namespace}/esb/worker"
    assert f"{name} skipped (by `skip_push` on registry @{ALIAS} (" in run.stderr, run.report()
    assert publish_checkout.tag_list(f"{namespace}/esb/worker") is None
    worker = ImageTarget.service("services/worker:worker")
    assert name not in publish_checkout.checkout.outputs(worker).published()


def test_a_registry_entry_renames_and_retags_the_images_it_gets(
    publish_checkout: PublishCheckout,
) -> None:
    checkout, registry = publish_checkout.checkout, publish_checkout.registry
    namespace = f"{publish_checkout.namespace}-renamed"
    entry = (
        f'--esb-registries-publish={{"{ALIAS}": {{"address": "{registry.host}/{namespace}", '
        '"default": True, "repository": "team/{target_repository}", '
        '"extra_image_tags": ["stable", "h-{pants.hash}"]}}'
    )
    worker = ImageTarget.service("services/worker:worker")
    packaged = checkout.pants("package", entry, worker.address)
    assert packaged.returncode == 0, packaged.report()
    outputs = checkout.outputs(worker)
    digest = outputs.metadata["digest"]
    tags = ["latest", "stable", f"h-{digest.removeprefix('sha256:')}"]
    name = f"{registry.host}/{namespace}/team/esb/worker"
    [info] = outputs.docker_info["registries"]
    assert (info["alias"], info["repository"]) == (ALIAS, "team/esb/worker")
    assert sorted(tag["name"] for tag in info["tags"]) == sorted(f"{name}:{tag}" for tag in tags)

    run = publish_checkout.publish(entry, worker.address)
    assert run.returncode == 0, run.report()
    for tag in tags:
        assert f"✓ {name}:{tag} published to @{ALIAS}" in run.stderr, run.report()
        assert publish_checkout.tagged_digest(f"{namespace}/team/esb/worker", tag) == digest, tag
    # Under its own name, nothing: the entry renames the image there.
    assert publish_checkout.tag_list(f"{namespace}/esb/worker") is None
    assert outputs.published()[name]["digest"] == digest

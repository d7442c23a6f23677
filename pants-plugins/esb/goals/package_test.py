from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
from pants.core.goals.package import BuiltPackage, Package
from pants.core.goals.publish import Publish
from pants.core.util_rules import distdir, system_binaries
from pants.engine.addresses import Address, Addresses
from pants.engine.collection import Collection
from pants.engine.fs import (
    EMPTY_DIGEST,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    FileContent,
    FileDigest,
    FileEntry,
)
from pants.engine.goal import CurrentExecutingGoals, Goal
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import Get, MultiGet, QueryRule, rule
from pants.engine.target import Targets
from pants.testutil.rule_runner import RuleRunner
from pants.vcs import git

from esb.goals import package
from esb.goals.package import (
    EsbBaseImageFieldSet,
    EsbServiceImageFieldSet,
    blob_entries,
    docker_info,
    image_id,
    in_writing_order,
    layout_link,
    output_path_for,
    packaged_files,
)
from esb.subsystems.registries import PublishDestination, PublishRegistry
from esb.target_types import EsbServiceImageTarget
from esb.util_rules import collisions
from esb.util_rules.base import (
    BaseArchitectures,
    BaseArchitecturesRequest,
    BaseImageRequest,
    BuiltBaseImage,
)
from esb.util_rules.image import BuiltImage, ImageIndexRequest
from esb.util_rules.image_refs import RegistryRefs
from esb.util_rules.service import ServiceArchitecturesRequest, ServiceImageRequest

BLOB = "ab" * 32
BLOB_DIGEST = FileDigest(BLOB, 5)
INDEX_DIGEST = FileDigest("cd" * 32, 2)


@pytest.mark.parametrize(
    "built, expected",
    [
        ("image.image.json", "services.api/api.image.json"),
        ("image.inventory.json", "services.api/api.inventory.json"),
        ("image.oci/index.json", "services.api/api.oci/index.json"),
        ("image.oci/blobs/sha256/ab", "services.api/api.oci/blobs/sha256/ab"),
    ],
)
def test_output_paths(built: str, expected: str) -> None:
    assert output_path_for(built, "services.api/api") == expected


def test_the_layout_is_written_without_blobs_and_with_a_link_to_the_shared_ones() -> None:
    image = [
        FileContent("image.oci/index.json", b"{}"),
        FileContent(f"image.oci/blobs/sha256/{BLOB}", b"a blob"),
        FileContent("image.image.json", b"{}"),
        FileContent("image.oci/oci-layout", b"{}"),
    ]
    assert in_writing_order(packaged_files(image, "services.api/api")) == [
        FileContent("services.api/api.oci/oci-layout", b"{}"),
        FileContent("services.api/api.oci/index.json", b"{}"),
        FileContent("services.api/api.image.json", b"{}"),
    ]
    assert layout_link("services.api/api") == ("services.api/api.oci/blobs", "../../blobs")
    # One level less deep, one `..` less.
    assert layout_link("api") == ("api.oci/blobs", "../blobs")
    entries = [FileEntry(f"image.oci/blobs/sha256/{BLOB}", BLOB_DIGEST)]
    assert blob_entries(entries) == {BLOB: entries[0]}


LAYER = b"a layer of the image"
LAYER_HEX = hashlib.sha256(LAYER).hexdigest()
DIGEST = f"sha256:{'ef' * 32}"
CONFIG_DIGEST = f"sha256:{'12' * 32}"
METADATA = json.dumps(
    {
        "digest": DIGEST,
        "config_digest": CONFIG_DIGEST,
        "repository": "esb/api",
        "tags": ["latest"],
    }
)


def built(blob_name: str, blob: bytes) -> Callable[..., Any]:
    @rule
    async def fake_service_image(request: ServiceImageRequest) -> BuiltImage:
        """The image as built, without building it: a layout with one blob."""
        digest = await Get(
            Digest,
            CreateDigest(
                [
                    FileContent("image.oci/index.json", b"{}"),
                    FileContent(f"image.oci/blobs/sha256/{blob_name}", blob),
                    FileContent("image.image.json", METADATA.encode()),
                ]
            ),
        )
        return BuiltImage(digest, METADATA, ())

    return fake_service_image


@rule
async def no_base_image(request: BaseImageRequest) -> BuiltBaseImage:
    raise AssertionError("the tests package a service image only")


@rule
async def one_platform(request: ServiceArchitecturesRequest) -> BaseArchitectures:
    return BaseArchitectures(("amd64",))


@rule
async def no_base_platforms(request: BaseArchitecturesRequest) -> BaseArchitectures:
    raise AssertionError("the tests package a service image only")


@rule
async def no_index(request: ImageIndexRequest) -> BuiltImage:
    raise AssertionError("the tests package an image of one platform")


def package_runner(
    fake_image: Callable[..., Any], goal: type[Goal] = Package, extra_rules: Iterable[Any] = ()
) -> RuleRunner:
    """A runner that packages `services/api:api` with `fake_image`, as if run by `goal`."""
    runner = RuleRunner(
        rules=[
            *extra_rules,
            *package.rules(),
            *collisions.rules(),
            *distdir.rules(),
            *git.rules(),
            *system_binaries.rules(),
            fake_image,
            no_base_image,
            one_platform,
            no_base_platforms,
            no_index,
            QueryRule(BuiltPackage, [EsbServiceImageFieldSet]),
            QueryRule(BuiltPackage, [EsbBaseImageFieldSet]),
            QueryRule(DigestEntries, [Digest]),
            QueryRule(DigestContents, [Digest]),
        ],
        target_types=[EsbServiceImageTarget],
        extra_session_values={CurrentExecutingGoals: CurrentExecutingGoals({goal.name: goal})},
    )
    runner.write_files(
        {
            "services/api/BUILD": (
                'esb_service_image(name="api", base="//base:b", command=["python"])\n'
            )
        }
    )
    return runner


def package_api(runner: RuleRunner) -> BuiltPackage:
    target = runner.get_target(Address("services/api", target_name="api"))
    return runner.request(BuiltPackage, [EsbServiceImageFieldSet.create(target)])


def dist_files(runner: RuleRunner) -> dict[str, tuple[int, str]]:
    """Every entry under `dist/`: its inode and its content or link target."""
    dist = Path(runner.build_root, "dist")
    return {
        str(path.relative_to(dist)): (
            path.lstat().st_ino,
            os.readlink(path) if path.is_symlink() else path.read_bytes().decode(),
        )
        for path in sorted(dist.rglob("*"))
        if path.is_symlink() or path.is_file()
    }


def test_package_writes_each_blob_once_and_the_image_files_only_when_they_change() -> None:
    runner = package_runner(built(LAYER_HEX, LAYER))

    packaged = package_api(runner)

    # Pants writes nothing: the rule did.
    assert packaged.digest == EMPTY_DIGEST
    assert [artifact.relpath for artifact in packaged.artifacts] == [None, None]
    assert [artifact.extra_log_lines[:2] for artifact in packaged.artifacts] == [
        ("Wrote dist/services.api/api.oci",),
        ("Wrote dist/services.api/api.image.json", f"Image esb/api (latest): {DIGEST}"),
    ]
    written = dist_files(runner)
    assert {path: content for path, (_, content) in written.items()} == {
        f"blobs/sha256/{LAYER_HEX}": LAYER.decode(),
        "services.api/api.docker-info.json": written["services.api/api.docker-info.json"][1],
        "services.api/api.image.json": METADATA,
        "services.api/api.oci/blobs": "../../blobs",
        "services.api/api.oci/index.json": "{}",
    }
    # The next run, in this session or the next, rewrites nothing.
    package_api(runner)
    runner.set_options([])
    package_api(runner)
    assert dist_files(runner) == written
    # Deleted or changed by hand: the next session puts it back.
    dist = Path(runner.build_root, "dist")
    (dist / "blobs" / "sha256" / LAYER_HEX).unlink()
    (dist / "services.api" / "api.oci" / "index.json").write_text("edited")
    (dist / "services.api" / "api.image.json").unlink()
    runner.set_options([])
    package_api(runner)
    assert {path: content for path, (_, content) in dist_files(runner).items()} == {
        path: content for path, (_, content) in written.items()
    }


@dataclass(frozen=True)
class BothServices:
    """The `package` of two services in one run, as `pants package ::` asks for them: at once."""


class BothPackages(Collection[BuiltPackage]):
    pass


@rule
async def package_both(request: BothServices) -> BothPackages:
    addresses = [Address("services/api", target_name="api"), Address("services/worker")]
    targets = await Get(Targets, Addresses(addresses))
    return BothPackages(
        await MultiGet(
            Get(BuiltPackage, EsbServiceImageFieldSet, EsbServiceImageFieldSet.create(target))
            for target in targets
        )
    )


def test_a_blob_that_images_share_is_written_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = package_runner(
        built(LAYER_HEX, LAYER),
        extra_rules=[package_both, QueryRule(BothPackages, [BothServices])],
    )
    runner.write_files(
        {
            "services/worker/BUILD": (
                'esb_service_image(base="//base:b", repository="esb/worker", command=["python"])\n'
            )
        }
    )
    written: list[str] = []
    real_write_blob = package.write_blob

    def counted_write_blob(directory: Path, hex_digest: str, content: bytes) -> None:
        written.append(hex_digest)
        real_write_blob(directory, hex_digest, content)

    monkeypatch.setattr(package, "write_blob", counted_write_blob)
    runner.request(BothPackages, [BothServices()])

    assert written == [LAYER_HEX]
    dist = Path(runner.build_root, "dist")
    for layout in ("services.api/api.oci", "services.worker/worker.oci"):
        assert (dist / layout / "blobs" / "sha256" / LAYER_HEX).read_bytes() == LAYER


def test_other_goals_get_the_image_files_and_write_nothing_to_dist() -> None:
    runner = package_runner(built(LAYER_HEX, LAYER), goal=Publish)

    packaged = package_api(runner)

    assert not Path(runner.build_root, "dist").exists()
    assert [artifact.relpath for artifact in packaged.artifacts] == [
        "services.api/api.oci",
        "services.api/api.image.json",
    ]
    entries = runner.request(DigestEntries, [packaged.digest])
    assert sorted(entry.path for entry in entries) == [
        "services.api/api.docker-info.json",
        "services.api/api.image.json",
        "services.api/api.oci/blobs",
        "services.api/api.oci/index.json",
    ]


def test_an_older_layout_with_a_blobs_directory_and_stray_files_is_replaced() -> None:
    runner = package_runner(built(LAYER_HEX, LAYER))
    layout = Path(runner.build_root, "dist", "services.api", "api.oci")
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "blobs" / "sha256" / LAYER_HEX).write_bytes(LAYER)
    (layout / "manifest.json").write_text("from an image of two platforms")
    beside = layout.parent / "notes.txt"
    beside.write_text("not an output of the image")

    package_api(runner)

    assert sorted(os.listdir(layout)) == ["blobs", "index.json"]
    assert os.readlink(layout / "blobs") == "../../blobs"
    assert (layout / "blobs" / "sha256" / LAYER_HEX).read_bytes() == LAYER
    assert beside.read_text() == "not an output of the image"


def test_an_output_that_cannot_be_written_names_the_file_the_image_and_the_fix() -> None:
    runner = package_runner(built(LAYER_HEX, LAYER))
    # A file where the image's directory must be.
    Path(runner.build_root, "dist").mkdir()
    Path(runner.build_root, "dist", "services.api").write_text("in the way")

    with pytest.raises(ExecutionError) as error:
        package_api(runner)

    message = str(error.value)
    assert "PackageWriteError: Could not write " in message
    in_the_way = Path(runner.build_root, "dist", "services.api")
    assert f"{in_the_way}/api." in message
    assert f", an output of services/api:api: {in_the_way} is not a directory." in message
    assert "Fix: make room or permissions for dist/, or move away what is in the way" in message
    assert "Traceback" not in message.split("PackageWriteError:")[1]


def test_a_later_run_puts_back_a_deleted_blob_without_laying_out_the_image_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = package_runner(built(LAYER_HEX, LAYER))
    shared = Path(runner.build_root, "dist", "blobs", "sha256")
    laid_out: list[str] = []
    real_docker_info = package.docker_info

    def counted_docker_info(image: str, refs: Any) -> bytes:
        laid_out.append(image)
        return real_docker_info(image, refs)

    monkeypatch.setattr(package, "docker_info", counted_docker_info)
    first = package_api(runner)
    (shared / LAYER_HEX).unlink()
    # As pantsd serves the next `package`: a new session of the same engine, same options.
    runner.set_options([])
    second = package_api(runner)

    assert (shared / LAYER_HEX).read_bytes() == LAYER
    assert second == first
    assert laid_out == [CONFIG_DIGEST]


def test_a_blob_whose_bytes_do_not_match_its_digest_fails_and_is_not_written() -> None:
    runner = package_runner(built(LAYER_HEX, b"corrupt bytes from the store"))

    with pytest.raises(ExecutionError) as error:
        package_api(runner)

    assert (
        f"Pants' local store returned corrupt bytes for a blob of services/api:api: blob "
        f"sha256:{LAYER_HEX} (28 bytes) hashes to sha256:"
    ) in str(error.value)
    assert "mv ~/.cache/pants/lmdb_store" in str(error.value)
    assert not Path(runner.build_root, "dist", "blobs", "sha256", LAYER_HEX).exists()


def test_a_failed_image_says_its_outputs_in_dist_are_from_an_earlier_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = package_runner(built(LAYER_HEX, b"corrupt"))
    earlier = Path(runner.build_root, "dist", "services.api", "api.image.json")
    earlier.parent.mkdir(parents=True)
    earlier.write_text(METADATA)

    with pytest.raises(ExecutionError):
        package_api(runner)

    assert (
        "services/api:api failed: nothing of this run was written to dist/ but complete blobs. "
        f"{earlier} and the other outputs there are from an earlier run."
    ) in caplog.text
    assert earlier.read_text() == METADATA


def packaged_docker_info(fields: str, files: dict[str, str], options: list[str]) -> Any:
    """The `docker-info.json` that `package` writes for `services/api:api` with `fields` (BUILD
    syntax) besides its required ones, `files` and `options`."""
    runner = package_runner(built(LAYER_HEX, LAYER))
    build = f'esb_service_image(name="api", base="//base:b", command=["python"], {fields})\n'
    runner.write_files({"services/api/BUILD": build, **files})
    runner.set_options(options)
    package_api(runner)
    return json.loads(Path(runner.build_root, "dist/services.api/api.docker-info.json").read_text())


def test_docker_info_has_the_schema_of_pants_docker_backend() -> None:
    info = packaged_docker_info(
        'repository="esb/api", registries=["@internal", "mirror.example/team"], '
        'image_tags=["latest", "sha-{digest}", "v{version}", "git-{git_commit}"]',
        # A version `publish` would refuse: its tag is left out, not an error here.
        {"services/api/pyproject.toml": "[project]\nname = 'esb-api'\ndynamic = ['version']\n"},
        ['--esb-registries-publish={"internal": {"address": "127.0.0.1:5000"}}'],
    )

    def tags(name: str) -> list[dict[str, Any]]:
        return [
            {
                "template": "latest",
                "tag": "latest",
                "uses_local_alias": False,
                "name": f"{name}:latest",
            },
            {
                "template": "sha-{digest}",
                "tag": "sha-efefefefefef",
                "uses_local_alias": False,
                "name": f"{name}:sha-efefefefefef",
            },
        ]

    # Outside a git checkout, `{git_commit}` has no value either.
    assert info == {
        "version": 1,
        "image_id": CONFIG_DIGEST,
        "registries": [
            {
                "alias": "internal",
                "address": "127.0.0.1:5000",
                "repository": "esb/api",
                "tags": tags("127.0.0.1:5000/esb/api"),
            },
            {
                "alias": None,
                "address": "mirror.example/team",
                "repository": "esb/api",
                "tags": tags("mirror.example/team/esb/api"),
            },
        ],
    }


def test_docker_info_without_registries_names_the_image_locally() -> None:
    info = json.loads(docker_info(CONFIG_DIGEST, [RegistryRefs(None, "esb/api", {"1.0": "1.0"})]))
    assert info["registries"] == [
        {
            "alias": None,
            "address": None,
            "repository": "esb/api",
            "tags": [
                {"template": "1.0", "tag": "1.0", "uses_local_alias": False, "name": "esb/api:1.0"}
            ],
        }
    ]
    # The same inputs, in another order, give the same bytes.
    first = RegistryRefs(PublishDestination("b.example"), "r", {"x": "x", "y": "y"})
    second = RegistryRefs(
        PublishDestination("a.example", PublishRegistry("a", "a.example")),
        "r",
        {"y": "y", "x": "x"},
    )
    assert docker_info(CONFIG_DIGEST, [first, second]) == docker_info(
        CONFIG_DIGEST, [second, first]
    )


def test_docker_info_follows_the_registry_entries_and_the_default_repository() -> None:
    entry = {
        "address": "127.0.0.1:5000",
        "default": True,
        "repository": "team/{target_repository}",
        "extra_image_tags": ["stable", "h-{pants.hash}"],
        "use_local_alias": True,
    }
    info = packaged_docker_info(
        'image_tags=["1.0"]',
        {},
        [
            f"--esb-registries-publish={ {'internal': entry}!r}",
            "--esb-registries-default-repository=esb/{directory}",
        ],
    )
    full_hash = DIGEST.partition(":")[2]
    [registry] = info["registries"]
    assert (registry["alias"], registry["repository"]) == ("internal", "team/esb/api")
    assert [
        (tag["name"], tag["template"], tag["uses_local_alias"]) for tag in registry["tags"]
    ] == [
        ("127.0.0.1:5000/team/esb/api:1.0", "1.0", False),
        (f"127.0.0.1:5000/team/esb/api:h-{full_hash}", "h-{pants.hash}", False),
        ("127.0.0.1:5000/team/esb/api:stable", "stable", False),
        ("internal/team/esb/api:1.0", "1.0", True),
        (f"internal/team/esb/api:h-{full_hash}", "h-{pants.hash}", True),
        ("internal/team/esb/api:stable", "stable", True),
    ]


def test_the_image_id_is_the_config_digest_or_for_an_index_its_digest() -> None:
    assert image_id(json.loads(METADATA)) == CONFIG_DIGEST
    assert image_id({**json.loads(METADATA), "platforms": [{"platform": "linux/amd64"}]}) == DIGEST


def test_a_registries_problem_leaves_package_to_name_the_image_locally() -> None:
    info = packaged_docker_info('repository="esb/api", registries=["@unknown"]', {}, [])
    # `publish` names the unknown alias; `package` needs no registry.
    [local] = info["registries"]
    assert (local["address"], local["tags"][0]["name"]) == (None, "esb/api:latest")

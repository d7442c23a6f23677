from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from esb_contract.image_spec import ConfigChanges, Platform
from esb_contract.media_types import CONFIG_MEDIA_TYPE
from imagetool.oci import (
    GZIP_LAYER_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    REF_NAME_ANNOTATION,
    Descriptor,
    OciError,
    OciLayout,
    apply_config_changes,
    build_image_config,
    build_manifest,
    canonical_json,
    fully_qualified,
    image_reference,
    oci_layer_descriptor,
    rfc3339,
    sha256_digest,
    write_docker_archive,
    write_docker_manifest,
)

AMD64 = Platform("amd64")


def test_canonical_json() -> None:
    assert (
        canonical_json({"b": [1, {"d": None, "c": "é"}], "a": True})
        == '{"a":true,"b":[1,{"c":"é","d":null}]}'.encode()
    )
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1_700_000_000) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize(
    "repository, tag",
    [
        pytest.param("esb/hello", "latest", id="plain"),
        pytest.param("registry.example:5000/esb/hello-world", "v1.2.3", id="registry-host"),
        pytest.param("localhost/a__b/c.d", "_x", id="separators"),
    ],
)
def test_valid_references(repository: str, tag: str) -> None:
    assert image_reference(repository, tag) == f"{repository}:{tag}"


@pytest.mark.parametrize(
    "repository, tag, message",
    [
        pytest.param("esb/Hello", "latest", "not a valid image repository", id="uppercase"),
        pytest.param("esb//hello", "latest", "not a valid image repository", id="empty-component"),
        pytest.param("esb/hello", "-dash", "not a valid image tag", id="tag-start"),
        pytest.param("esb/hello", "x" * 129, "not a valid image tag", id="tag-length"),
    ],
)
def test_invalid_references(repository: str, tag: str, message: str) -> None:
    with pytest.raises(OciError, match=message):
        image_reference(repository, tag)


@pytest.mark.parametrize(
    "reference, expected",
    [
        pytest.param("hello:1", "docker.io/library/hello:1", id="official"),
        pytest.param("esb/hello:1", "docker.io/esb/hello:1", id="user"),
        pytest.param("localhost/hello:1", "localhost/hello:1", id="localhost"),
        pytest.param(
            "registry.example:5000/esb/hello:1", "registry.example:5000/esb/hello:1", id="host"
        ),
    ],
)
def test_fully_qualified(reference: str, expected: str) -> None:
    assert fully_qualified(reference) == expected


BASE_RUNTIME_CONFIG = {
    "Env": ["PATH=/usr/bin", "LANG=C.UTF-8"],
    "Cmd": ["python3"],
    "ExposedPorts": {"80/tcp": {}},
    "Labels": {"base": "yes"},
    "StopSignal": "SIGTERM",
}


def test_config_changes_follow_dockerfile_semantics() -> None:
    changes = ConfigChanges(
        env={"PATH": "/.venv/bin:/usr/bin", "APP": "1"},
        entrypoint=["/usr/local/bin/entrypoint.sh"],
        working_dir="/app",
        user="0:0",
        stop_signal="SIGINT",
        exposed_ports=["8443"],
        volumes=["/data"],
        labels={"service": "hello"},
    )
    assert apply_config_changes(changes, BASE_RUNTIME_CONFIG) == {
        "Env": ["PATH=/.venv/bin:/usr/bin", "LANG=C.UTF-8", "APP=1"],
        "Entrypoint": ["/usr/local/bin/entrypoint.sh"],
        "WorkingDir": "/app",
        "User": "0:0",
        "ExposedPorts": {"80/tcp": {}, "8443/tcp": {}},
        "Volumes": {"/data": {}},
        "Labels": {"base": "yes", "service": "hello"},
        "StopSignal": "SIGINT",
    }
    assert BASE_RUNTIME_CONFIG["Cmd"] == ["python3"]


def test_cmd_is_kept_when_set_with_entrypoint_and_nothing_changes_by_default() -> None:
    changes = ConfigChanges(entrypoint=["/e"], cmd=["serve"])
    assert apply_config_changes(changes, {"Cmd": ["python3"]}) == {
        "Entrypoint": ["/e"],
        "Cmd": ["serve"],
    }
    assert apply_config_changes(ConfigChanges(), BASE_RUNTIME_CONFIG) == BASE_RUNTIME_CONFIG


def test_invalid_port_and_volume() -> None:
    with pytest.raises(OciError, match="not a port"):
        apply_config_changes(ConfigChanges(exposed_ports=["http"]), {})
    with pytest.raises(OciError, match="not a volume"):
        apply_config_changes(ConfigChanges(volumes=["data"]), {})


def test_image_config_extends_the_base() -> None:
    base = {
        "architecture": "amd64",
        "os": "linux",
        "config": BASE_RUNTIME_CONFIG,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
        "history": [{"created_by": "debian"}],
        "container": "d3adb33f",
    }
    config = build_image_config(
        platform=AMD64,
        diff_ids=["sha256:" + "2" * 64],
        created_by=["esb: service source"],
        changes=ConfigChanges(cmd=["serve"]),
        created=0,
        base_config=base,
    )
    assert config == {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {**BASE_RUNTIME_CONFIG, "Cmd": ["serve"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]},
        "history": [
            {"created_by": "debian"},
            {"created": "1970-01-01T00:00:00Z", "created_by": "esb: service source"},
        ],
    }


def test_layer_descriptors_take_oci_media_types() -> None:
    docker_layer = Descriptor(
        "application/vnd.docker.image.rootfs.diff.tar.gzip", "sha256:" + "a" * 64, 3
    )
    assert oci_layer_descriptor(docker_layer, where="base").media_type == GZIP_LAYER_MEDIA_TYPE
    with pytest.raises(OciError, match="foreign"):
        oci_layer_descriptor(
            Descriptor(
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "sha256:" + "a" * 64, 3
            ),
            where="base",
        )


def write_image(
    root: Path, *, tag: str = "latest", layer_data: bytes = b"layer bytes"
) -> tuple[OciLayout, Descriptor]:
    """A small image in a new layout; the layer is not a real tar, which the layout does not check."""
    layout = OciLayout.create(root)
    source = root.parent / f"{root.name}-layer"
    source.write_bytes(layer_data)
    layer = Descriptor.of(GZIP_LAYER_MEDIA_TYPE, layer_data)
    layout.import_blob(source, layer)
    config = layout.add_json_blob(
        CONFIG_MEDIA_TYPE,
        build_image_config(
            platform=AMD64,
            diff_ids=["sha256:" + "0" * 64],
            created_by=["test"],
            changes=ConfigChanges(),
            created=0,
        ),
    )
    manifest = layout.add_json_blob(MANIFEST_MEDIA_TYPE, build_manifest(config, [layer], {}))
    layout.write_index(
        [
            Descriptor(
                MANIFEST_MEDIA_TYPE, manifest.digest, manifest.size, {REF_NAME_ANNOTATION: tag}
            )
        ]
    )
    return layout, manifest


def test_layout_structure(tmp_path: Path) -> None:
    """index → manifest → config → layers, every blob matching its digest and size."""
    write_image(tmp_path / "oci")
    root = tmp_path / "oci"
    assert json.loads((root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    for blob in (root / "blobs" / "sha256").iterdir():
        assert sha256_digest(blob.read_bytes()) == f"sha256:{blob.name}"
    index = json.loads((root / "index.json").read_bytes())
    assert (index["schemaVersion"], index["mediaType"]) == (2, INDEX_MEDIA_TYPE)
    [entry] = index["manifests"]
    assert entry["mediaType"] == MANIFEST_MEDIA_TYPE

    def read_blob(descriptor: dict) -> bytes:
        data = (root / "blobs" / "sha256" / descriptor["digest"].split(":")[1]).read_bytes()
        assert len(data) == descriptor["size"]
        return data

    manifest_bytes = read_blob(entry)
    manifest = json.loads(manifest_bytes)
    assert canonical_json(manifest) == manifest_bytes
    assert (manifest["schemaVersion"], manifest["config"]["mediaType"]) == (2, CONFIG_MEDIA_TYPE)
    config_bytes = read_blob(manifest["config"])
    assert canonical_json(json.loads(config_bytes)) == config_bytes
    assert len(json.loads(config_bytes)["rootfs"]["diff_ids"]) == len(manifest["layers"])
    for layer in manifest["layers"]:
        read_blob(layer)


def test_load_image(tmp_path: Path) -> None:
    layout, manifest = write_image(tmp_path / "oci", tag="1.0")
    for loaded in (
        OciLayout(tmp_path / "oci").load_image(),
        OciLayout(tmp_path / "oci").load_image(ref="1.0"),
    ):
        assert loaded.manifest.digest == manifest.digest
        assert loaded.platform == AMD64
        assert [layer.digest for layer in loaded.layers] == [sha256_digest(b"layer bytes")]
    with pytest.raises(OciError, match="no image named '2.0'; its names: 1.0"):
        layout.load_image(ref="2.0")


def test_load_image_through_a_multi_platform_index(tmp_path: Path) -> None:
    layout, manifest = write_image(tmp_path / "oci")
    index = layout.add_json_blob(
        INDEX_MEDIA_TYPE,
        {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {
                    **manifest.to_json(),
                    "digest": "sha256:" + "f" * 64,
                    "platform": {"architecture": "arm64", "os": "linux"},
                },
                {**manifest.to_json(), "platform": {"architecture": "amd64", "os": "linux"}},
            ],
        },
    )
    layout.write_index([index])
    assert layout.load_image(platform=AMD64).manifest.digest == manifest.digest
    with pytest.raises(OciError, match="multi-platform index"):
        layout.load_image()
    with pytest.raises(OciError, match="no image for linux/s390x"):
        layout.load_image(platform=Platform("s390x"))


def test_corrupt_blobs_are_detected(tmp_path: Path) -> None:
    layout, manifest = write_image(tmp_path / "oci")
    layout.blob_path(manifest.digest).write_bytes(b"{}")
    with pytest.raises(OciError, match="does not match its digest"):
        layout.load_image()


def test_import_blob_checks_the_digest(tmp_path: Path) -> None:
    layout = OciLayout.create(tmp_path / "oci")
    source = tmp_path / "blob"
    source.write_bytes(b"tampered")
    with pytest.raises(OciError, match="should be the blob"):
        layout.import_blob(source, Descriptor.of(GZIP_LAYER_MEDIA_TYPE, b"original"))
    assert list((tmp_path / "oci" / "blobs" / "sha256").iterdir()) == []


def test_blob_paths_are_digests_only(tmp_path: Path) -> None:
    with pytest.raises(OciError, match="is not a `sha256:<64 hex>` digest"):
        OciLayout(tmp_path).blob_path("sha256:../../etc/passwd")


def test_docker_archive_holds_the_image_and_nothing_else(tmp_path: Path) -> None:
    layout, manifest = write_image(tmp_path / "oci")
    own_blobs = sorted(path.name for path in (tmp_path / "oci" / "blobs" / "sha256").iterdir())
    write_docker_manifest(layout, manifest, ["esb/hello:latest"])
    # As under dist/: the layout's blobs/ is a link to a directory shared with other images.
    write_image(tmp_path / "other", layer_data=b"another image's layer")
    shared = tmp_path / "other" / "blobs"
    for blob in (tmp_path / "oci" / "blobs" / "sha256").iterdir():
        blob.rename(shared / "sha256" / blob.name)
    (tmp_path / "oci" / "blobs" / "sha256").rmdir()
    (tmp_path / "oci" / "blobs").rmdir()
    (tmp_path / "oci" / "blobs").symlink_to("../other/blobs")
    first, again = io.BytesIO(), io.BytesIO()
    write_docker_archive(layout, first)
    write_docker_archive(layout, again)
    assert first.getvalue() == again.getvalue()
    manifest_json = json.loads(layout.read_blob(manifest))
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == [
            "blobs",
            "blobs/sha256",
            *(f"blobs/sha256/{name}" for name in own_blobs),
            "index.json",
            "manifest.json",
            "oci-layout",
        ]
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "root")}
        layer = sha256_digest(b"layer bytes").split(":")[1]
        layer_file = archive.extractfile(f"blobs/sha256/{layer}")
        manifest_file = archive.extractfile("manifest.json")
        index_file = archive.extractfile("index.json")
        assert layer_file is not None and manifest_file is not None and index_file is not None
        assert layer_file.read() == b"layer bytes"
        assert json.load(manifest_file) == [
            {
                "Config": f"blobs/sha256/{manifest_json['config']['digest'].split(':')[1]}",
                "RepoTags": ["esb/hello:latest"],
                "Layers": [f"blobs/sha256/{layer}"],
            }
        ]
        assert index_file.read() == (tmp_path / "oci" / "index.json").read_bytes()


def test_a_docker_manifest_naming_a_file_outside_the_blobs_is_refused(tmp_path: Path) -> None:
    layout, manifest = write_image(tmp_path / "oci")
    write_docker_manifest(layout, manifest, ["esb/hello:latest"])
    docker_manifest = json.loads((tmp_path / "oci" / "manifest.json").read_bytes())
    docker_manifest[0]["Layers"].append("../../etc/passwd")
    (tmp_path / "oci" / "manifest.json").write_text(json.dumps(docker_manifest))
    with pytest.raises(
        OciError, match=r"manifest.json names files outside blobs/sha256/: \['../../etc/passwd'\]"
    ):
        write_docker_archive(layout, io.BytesIO())


def test_a_layout_without_a_docker_manifest_is_not_archived(tmp_path: Path) -> None:
    layout, _ = write_image(tmp_path / "oci")
    with pytest.raises(OciError, match="has no manifest.json, so `docker load` cannot read it"):
        write_docker_archive(layout, io.BytesIO())

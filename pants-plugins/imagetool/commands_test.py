from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path

import pytest

from imagetool.cli import main
from imagetool.oci import BASE_DIGEST_ANNOTATION, REF_NAME_ANNOTATION, OciLayout, sha256_digest


def run(*argv: str) -> int:
    return main(argv)


def make_source(root: Path) -> None:
    (root / "hello").mkdir(parents=True)
    (root / "hello" / "__main__.py").write_text("print('hello')\n")
    (root / "entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n')
    (root / "entrypoint.sh").chmod(0o755)


def build_layer(source: str, prefix: str, name: str) -> dict:
    args = ["--root", source, "--prefix", prefix, "--out-blob", f"{name}.tar.gz"]
    assert run("layer-from-dir", *args, "--out-descriptor", f"{name}.json") == 0
    return json.loads(Path(f"{name}.json").read_text())


def write_spec(path: str, **spec) -> str:
    Path(path).write_text(json.dumps(spec))
    return path


def assemble(spec: str, name: str) -> dict:
    outputs = ["--out-layout", name, "--out-metadata", f"{name}.image.json"]
    assert run("assemble", "--spec", spec, *outputs) == 0
    return json.loads(Path(f"{name}.image.json").read_text())


def link_layer_blobs(layout: str, *blobs: str) -> None:
    """Put the layer blobs in the layout, as the build system does after `assemble`."""
    for blob in blobs:
        digest = sha256_digest(Path(blob).read_bytes())
        (Path(layout) / "blobs" / "sha256" / digest.split(":")[1]).symlink_to(Path(blob).resolve())


def build_service_image(workdir: Path) -> dict:
    make_source(workdir / "src")
    layer = build_layer("src", "app/", "app")
    assert layer["media_type"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    spec = write_spec(
        "spec.json",
        platform={"os": "linux", "architecture": "amd64"},
        layers=[{"descriptor": "app.json", "created_by": "esb: service source"}],
        config={
            "env": {"PYTHONPATH": "/app"},
            "entrypoint": ["/app/entrypoint.sh"],
            "cmd": ["python3", "-m", "hello"],
        },
        repository="esb/hello",
        tags=["latest", "1.0"],
    )
    return assemble(spec, "hello")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    return tmp_path


def test_layer_from_dir(workdir: Path) -> None:
    make_source(workdir / "src")
    descriptor = build_layer("src", "app/", "layer")
    blob = Path("layer.tar.gz").read_bytes()
    assert (descriptor["digest"], descriptor["size"]) == (sha256_digest(blob), len(blob))
    with tarfile.open("layer.tar.gz") as archive:
        assert [(m.name, m.mode, m.mtime) for m in archive.getmembers()] == [
            ("app", 0o755, 0),
            ("app/entrypoint.sh", 0o755, 0),
            ("app/hello", 0o755, 0),
            ("app/hello/__main__.py", 0o644, 0),
        ]


def test_layer_from_dir_takes_its_time_from_source_date_epoch(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(workdir / "src")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    build_layer("src", "", "layer")
    with tarfile.open("layer.tar.gz") as archive:
        assert {m.mtime for m in archive.getmembers()} == {1_700_000_000}


def test_golden_image_digest(workdir: Path) -> None:
    # The image's identity for fixed inputs: a change here changes every image's digest.
    metadata = build_service_image(workdir)
    assert metadata == {
        "digest": "sha256:0e79e0b014bee774a3cddf6da8f3174b345ea00a6ef9ddd6bde522a4abf68979",
        "config_digest": "sha256:b009b9ed14b18c10ed26c477ad64a4b0f895e53c0b2dc35c65a44dd5fdbdf151",
        "repository": "esb/hello",
        "tags": ["latest", "1.0"],
        "layers": [
            {
                "digest": "sha256:d63b8eb66380c4005c14093a1fa8eb24e581c1cad1c1b7deb4fbe8084121d78a",
                "size": 237,
            }
        ],
    }


def test_assembled_image(workdir: Path) -> None:
    metadata = build_service_image(workdir)
    layout = OciLayout(Path("hello"))
    image = layout.load_image(ref="latest")
    assert image.manifest.digest == metadata["digest"]
    assert image.manifest.annotations == {
        REF_NAME_ANNOTATION: "latest",
        "io.containerd.image.name": "docker.io/esb/hello:latest",
    }
    # The config and the manifest; the layer's blob is not the command's to copy.
    assert sorted(f"sha256:{blob.name}" for blob in Path("hello/blobs/sha256").iterdir()) == sorted(
        [metadata["digest"], metadata["config_digest"]]
    )
    for blob in Path("hello/blobs/sha256").iterdir():
        assert sha256_digest(blob.read_bytes()) == f"sha256:{blob.name}"
    assert image.config == {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PYTHONPATH=/app"],
            "Entrypoint": ["/app/entrypoint.sh"],
            "Cmd": ["python3", "-m", "hello"],
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": [json.loads(Path("app.json").read_text())["diff_id"]],
        },
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "esb: service source"}],
    }
    [docker_manifest] = json.loads(Path("hello/manifest.json").read_text())
    assert docker_manifest["RepoTags"] == ["esb/hello:latest", "esb/hello:1.0"]
    assert docker_manifest["Layers"] == [
        f"blobs/sha256/{metadata['layers'][0]['digest'].split(':')[1]}"
    ]


def test_images_do_not_depend_on_the_checkout_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = []
    for checkout in (tmp_path / "one", tmp_path / "somewhere" / "else"):
        checkout.mkdir(parents=True)
        monkeypatch.chdir(checkout)
        metadata = build_service_image(checkout)
        layout = Path("hello")
        outputs.append(
            (
                metadata,
                {path.name: path.read_bytes() for path in layout.rglob("*") if path.is_file()},
            )
        )
    assert outputs[0] == outputs[1]


def test_image_on_a_base(workdir: Path) -> None:
    (workdir / "base-files" / "etc").mkdir(parents=True)
    (workdir / "base-files" / "etc" / "os-release").write_text("ID=debian\n")
    build_layer("base-files", "", "os")
    base_spec = write_spec(
        "base.json",
        platform={"os": "linux", "architecture": "amd64"},
        layers=[{"descriptor": "os.json", "created_by": "esb: debian packages"}],
        config={"env": {"PATH": "/usr/bin", "LANG": "C.UTF-8"}, "cmd": ["python3"]},
        repository="esb/base",
        tags=["latest"],
    )
    base = assemble(base_spec, "base")

    make_source(workdir / "src")
    build_layer("src", "app/", "app")
    spec = write_spec(
        "service.json",
        base={"layout": "base", "ref": "latest"},
        layers=[{"descriptor": "app.json", "created_by": "esb: service source"}],
        config={"env": {"PATH": "/.venv/bin:/usr/bin"}, "entrypoint": ["/app/entrypoint.sh"]},
        repository="esb/hello",
        tags=["latest"],
        created=1_700_000_000,
    )
    metadata = assemble(spec, "hello")
    link_layer_blobs("hello", "os.tar.gz", "app.tar.gz")
    app_layer = json.loads(Path("app.json").read_text())
    assert metadata["base_digest"] == base["digest"]
    assert metadata["layers"] == [
        *base["layers"],
        {"digest": app_layer["digest"], "size": app_layer["size"]},
    ]
    image = OciLayout(Path("hello")).load_image()
    assert image.config["config"] == {
        "Env": ["PATH=/.venv/bin:/usr/bin", "LANG=C.UTF-8"],
        "Entrypoint": ["/app/entrypoint.sh"],
    }
    assert [entry["created_by"] for entry in image.config["history"]] == [
        "esb: debian packages",
        "esb: service source",
    ]
    assert [entry["created"] for entry in image.config["history"]] == [
        "1970-01-01T00:00:00Z",
        "2023-11-14T22:13:20Z",
    ]
    manifest = json.loads(image.layout.read_blob(image.manifest))
    assert manifest["annotations"] == {BASE_DIGEST_ANNOTATION: base["digest"]}


@pytest.mark.parametrize(
    "spec, message",
    [
        pytest.param(
            {"layers": [], "repository": "esb/x", "tags": ["latest"]},
            "without a base needs a `platform`",
            id="no-platform",
        ),
        pytest.param(
            {"layers": [], "repository": "esb/x", "tags": ["latest"], "tag": "x"},
            "unknown keys 'tag'",
            id="unknown-key",
        ),
        pytest.param(
            {"layers": [], "repository": "esb/x", "tags": "latest"},
            "'tags' must be a list",
            id="wrong-type",
        ),
        pytest.param(
            {
                "base": {"layout": "missing"},
                "layers": [],
                "repository": "esb/x",
                "tags": ["latest"],
            },
            "missing is not an OCI image layout",
            id="missing-base",
        ),
        pytest.param(
            {
                "platform": {"os": "linux", "architecture": "amd64"},
                "layers": [{"descriptor": "missing.json", "created_by": "x"}],
                "repository": "esb/x",
                "tags": ["latest"],
            },
            "Cannot read missing.json",
            id="missing-layer-descriptor",
        ),
    ],
)
def test_assemble_errors(
    workdir: Path, capsys: pytest.CaptureFixture[str], spec: dict, message: str
) -> None:
    make_source(workdir / "src")
    build_layer("src", "app/", "app")
    write_spec("spec.json", **spec)
    outputs = ["--out-layout", "out", "--out-metadata", "out.image.json"]
    assert run("assemble", "--spec", "spec.json", *outputs) == 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert message in stderr


def test_an_image_of_more_than_127_layers_is_refused_naming_the_counts(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_source(workdir / "src")
    build_layer("src", "app/", "app")
    layer = {"descriptor": "app.json", "created_by": "esb: layer"}
    spec = write_spec(
        "spec.json",
        platform={"os": "linux", "architecture": "amd64"},
        layers=[layer] * 128,
        config={"cmd": ["true"]},
        repository="esb/tall",
        tags=["latest"],
    )
    outputs = ["--out-layout", "tall", "--out-metadata", "tall.json"]

    assert run("assemble", "--spec", spec, *outputs) == 1

    assert (
        "The image esb/tall would have 128 layers (0 of its base, 128 of its own)"
        in capsys.readouterr().err
    )
    assert not Path("tall").exists() and not Path("tall.json").exists()


_PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "esb:*:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n"
)
_GROUP = "root:x:0:\nesb:*:10001:\n"
_INVENTORIES = ["os.inventory.json", "app.inventory.json"]


def build_recorded_layer(source: str, prefix: str, name: str) -> None:
    """A layer, with its records at `<name>.inventory.json`."""
    args = ["--root", source, "--prefix", prefix, "--out-blob", f"{name}.tar.gz"]
    outputs = ["--out-descriptor", f"{name}.json", "--out-inventory", f"{name}.inventory.json"]
    assert run("layer-from-dir", *args, *outputs) == 0


def build_base_with_accounts(workdir: Path, user: str = "0") -> None:
    """The image `base`, whose one layer `os` has /etc/passwd and /etc/group with the accounts
    root and esb, and the service layer `app` to build on it."""
    etc = workdir / "base-files" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(_PASSWD)
    (etc / "group").write_text(_GROUP)
    build_recorded_layer("base-files", "", "os")
    spec = write_spec(
        "base.json",
        platform={"os": "linux", "architecture": "amd64"},
        layers=[{"descriptor": "os.json", "created_by": "esb: debian packages"}],
        config={"cmd": ["python3"], "user": user},
        repository="esb/base",
        tags=["latest"],
        layer_inventories=["os.inventory.json"],
    )
    assemble(spec, "base")
    make_source(workdir / "src")
    build_recorded_layer("src", "app/", "app")


def service_spec(user: str | None, inventories: list[str] | None = _INVENTORIES) -> str:
    return write_spec(
        "service.json",
        base={"layout": "base"},
        layers=[{"descriptor": "app.json", "created_by": "esb: service source"}],
        config={"cmd": ["python", "-m", "hello"], **({"user": user} if user else {})},
        repository="esb/hello",
        tags=["latest"],
        **({"layer_inventories": inventories} if inventories is not None else {}),
    )


@pytest.mark.parametrize("user", ["esb", "esb:esb", "esb:0", "root:esb", "10001", "10001:esb"])
def test_a_user_that_the_image_defines_is_accepted(workdir: Path, user: str) -> None:
    build_base_with_accounts(workdir)
    assemble(service_spec(user), "hello")
    assert OciLayout(Path("hello")).load_image().config["config"]["User"] == user


def test_numeric_ids_need_no_account_files(workdir: Path) -> None:
    build_base_with_accounts(workdir)
    assemble(service_spec("4242:4242", inventories=None), "hello")


def test_inherited_user_that_the_base_defines_is_accepted(workdir: Path) -> None:
    build_base_with_accounts(workdir, user="esb")
    assemble(service_spec(None), "hello")


def assemble_fails(spec: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`assemble`'s one-line report of a spec it refuses, having written nothing."""
    outputs = ["--out-layout", "hello", "--out-metadata", "hello.image.json"]
    assert run("assemble", "--spec", spec, *outputs) == 1
    assert not Path("hello").exists() and not Path("hello.image.json").exists()
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    return stderr


@pytest.mark.parametrize(
    "user, expected",
    [
        pytest.param(
            "nosuchuser",
            "The `user` field is 'nosuchuser', but the image has no user 'nosuchuser', so no "
            'container of it could start (`docker run` fails with "unable to find user"). Its '
            '/etc/passwd defines: root (0), esb (10001).\n\nFix: add `"nosuchuser:<uid from '
            '1000 to 59999>"` to the `service_accounts` field of the base',
            id="user",
        ),
        pytest.param(
            "esb:nosuchgroup",
            "The `user` field is 'esb:nosuchgroup', but the image has no group 'nosuchgroup'",
            id="group",
        ),
        pytest.param(
            "10001:nosuchgroup",
            "Its /etc/group defines: root (0), esb (10001).\n\nFix: use a group that the image "
            "defines",
            id="named-group-of-a-uid",
        ),
    ],
)
def test_a_user_that_the_image_lacks_fails_naming_it_the_accounts_and_the_fix(
    workdir: Path, capsys: pytest.CaptureFixture[str], user: str, expected: str
) -> None:
    build_base_with_accounts(workdir)
    assert expected in assemble_fails(service_spec(user), capsys)


def test_a_base_with_a_user_it_lacks_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_base_with_accounts(workdir)
    base = json.loads(Path("base.json").read_text())
    base["config"]["user"] = "nosuchuser"
    message = assemble_fails(write_spec("base.json", **base), capsys)
    assert "The `user` field is 'nosuchuser', but the image has no user" in message


def test_an_inherited_user_that_a_layer_removes_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_base_with_accounts(workdir, user="esb")
    (workdir / "src" / "etc").mkdir()
    (workdir / "src" / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    build_recorded_layer("src", "", "app")
    message = assemble_fails(service_spec(None), capsys)
    inherited = "The `user` the image inherits from its base is 'esb', but the image has no user"
    assert inherited in message
    assert "Its /etc/passwd defines: root (0)." in message


@pytest.mark.parametrize("inventories", [None, ["app.inventory.json"]], ids=["none", "too-few"])
def test_a_named_user_needs_the_records_of_every_layer(
    workdir: Path, capsys: pytest.CaptureFixture[str], inventories: list[str] | None
) -> None:
    build_base_with_accounts(workdir)
    message = assemble_fails(service_spec("esb", inventories), capsys)
    assert "needs `layer_inventories` for all its 2 layers" in message


def app_spec(**changes: object) -> str:
    """The image `hello` on `base`, whose top layer the assembly writes from the files in `src`."""
    spec = json.loads(Path(service_spec("esb")).read_text())
    spec["layers"] = []
    spec["layer_inventories"] = ["os.inventory.json"]
    spec["app"] = {
        "directory": "src",
        "created_by": "esb: app layer",
        "python_version": "3.11.2",
        "python_platform": "x86_64-manylinux_2_36",
        "interpreter": "/usr/bin/python3.11",
        "build_file_patterns": ["BUILD", "BUILD.*"],
    }
    return write_spec("service.json", **{**spec, **changes})


def assemble_with_inventories(spec: str, name: str) -> dict:
    outputs = ["--out-layout", name, "--out-metadata", f"{name}.image.json"]
    inventories = ["--out-inventory", f"{name}.inventory.json"]
    inventories += ["--out-app-inventory", f"{name}.app.json"]
    assert run("assemble", "--spec", spec, *outputs, *inventories) == 0
    return json.loads(Path(f"{name}.image.json").read_text())


def test_the_assembly_writes_the_app_layer_from_the_services_files(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_base_with_accounts(workdir)
    (workdir / "src" / "hello" / "BUILD").write_text("python_sources()\n")
    (workdir / "src" / "hello" / "broken.py").write_text("def broken(:\n")
    vendored = workdir / "src" / "vendor" / "site-packages" / "six-1.17.0.dist-info"
    vendored.mkdir(parents=True)
    (vendored / "METADATA").write_text("Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n")
    metadata = assemble_with_inventories(app_spec(), "hello")

    layout = OciLayout(Path("hello"))
    image = layout.load_image()
    app = image.layers[-1]
    assert len(image.layers) == len(json.loads(Path("base.image.json").read_text())["layers"]) + 1
    assert metadata["layers"][-1] == {"digest": app.digest, "size": app.size}
    # The app layer's blob is in the layout: the assembly wrote it, no other step has it.
    blob = layout.blob_path(app.digest)
    assert sha256_digest(blob.read_bytes()) == app.digest
    with tarfile.open(blob) as archive:
        names = archive.getnames()
        assert {m.mtime for m in archive.getmembers()} == {0}
    assert names == [
        "app",
        "app/entrypoint.sh",
        "app/hello",
        "app/hello/__main__.py",
        "app/hello/__pycache__",
        "app/hello/__pycache__/__main__.cpython-311.pyc",
        "app/hello/broken.py",
        "app/vendor",
        "app/vendor/site-packages",
        "app/vendor/site-packages/six-1.17.0.dist-info",
        "app/vendor/site-packages/six-1.17.0.dist-info/METADATA",
    ]
    assert image.config["history"][-1]["created_by"] == "esb: app layer"
    assert image.config["config"]["User"] == "esb"
    # The app layer's records, and the image's packages, which the app layer's are part of.
    six = {
        "kind": "python",
        "name": "six",
        "version": "1.17.0",
        "location": "/app/vendor/site-packages/six-1.17.0.dist-info/METADATA",
    }
    app_records = json.loads(Path("hello.app.json").read_text())["records"]
    assert app_records == {six["location"].lstrip("/"): [six]}
    assert json.loads(Path("hello.inventory.json").read_text()) == [six]
    assert "note: /app/hello/broken.py does not compile" in capsys.readouterr().err


def test_the_app_layer_does_not_depend_on_where_the_files_or_the_scratch_are(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_base_with_accounts(workdir)
    first = assemble_with_inventories(app_spec(), "hello")
    (workdir / "elsewhere").mkdir()
    (workdir / "src").rename(workdir / "elsewhere" / "src")
    (workdir / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(workdir / "scratch"))
    app = {**json.loads(Path("service.json").read_text())["app"], "directory": "elsewhere/src"}
    assert assemble_with_inventories(app_spec(app=app), "again") == first


@pytest.mark.parametrize(
    "flag, change, message",
    [
        ("--out-inventory", {"layer_inventories": None}, "needs the spec's `layer_inventories`"),
        ("--out-app-inventory", {"app": None}, "needs the spec's `app`"),
    ],
)
def test_an_inventory_output_needs_its_inputs(
    workdir: Path, capsys: pytest.CaptureFixture[str], flag: str, change: dict, message: str
) -> None:
    build_base_with_accounts(workdir)
    spec = app_spec(**change, config={})
    outputs = ["--out-layout", "hello", "--out-metadata", "hello.image.json"]
    assert run("assemble", "--spec", spec, *outputs, flag, "out.json") == 1
    assert message in capsys.readouterr().err
    assert not Path("hello").exists()


def test_an_image_without_account_files_has_no_named_users(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_source(workdir / "src")
    build_recorded_layer("src", "app/", "app")
    spec = write_spec(
        "spec.json",
        platform={"os": "linux", "architecture": "amd64"},
        layers=[{"descriptor": "app.json", "created_by": "esb: service source"}],
        config={"user": "esb"},
        repository="esb/hello",
        tags=["latest"],
        layer_inventories=["app.inventory.json"],
    )
    message = assemble_fails(spec, capsys)
    assert "names the user 'esb', but the image has no /etc/passwd" in message

from __future__ import annotations

import io
import json
import shutil
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest

from esb_contract.image_spec import Platform
from esb_contract.media_types import CONFIG_MEDIA_TYPE, GZIP_LAYER_MEDIA_TYPE
from imagetool.cli import main
from imagetool.engine import (
    ENGINE_FAILURE_STATUS,
    EngineError,
    ProgressReader,
    find_engine,
    image_of_platform,
    parse_environment,
    parse_publish,
)
from imagetool.oci import MANIFEST_MEDIA_TYPE, OciLayout, build_manifest, write_docker_manifest


@pytest.mark.parametrize(
    "mapping, item",
    [
        ("8080", ("8080/tcp", None)),
        ("9090:8080", ("8080/tcp", 9090)),
        (":8080/udp", ("8080/udp", None)),
        ("127.0.0.1:9090:8080/tcp", ("8080/tcp", ("127.0.0.1", 9090))),
        ("[::1]:9090:8080", ("8080/tcp", ("::1", 9090))),
    ],
)
def test_publish_takes_what_docker_run_p_takes(mapping: str, item: tuple) -> None:
    assert parse_publish(mapping) == item


@pytest.mark.parametrize("mapping", ["http", "8080/icmp", "a:b:c:8080", ""])
def test_a_bad_publish_is_refused_with_the_form(mapping: str) -> None:
    with pytest.raises(EngineError, match=r"is not a port to publish\. Fix: write it as"):
        parse_publish(mapping)


def test_environment_entries_with_values_and_from_the_environment() -> None:
    entries = ["A=1", "B=", "C=x=y", "FROM_ENV", "UNSET"]
    assert parse_environment(entries, {"FROM_ENV": "secret", "OTHER": "no"}) == {
        "A": "1",
        "B": "",
        "C": "x=y",
        "FROM_ENV": "secret",
    }


def test_a_bad_environment_entry_is_refused() -> None:
    with pytest.raises(EngineError, match=r"'=x' is not an environment variable to set"):
        parse_environment(["=x"], {})


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_reported_at_intervals_then_the_wait() -> None:
    clock, out = _Clock(), io.StringIO()
    data = io.BytesIO(b"x" * 4_000_000)
    body = ProgressReader(
        data, 4_000_000, "Loading esb/x:1", timeout=600, out=out, clock=clock, interval=5
    )
    assert len(body) == 4_000_000
    chunks = []
    for step in range(4):
        clock.now = step * 3.0  # 0, 3, 6, 9: only 6 is 5 s after the last report
        chunks.append(body.read(1_000_000))
    assert body.read(1_000_000) == b""
    assert b"".join(chunks) == b"x" * 4_000_000
    assert out.getvalue().splitlines() == [
        "Loading esb/x:1: 75% sent (3.0 of 4.0 MB)",
        "Loading esb/x:1: all sent; waiting up to 600 s for the engine to import it",
    ]


def test_a_quick_load_reports_nothing() -> None:
    out = io.StringIO()
    body = ProgressReader(io.BytesIO(b"abc"), 3, "L", timeout=1, out=out, clock=lambda: 0.0)
    assert body.read() == b"abc" and body.read() == b""
    assert out.getvalue() == ""


def _run_image(tmp_path: Path, *extra: str, name: str = "image", layers: int = 0) -> list[str]:
    """`run-image` of an image with `layers` layers: its layout, as `package` writes it (its
    `blobs` a link to blobs shared with any other image written here), and metadata."""
    layout = OciLayout.create(tmp_path / f"{name}.oci")
    shared = tmp_path / "blobs"
    if not shared.exists():
        (layout.root / "blobs").rename(shared)
    else:
        shutil.rmtree(layout.root / "blobs")
    (layout.root / "blobs").symlink_to(shared)
    config = layout.add_json_blob(CONFIG_MEDIA_TYPE, {"architecture": "amd64", "os": "linux"})
    layer_blobs = [
        layout.add_json_blob(GZIP_LAYER_MEDIA_TYPE, {"image": name, "layer": index})
        for index in range(layers)
    ]
    manifest = layout.add_json_blob(MANIFEST_MEDIA_TYPE, build_manifest(config, layer_blobs, {}))
    layout.write_index([manifest])
    write_docker_manifest(layout, manifest, ["esb/x:1"])
    metadata = tmp_path / f"{name}.image.json"
    metadata.write_text(
        json.dumps({"repository": "esb/x", "tags": ["1"], "config_digest": config.digest})
    )
    return ["run-image", "--layout", str(layout.root), "--metadata", str(metadata), *extra]


def test_no_engine_is_one_line_naming_it_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = f"unix://{tmp_path}/absent.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    assert main(_run_image(tmp_path)) == ENGINE_FAILURE_STATUS
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"Cannot reach a Docker engine at DOCKER_HOST={host}")
    assert "FileNotFoundError" in line
    assert "Fix: start one and point DOCKER_HOST at it" in line


def test_no_podman_service_is_one_line_naming_it_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = f"unix://{tmp_path}/absent.sock"
    monkeypatch.setenv("CONTAINER_HOST", host)
    monkeypatch.setenv("DOCKER_HOST", "unix:///not/this/one.sock")
    assert main(_run_image(tmp_path, "--engine", "podman")) == ENGINE_FAILURE_STATUS
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"Cannot reach a Podman engine at CONTAINER_HOST={host} (")
    assert line.endswith(
        "while connecting to it. Fix: start Podman's API service there "
        f"(`podman system service --time=0 {host}`), or point CONTAINER_HOST at one that "
        "runs, then run `pants run` again."
    )


@pytest.mark.parametrize(
    "kind, environ, uid, url, found",
    [
        pytest.param(
            "docker",
            {"CONTAINER_HOST": "unix:///c.sock"},
            0,
            "unix:///var/run/docker.sock",
            "unix:///var/run/docker.sock (DOCKER_HOST is unset)",
            id="docker-default",
        ),
        pytest.param(
            "docker",
            {"DOCKER_HOST": "tcp://build:2375"},
            1000,
            "tcp://build:2375",
            "DOCKER_HOST=tcp://build:2375",
            id="docker-host",
        ),
        pytest.param(
            "podman",
            {"DOCKER_HOST": "unix:///d.sock", "CONTAINER_HOST": "unix:///c.sock"},
            1000,
            "unix:///c.sock",
            "CONTAINER_HOST=unix:///c.sock",
            id="podman-host",
        ),
        pytest.param(
            "podman",
            {"XDG_RUNTIME_DIR": "/run/user/1000"},
            0,
            "unix:///run/podman/podman.sock",
            "unix:///run/podman/podman.sock (CONTAINER_HOST is unset: root's Podman API socket)",
            id="podman-root",
        ),
        pytest.param(
            "podman",
            {"XDG_RUNTIME_DIR": "/run/user/1000"},
            1000,
            "unix:///run/user/1000/podman/podman.sock",
            "unix:///run/user/1000/podman/podman.sock (CONTAINER_HOST is unset: uid 1000's "
            "Podman API socket)",
            id="podman-rootless",
        ),
        pytest.param(
            "podman",
            {},
            1001,
            "unix:///run/user/1001/podman/podman.sock",
            "unix:///run/user/1001/podman/podman.sock (CONTAINER_HOST is unset: uid 1001's "
            "Podman API socket)",
            id="podman-rootless-without-xdg",
        ),
    ],
)
def test_each_engine_is_found_as_its_own_client_finds_it(
    kind: str, environ: dict[str, str], uid: int, url: str, found: str
) -> None:
    engine = find_engine(kind, environ, uid)
    assert (engine.url, engine.found) == (url, found)
    assert str(engine) == f"{kind.capitalize()} engine at {found}"


def test_the_fix_for_a_missing_podman_service_starts_the_users_or_roots() -> None:
    assert "`systemctl start podman.socket`" in find_engine("podman", {}, 0).start
    assert "`systemctl --user start podman.socket`" in find_engine("podman", {}, 1000).start


class _FakeEngine:
    """An HTTP engine on loopback that has no image until one is loaded; `on_load` gets the
    body of each load and returns the ID of the image it loaded."""

    def __init__(self, on_load: Callable[[bytes], str]) -> None:
        loaded: set[str] = set()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                image = self.path.rsplit("/images/", 1)[-1].removesuffix("/json")
                if self.path.endswith("/_ping"):
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")
                elif self.path.endswith("/version"):
                    self._reply(200, {"ApiVersion": "1.41", "Version": "20.10.24"})
                elif image in loaded:
                    self._reply(200, {"Id": image})
                else:
                    self._reply(404, {"message": "No such image"})

            def do_POST(self) -> None:
                image = on_load(self.rfile.read(int(self.headers["Content-Length"])))
                loaded.add(image)
                self._reply(200, {"stream": f"Loaded image ID: {image}\n"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"tcp://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> _FakeEngine:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def silent_load_engine() -> Iterator[str]:
    """An engine that answers the calls before a load, then never answers the load."""
    answered = threading.Event()

    def never_answer(_body: bytes) -> str:
        answered.wait(10)  # past the client's timeout: it gives up first
        return ""

    with _FakeEngine(never_answer) as engine:
        try:
            yield engine.url
        finally:
            answered.set()


@pytest.mark.parametrize(
    "variable, engine", [("DOCKER_HOST", "docker"), ("CONTAINER_HOST", "podman")]
)
def test_a_load_sends_the_blobs_of_the_image_and_no_others(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    engine: str,
) -> None:
    # Two images whose layouts link to one blobs directory, as under dist/.
    _run_image(tmp_path, name="other", layers=2)
    argv = _run_image(tmp_path, "--engine", engine, "--load-only", layers=1)
    layout = OciLayout(tmp_path / "image.oci")
    [manifest] = json.loads((layout.root / "index.json").read_bytes())["manifests"]
    manifest_json = json.loads(layout.blob_path(manifest["digest"]).read_bytes())
    own = {manifest["digest"], manifest_json["config"]["digest"]}
    own |= {layer["digest"] for layer in manifest_json["layers"]}
    assert len(own) == 3 and len(list((tmp_path / "blobs" / "sha256").iterdir())) == 6
    bodies: list[bytes] = []

    def record(body: bytes) -> str:
        bodies.append(body)
        return manifest_json["config"]["digest"]

    with _FakeEngine(record) as fake:
        monkeypatch.setenv(variable, fake.url)
        assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == "Loaded esb/x:1\n"
    [body] = bodies
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        sent = {
            f"sha256:{member.name.rsplit('/', 1)[1]}": member.size
            for member in archive.getmembers()
            if member.isfile() and member.name.startswith("blobs/sha256/")
        }
    assert sent == {digest: layout.blob_path(digest).stat().st_size for digest in own}


def test_a_load_past_the_timeout_is_one_line_with_the_option_to_raise(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    silent_load_engine: str,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", silent_load_engine)
    assert main(_run_image(tmp_path, "--timeout", "1")) == ENGINE_FAILURE_STATUS
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(
        "Loading esb/x:1 (0.0 MB) into the Docker engine at DOCKER_HOST=tcp://"
    )
    assert err[1:] == [
        f"The Docker engine at DOCKER_HOST={silent_load_engine} did not answer "
        "within 1 s while loading the image esb/x:1 from "
        f"{tmp_path}/image.oci. Fix: give it longer, e.g. `pants run --esb-run-timeout=4 ...` "
        "(or `timeout` in the `[esb-run]` section of pants.toml), or use a less loaded engine."
    ]


INDEX_METADATA = {
    "digest": "sha256:" + "00" * 32,
    "repository": "esb/api",
    "tags": ["1.0"],
    "platforms": [
        {"platform": "linux/amd64", "digest": "sha256:" + "0a" * 32, "config_digest": "c-amd64"},
        {"platform": "linux/arm64", "digest": "sha256:" + "0b" * 32, "config_digest": "c-arm64"},
    ],
}


def test_of_an_image_of_several_platforms_the_named_or_the_hosts_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arm64 = image_of_platform(INDEX_METADATA, Platform("arm64"))
    assert (arm64["config_digest"], arm64["repository"], arm64["tags"]) == (
        "c-arm64",
        "esb/api",
        ["1.0"],
    )
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert image_of_platform(INDEX_METADATA, None)["config_digest"] == "c-amd64"
    # An image of one platform is run as it is.
    single = {"digest": "d", "config_digest": "c", "repository": "r", "tags": []}
    assert image_of_platform(single, Platform("arm64")) is single


def test_a_platform_the_image_lacks_is_named_with_those_it_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(EngineError) as error:
        image_of_platform(INDEX_METADATA, Platform("s390x"))
    assert str(error.value).startswith(
        "The image esb/api is built for linux/amd64, linux/arm64, not for linux/s390x."
    )
    monkeypatch.setattr("platform.machine", lambda: "riscv64")
    with pytest.raises(EngineError, match="This machine is a riscv64"):
        image_of_platform(INDEX_METADATA, None)

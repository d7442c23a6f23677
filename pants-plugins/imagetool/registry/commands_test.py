from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from imagetool.cli import build_parser, main
from imagetool.commands import CommandError
from imagetool.oci import Platform
from imagetool.registry.commands import _options, parse_platform, pulled_image_metadata

# `silent_server` is the fixture.
from imagetool.registry.conftest import (  # noqa: F401
    SilentServer,
    free_port,
    make_image,
    silent_server,
)
from imagetool.registry.reference import Reference
from imagetool.registry.transport import RegistryOptions, RetryPolicy

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text, platform",
    [
        pytest.param("linux/amd64", Platform("amd64"), id="os-arch"),
        pytest.param("linux/arm64/v8", Platform("arm64", variant="v8"), id="variant"),
    ],
)
def test_parse_platform(text: str, platform: Platform) -> None:
    assert parse_platform(text) == platform


@pytest.mark.parametrize("text", ["amd64", "linux/", "linux/arm64/v8/x"])
def test_invalid_platform(text: str) -> None:
    with pytest.raises(CommandError, match="is not a platform `os/architecture"):
        parse_platform(text)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(argv)
    return status, capsys.readouterr().err


def test_pull_refuses_a_tag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, err = run(
        capsys,
        "pull-image",
        "--reference",
        "python:3.12-slim-bookworm",
        "--platform",
        "linux/amd64",
        "--out-layout",
        str(tmp_path / "out"),
    )
    assert status == 1
    assert err.startswith(
        "'python:3.12-slim-bookworm' names no digest, and a build pulls only by digest"
    )
    assert "`python:3.12-slim-bookworm@sha256:<digest>`" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        pytest.param(
            "--registry-ca",
            "127.0.0.1:5000",
            "--registry-ca '127.0.0.1:5000' is not `REGISTRY=VALUE`",
            id="no-equals",
        ),
        pytest.param(
            "--mirror",
            "https://m.example=docker.io",
            "'https://m.example' is not a registry",
            id="swapped",
        ),
        pytest.param("--insecure-registry", "http://127.0.0.1:5000", "is not a registry", id="url"),
    ],
)
def test_invalid_connection_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, value: str, message: str
) -> None:
    status, err = run(
        capsys,
        "pull-image",
        "--reference",
        f"127.0.0.1:5000/esb/base@{DIGEST}",
        "--platform",
        "linux/amd64",
        "--out-layout",
        str(tmp_path / "out"),
        "--docker-config",
        str(tmp_path / "none.json"),
        option,
        value,
    )
    assert status == 1
    assert message in err


def test_push_options_are_checked_first(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, err = run(
        capsys,
        "push-image",
        "--layout",
        str(tmp_path),
        "--reference",
        "127.0.0.1:5000/esb/api:1",
        "--mount-from",
        "esb/Base",
    )
    assert (status, err) == (
        1,
        "'esb/Base' is not a repository name (repository names are lowercase); "
        "use lowercase letters, digits and separators (`.`, `_`, `__`, `-`) in `/`-separated parts, "
        "e.g. `esb/api`.\n",
    )


def test_pulled_image_metadata(tmp_path: Path) -> None:
    image = make_image(tmp_path, [b"one", b"two"])
    reference = Reference("127.0.0.1:5000", "esb/base", "1", image.manifest.digest)
    metadata = pulled_image_metadata(reference, image.layout)
    assert metadata.to_json() == {
        "digest": image.manifest.digest,
        "config_digest": image.config.digest,
        "repository": "127.0.0.1:5000/esb/base",
        "tags": ["1"],
        "layers": [{"digest": layer.digest, "size": layer.size} for layer in image.layers],
    }


def test_docker_config_and_credential_helper_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without HOME (as Pants runs the tool), `~` is the home directory of the password database."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin")
    parser = build_parser()
    common = [
        "pull-image",
        "--reference",
        f"r.example/x@{DIGEST}",
        "--platform",
        "linux/amd64",
        "--out-layout",
        "o",
    ]
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)

    default = _options(parser.parse_args(common), mirrors=[])
    assert default.docker_config is not None
    assert default.docker_config.path == home / ".docker" / "config.json"
    assert default.docker_config.helper_search_path == "/usr/bin"

    chosen = _options(
        parser.parse_args(
            [
                *common,
                "--docker-config",
                "~/ci/config.json",
                "--credential-helper-path",
                "/opt/h:/bin",
            ]
        ),
        mirrors=[],
    )
    assert chosen.docker_config is not None
    assert chosen.docker_config.path == home / "ci" / "config.json"
    assert chosen.docker_config.helper_search_path == "/opt/h:/bin"


def test_push_interrupted_after_retries_says_how_to_resume(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(RetryPolicy, "delays", lambda policy: [0.0] * (policy.attempts - 1))
    image = make_image(tmp_path / "image", [b"one"])
    host = f"127.0.0.1:{free_port()}"
    status, err = run(
        capsys,
        "push-image",
        "--layout",
        str(image.layout),
        "--reference",
        f"{host}/esb/api:1",
        "--docker-config",
        str(tmp_path / "none.json"),
        "--insecure-registry",
        host,
    )
    assert status == 1
    error = err.splitlines()[-1]
    assert error.startswith(f"Cannot reach {host} (HEAD /v2/esb/api/blobs/sha256:")
    assert err.endswith(
        "(failed 5 times). Every tag pushed so far names a complete image (tags go last). Push again "
        "once the registry works: the blobs it has already are not sent again.\n"
    )


def test_ca_bundle_setting_reaches_the_options() -> None:
    parser = build_parser()
    common = ["push-image", "--layout", "image.oci", "--reference", "r.example/esb/api"]
    assert (
        _options(parser.parse_args(common), mirrors=[]).ca_bundle_setting
        == RegistryOptions.ca_bundle_setting
    )
    chosen = parser.parse_args([*common, "--ca-bundle-setting", "`ca_bundle` for {registry}"])
    assert _options(chosen, mirrors=[]).ca_bundle_setting == "`ca_bundle` for {registry}"


def test_insecure_setting_reaches_the_options() -> None:
    parser = build_parser()
    common = [
        "pull-image",
        "--reference",
        "r.example/esb/api@sha256:" + "ab" * 32,
        "--platform",
        "linux/amd64",
        "--out-layout",
        "o",
    ]
    assert (
        _options(parser.parse_args(common), mirrors=[]).insecure_setting
        == RegistryOptions.insecure_setting
    )
    chosen = parser.parse_args([*common, "--insecure-setting", "`insecure` for {registry}"])
    assert _options(chosen, mirrors=[]).insecure_setting == "`insecure` for {registry}"


def test_push_to_a_registry_that_never_answers_is_bounded_and_says_what_to_raise(
    capsys: pytest.CaptureFixture[str], silent_server: SilentServer, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "image", [b"one"])
    host = silent_server.host
    status, err = run(
        capsys,
        "push-image",
        "--layout",
        str(image.layout),
        "--reference",
        f"{host}/esb/api:1",
        "--tag",
        "latest",
        "--docker-config",
        str(tmp_path / "none.json"),
        "--insecure-registry",
        host,
        "--read-timeout",
        "0.5",
        "--read-timeout-setting",
        "`push_read_timeout` in [esb-registries]",
        "--push-deadline",
        "5",
    )
    assert status == 1
    lines = err.splitlines()
    assert lines[:2] == [
        f"{host}/esb/api: pushing {image.layout} (connect timeout 10 s, read timeout 0.5 s, "
        "deadline 5 s)",
        f"{host}/esb/api: checking 2 blobs (layers and config)",
    ]
    assert lines[2].startswith(
        f"Pushing {image.layout} to {host}/esb/api failed: {host} did not "
        f"answer HEAD /v2/esb/api/blobs/{image.blobs[0].digest} within 0.5 s. If the registry is "
        "merely slow, raise the read timeout with `push_read_timeout` in [esb-registries]. Every "
        "tag pushed so far names a complete image (tags go last)."
    )
    assert len(lines) == 3
    assert len(silent_server.connections) == 1


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_limits_must_be_positive_seconds(capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["push-image", "--layout", "l", "--reference", "r/x", "--push-deadline", value]
        )
    error = capsys.readouterr().err
    assert f"--push-deadline {value!r} is not a positive number of seconds" in error

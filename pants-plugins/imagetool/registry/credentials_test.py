from __future__ import annotations

import base64
import json
import sys
import textwrap
from pathlib import Path

import pytest

from imagetool.registry.conftest import write_docker_config
from imagetool.registry.credentials import (
    Credentials,
    CredentialsError,
    DockerConfig,
    default_docker_config_path,
)

REGISTRY = "127.0.0.1:5000"


def basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def load(tmp_path: Path, config: dict, helper_search_path: str | None = None) -> DockerConfig:
    path = write_docker_config(tmp_path / "config.json", config)
    return DockerConfig.load(path, helper_search_path=helper_search_path)


@pytest.fixture
def helper_dir(tmp_path: Path) -> Path:
    """A directory holding `docker-credential-test`, which logs what it is asked and answers
    from `answers.json` (server → credentials), like a real helper."""
    directory = tmp_path / "bin"
    directory.mkdir()
    helper = directory / "docker-credential-test"
    helper.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, sys
            server = sys.stdin.read()
            with open({str(directory / "asked")!r}, "a") as log:
                log.write(" ".join(sys.argv[1:]) + " " + server + "\\n")
            answers = json.load(open({str(directory / "answers.json")!r}))
            if server == "broken":
                print("error getting credentials - err: exit status 1, out: `keychain locked`")
                sys.exit(1)
            if server not in answers:
                print("credentials not found in native keychain")
                sys.exit(1)
            print(json.dumps({{"ServerURL": server, **answers[server]}}))
            """
        )
    )
    helper.chmod(0o755)
    (directory / "answers.json").write_text(
        json.dumps(
            {
                REGISTRY: {"Username": "helper-user", "Secret": "helper-secret"},
                "https://index.docker.io/v1/": {"Username": "hub-user", "Secret": "hub-secret"},
            }
        )
    )
    return directory


def test_default_docker_config_path() -> None:
    assert default_docker_config_path({"DOCKER_CONFIG": "/etc/docker-x"}, Path("/home/u")) == Path(
        "/etc/docker-x/config.json"
    )
    assert default_docker_config_path({}, Path("/home/u")) == Path("/home/u/.docker/config.json")


def test_missing_config_means_no_credentials(tmp_path: Path) -> None:
    lookup = DockerConfig.load(tmp_path / "absent.json", helper_search_path=None).lookup(REGISTRY)
    assert lookup.credentials is None
    assert (
        lookup.source == f"no credentials (none for {REGISTRY} in {tmp_path}/absent.json (auths))"
    )


@pytest.mark.parametrize(
    "key, registry",
    [
        pytest.param(REGISTRY, REGISTRY, id="host-port"),
        pytest.param(f"https://{REGISTRY}/v2/", REGISTRY, id="url-key"),
        pytest.param("https://index.docker.io/v1/", "docker.io", id="docker-hub-key"),
        pytest.param("docker.io", "index.docker.io", id="docker-hub-alias"),
    ],
)
def test_auths_entry(tmp_path: Path, key: str, registry: str) -> None:
    config = load(
        tmp_path,
        {"auths": {"other.example": {"auth": basic("x", "y")}, key: {"auth": basic("u", "p:w")}}},
    )
    lookup = config.lookup(registry)
    assert lookup.credentials == Credentials("u", "p:w")
    assert lookup.source.endswith(f"from {tmp_path}/config.json (auths)")


def test_auths_username_and_password(tmp_path: Path) -> None:
    config = load(tmp_path, {"auths": {REGISTRY: {"username": "u", "password": "p"}}})
    assert config.lookup(REGISTRY).credentials == Credentials("u", "p")


def test_auths_without_entry(tmp_path: Path) -> None:
    config = load(tmp_path, {"auths": {"other.example": {"auth": basic("x", "y")}}})
    lookup = config.lookup(REGISTRY)
    assert lookup.credentials is None
    assert (
        lookup.source == f"no credentials (none for {REGISTRY} in {tmp_path}/config.json (auths))"
    )


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param("not base64!", id="not-base64"),
        pytest.param(base64.b64encode(b"nocolon").decode(), id="no-colon"),
    ],
)
def test_malformed_auth(tmp_path: Path, auth: str) -> None:
    config = load(tmp_path, {"auths": {REGISTRY: {"auth": auth}}})
    with pytest.raises(CredentialsError, match=rf"auths\['{REGISTRY}'\]"):
        config.lookup(REGISTRY)


def test_unreadable_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CredentialsError, match="Cannot read the Docker config"):
        DockerConfig.load(tmp_path / "config.json", helper_search_path=None)


def test_cred_helper(tmp_path: Path, helper_dir: Path) -> None:
    config = load(
        tmp_path,
        {"credHelpers": {REGISTRY: "test"}, "auths": {REGISTRY: {"auth": basic("ignored", "x")}}},
        str(helper_dir),
    )
    lookup = config.lookup(REGISTRY)
    assert lookup.credentials == Credentials("helper-user", "helper-secret")
    assert lookup.source == (
        f"credentials for {REGISTRY} from {tmp_path}/config.json (credHelpers: docker-credential-test)"
    )
    assert (helper_dir / "asked").read_text() == f"get {REGISTRY}\n"


def test_creds_store_for_docker_hub(tmp_path: Path, helper_dir: Path) -> None:
    config = load(tmp_path, {"credsStore": "test"}, str(helper_dir))
    lookup = config.lookup("docker.io")
    assert lookup.credentials == Credentials("hub-user", "hub-secret")
    assert "(credsStore: docker-credential-test)" in lookup.source
    assert (helper_dir / "asked").read_text() == "get https://index.docker.io/v1/\n"


def test_cred_helpers_take_precedence_over_creds_store(tmp_path: Path, helper_dir: Path) -> None:
    config = load(
        tmp_path, {"credsStore": "absent", "credHelpers": {REGISTRY: "test"}}, str(helper_dir)
    )
    assert config.lookup(REGISTRY).credentials == Credentials("helper-user", "helper-secret")


def test_helper_without_credentials(tmp_path: Path, helper_dir: Path) -> None:
    lookup = load(tmp_path, {"credsStore": "test"}, str(helper_dir)).lookup("registry.example")
    assert lookup.credentials is None
    assert lookup.source == (
        f"no credentials (none for registry.example in {tmp_path}/config.json "
        "(credsStore: docker-credential-test))"
    )


def test_failing_helper(tmp_path: Path, helper_dir: Path) -> None:
    config = load(tmp_path, {"credHelpers": {"broken": "test"}}, str(helper_dir))
    with pytest.raises(
        CredentialsError,
        match=r"`docker-credential-test get` for broken failed with status 1: .*keychain locked",
    ):
        config.lookup("broken")


def test_missing_helper(tmp_path: Path, helper_dir: Path) -> None:
    config = load(tmp_path, {"credsStore": "absent"}, str(helper_dir))
    with pytest.raises(
        CredentialsError, match="`docker-credential-absent` is not on the search path"
    ):
        config.lookup(REGISTRY)


def test_secrets_stay_out_of_repr() -> None:
    assert "hunter2" not in repr(Credentials("user", "hunter2"))

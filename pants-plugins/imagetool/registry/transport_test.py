from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagetool.registry.auth import pull_scope, push_scope
from imagetool.registry.conftest import (
    FAST_RETRIES,
    Answer,
    Recorded,
    Respond,
    ScriptedServer,
    SilentServer,
    auths_config,
    free_port,
    registry_errors,
)
from imagetool.registry.credentials import DockerConfig
from imagetool.registry.transport import (
    Endpoint,
    RegistryAuthError,
    RegistryClient,
    RegistryDeadlineError,
    RegistryError,
    RegistryNotFoundError,
    RegistryOptions,
    RegistryReadOnlyError,
    RegistryTimeoutError,
    RegistryTlsError,
    RegistryUnreachableError,
    RetryPolicy,
    TransientRegistryError,
)

StartServer = Callable[[Respond], ScriptedServer]
PASSWORD = "s3cret-pa55word"


def endpoint_for(
    host: str, *, docker_config: DockerConfig | None = None, sleeps: list | None = None
) -> Endpoint:
    options = RegistryOptions(
        docker_config=docker_config,
        insecure_registries=frozenset({host}),
        retry=FAST_RETRIES,
        sleep=(sleeps if sleeps is not None else []).append,
    )
    return RegistryClient(options).endpoint(host)


def answers(*sequence: Answer) -> Respond:
    """Answers the requests with `sequence` in order, then with its last answer."""
    remaining: Iterator[Answer] = iter(sequence)
    last = sequence[-1]

    def respond(_: Recorded) -> Answer:
        return next(remaining, last)

    return respond


def get(endpoint: Endpoint, path: str = "/v2/esb/api/manifests/x", **kwargs):
    return endpoint.request("GET", path, scopes=[pull_scope("esb/api")], ok=(200,), **kwargs)


@pytest.mark.parametrize(
    "policy, delays",
    [
        pytest.param(RetryPolicy(), [0.5, 1.0, 2.0, 4.0], id="default"),
        pytest.param(
            RetryPolicy(attempts=6, first_delay_seconds=1, max_delay_seconds=3),
            [1, 2, 3, 3, 3],
            id="capped",
        ),
        pytest.param(RetryPolicy(attempts=1), [], id="no-retries"),
    ],
)
def test_retry_delays(policy: RetryPolicy, delays: list[float]) -> None:
    assert policy.delays() == delays


def test_retries_5xx_with_backoff(scripted_server: StartServer) -> None:
    server = scripted_server(answers(Answer(500), Answer(503), Answer(200, body=b"ok")))
    sleeps: list[float] = []
    assert get(endpoint_for(server.host, sleeps=sleeps)).content == b"ok"
    assert sleeps == [0.01, 0.02]
    assert len(server.requests) == 3


def test_gives_up_after_the_last_attempt(scripted_server: StartServer) -> None:
    server = scripted_server(answers(registry_errors(502, "UNAVAILABLE", "backend down")))
    with pytest.raises(TransientRegistryError) as error:
        get(endpoint_for(server.host))
    assert str(error.value) == (
        f"{server.host} failed GET /v2/esb/api/manifests/x: 502 Bad Gateway (UNAVAILABLE: backend down). "
        "(failed 3 times)"
    )
    assert len(server.requests) == FAST_RETRIES.attempts


def test_request_without_retries(scripted_server: StartServer) -> None:
    server = scripted_server(answers(Answer(500)))
    with pytest.raises(TransientRegistryError):
        get(endpoint_for(server.host), retry=False)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Answer(507, body=b"insufficient storage"), id="507"),
        pytest.param(
            registry_errors(
                500, "UNKNOWN", "unknown error; write /var/lib/registry/x: no space left on device"
            ),
            id="enospc",
        ),
    ],
)
def test_full_registry(scripted_server: StartServer, answer: Answer) -> None:
    server = scripted_server(answers(answer))
    with pytest.raises(
        TransientRegistryError,
        match=f"^{server.host} is out of storage: it answered PUT /v2/esb/api/blobs/uploads/u",
    ):
        endpoint_for(server.host).request(
            "PUT",
            "/v2/esb/api/blobs/uploads/u?digest=d",
            scopes=[push_scope("esb/api")],
            ok=(201,),
            body=b"x",
        )
    assert len(server.requests) == FAST_RETRIES.attempts


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Answer(405, body=b"Method not allowed"), id="distribution-read-only"),
        pytest.param(
            registry_errors(405, "UNSUPPORTED", "The operation is unsupported."), id="unsupported"
        ),
        pytest.param(
            registry_errors(503, "DENIED", "The registry is in read-only mode"), id="503-read-only"
        ),
        pytest.param(
            registry_errors(403, "DENIED", "The system is in read only mode."), id="403-read-only"
        ),
    ],
)
def test_read_only_registry(scripted_server: StartServer, answer: Answer) -> None:
    server = scripted_server(answers(answer))
    with pytest.raises(
        RegistryReadOnlyError, match=f"^{server.host} refuses to store anything: it answered POST"
    ):
        endpoint_for(server.host).request(
            "POST", "/v2/esb/api/blobs/uploads/", scopes=[push_scope("esb/api")], ok=(202,)
        )
    assert len(server.requests) == 1, "a read-only registry is not asked again"


def test_not_found(scripted_server: StartServer) -> None:
    server = scripted_server(answers(registry_errors(404, "MANIFEST_UNKNOWN", "manifest unknown")))
    with pytest.raises(RegistryNotFoundError) as error:
        get(endpoint_for(server.host))
    assert str(error.value) == (
        f"{server.host} has no /v2/esb/api/manifests/x: 404 Not Found (MANIFEST_UNKNOWN: manifest unknown)."
    )


def test_unreachable_registry() -> None:
    host = f"127.0.0.1:{free_port()}"
    sleeps: list[float] = []
    with pytest.raises(RegistryUnreachableError) as error:
        get(endpoint_for(host, sleeps=sleeps))
    assert str(error.value).startswith(f"Cannot reach {host} (GET /v2/esb/api/manifests/x): ")
    assert "Connection refused" in str(error.value)
    assert str(error.value).endswith("(failed 3 times)")
    assert sleeps == [0.01, 0.02]


def test_unverified_certificate_names_the_callers_ca_setting(scripted_server: StartServer) -> None:
    """The fix names the setting of whoever runs the tool (here a plain HTTP server, whose answer
    to a TLS handshake fails verification like an unknown CA)."""
    server = scripted_server(answers(Answer(200)))
    options = RegistryOptions(
        ca_bundle_setting='`ca_bundle` of [registries."{registry}"]', retry=FAST_RETRIES
    )
    with RegistryClient(options) as client, pytest.raises(RegistryTlsError) as error:
        get(client.endpoint(server.host))
    assert str(error.value).startswith(f"The TLS certificate of {server.host} does not verify (")
    assert str(error.value).endswith(
        f'trust that CA for this registry with `ca_bundle` of [registries."{server.host}"].'
    )


def basic_registry(username: str, password: str) -> Respond:
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    def respond(request: Recorded) -> Answer:
        if request.headers.get("Authorization") == expected:
            return Answer(200)
        return registry_errors(
            401,
            "UNAUTHORIZED",
            "authentication required",
            **{"WWW-Authenticate": 'Basic realm="test"'},
        )

    return respond


def test_basic_auth(scripted_server: StartServer, tmp_path: Path) -> None:
    server = scripted_server(basic_registry("user", PASSWORD))
    endpoint = endpoint_for(
        server.host, docker_config=auths_config(tmp_path / "c.json", server.host, "user", PASSWORD)
    )
    get(endpoint)
    get(endpoint)
    assert [r.headers.get("Authorization") is not None for r in server.requests] == [
        False,
        True,
        True,
    ]


def test_wrong_password(scripted_server: StartServer, tmp_path: Path) -> None:
    server = scripted_server(basic_registry("user", PASSWORD))
    config = auths_config(tmp_path / "c.json", server.host, "user", "wrong-password")
    with pytest.raises(RegistryAuthError) as error:
        get(endpoint_for(server.host, docker_config=config))
    assert str(error.value) == (
        f"{server.host} refused access to esb/api (pull): 401 Unauthorized (UNAUTHORIZED: authentication "
        f"required); used credentials for {server.host} from {tmp_path}/c.json (auths). Check the "
        f"credentials (e.g. `docker login {server.host}`) and that they grant this access."
    )
    assert "wrong-password" not in str(error.value)


def test_no_credentials(scripted_server: StartServer, tmp_path: Path) -> None:
    server = scripted_server(basic_registry("user", PASSWORD))
    with pytest.raises(RegistryAuthError, match=r"used no credentials \(no Docker config given\)"):
        get(endpoint_for(server.host))
    assert len(server.requests) == 1, "without credentials, a Basic challenge is not answered"


class TokenRegistry:
    """A registry that wants Bearer tokens, and its token server (on the same server, at /token)."""

    def __init__(self, start: StartServer, *, accounts: dict[str, str] | None = None) -> None:
        self.accounts = accounts
        self.valid_tokens: set[str] = set()
        self.issued = 0
        self.server = start(self.respond)

    def respond(self, request: Recorded) -> Answer:
        url = urllib.parse.urlsplit(request.path)
        if url.path == "/token":
            authorization = request.headers.get("Authorization")
            if self.accounts is not None:
                pairs = {
                    "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()
                    for u, p in self.accounts.items()
                }
                if authorization not in pairs:
                    return registry_errors(401, "UNAUTHORIZED", "bad credentials")
            self.issued += 1
            token = f"token-{self.issued}"
            self.valid_tokens.add(token)
            return Answer(
                200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode()
            )
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in self.valid_tokens:
            return Answer(200)
        challenge = f'Bearer realm="{self.server.url}/token",service="test-registry",scope="repository:esb/api:pull"'
        return registry_errors(
            401, "UNAUTHORIZED", "authentication required", **{"WWW-Authenticate": challenge}
        )

    def token_requests(self) -> list[Recorded]:
        return [r for r in self.server.requests if r.path.startswith("/token")]


def test_anonymous_bearer_token(scripted_server: StartServer) -> None:
    registry = TokenRegistry(scripted_server)
    endpoint = endpoint_for(registry.server.host)
    get(endpoint)
    get(endpoint)
    (token_request,) = registry.token_requests()
    assert "Authorization" not in token_request.headers
    assert urllib.parse.parse_qsl(urllib.parse.urlsplit(token_request.path).query) == [
        ("service", "test-registry"),
        ("scope", "repository:esb/api:pull"),
    ]
    assert [
        r.headers.get("Authorization") for r in registry.server.requests if r.path.startswith("/v2")
    ] == [
        None,
        "Bearer token-1",
        "Bearer token-1",
    ]


def test_bearer_token_with_credentials_and_new_scopes(
    scripted_server: StartServer, tmp_path: Path
) -> None:
    registry = TokenRegistry(scripted_server, accounts={"user": PASSWORD})
    config = auths_config(tmp_path / "c.json", registry.server.host, "user", PASSWORD)
    endpoint = endpoint_for(registry.server.host, docker_config=config)
    get(endpoint)
    endpoint.request("HEAD", "/v2/esb/x/blobs/d", scopes=[push_scope("esb/x")], ok=(200,))
    first, second = registry.token_requests()
    assert (
        first.headers["Authorization"]
        == "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    )
    assert ("account", "user") in urllib.parse.parse_qsl(urllib.parse.urlsplit(first.path).query)
    # The second scope's token is asked for at once, without the scope of the first challenge.
    assert urllib.parse.parse_qsl(urllib.parse.urlsplit(second.path).query)[-1:] == [
        ("scope", "repository:esb/x:pull,push")
    ]
    assert len([r for r in registry.server.requests if r.path.startswith("/v2")]) == 3


def test_expired_token_is_renewed(scripted_server: StartServer) -> None:
    registry = TokenRegistry(scripted_server)
    endpoint = endpoint_for(registry.server.host)
    get(endpoint)
    registry.valid_tokens.clear()
    get(endpoint)
    assert registry.issued == 2


def test_token_server_refuses(scripted_server: StartServer, tmp_path: Path) -> None:
    registry = TokenRegistry(scripted_server, accounts={"user": PASSWORD})
    config = auths_config(tmp_path / "c.json", registry.server.host, "user", "wrong-password")
    with pytest.raises(RegistryAuthError) as error:
        get(endpoint_for(registry.server.host, docker_config=config))
    host = registry.server.host
    assert str(error.value).startswith(
        f"{host} (through its token server {host}) refused access to esb/api (pull): 401 Unauthorized "
        f"(UNAUTHORIZED: bad credentials); used credentials for {host} from {tmp_path}/c.json (auths)."
    )
    assert "wrong-password" not in str(error.value)


def test_netrc_is_not_used(
    scripted_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = scripted_server(answers(Answer(200)))
    (tmp_path / "netrc").write_text("machine 127.0.0.1 login user password from-netrc\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    get(endpoint_for(server.host))
    assert "Authorization" not in server.requests[0].headers


@pytest.mark.parametrize(
    "mirror, message",
    [
        pytest.param(
            "http://mirror.example:5000",
            "uses plain HTTP: allow that explicitly by listing mirror.example:5000 as an insecure registry",
            id="plain-http",
        ),
        pytest.param(
            "https://mirror.example/v2/proxy", "is not a URL of the form https://host", id="path"
        ),
        pytest.param("ftp://mirror.example", "is not a URL of the form https://host", id="scheme"),
    ],
)
def test_invalid_mirrors(mirror: str, message: str) -> None:
    client = RegistryClient(RegistryOptions(mirrors={"docker.io": [mirror]}))
    with pytest.raises(RegistryError, match=message):
        client.pull_endpoints("docker.io")


def test_endpoints() -> None:
    options = RegistryOptions(
        insecure_registries=frozenset({"127.0.0.1:5001"}),
        mirrors={"docker.io": ["mirror.example:5000", "http://127.0.0.1:5001"]},
    )
    with RegistryClient(options) as client:
        assert [
            (e.base_url, e.registry, e.description) for e in client.pull_endpoints("docker.io")
        ] == [
            (
                "https://mirror.example:5000",
                "mirror.example:5000",
                "the mirror mirror.example:5000 of docker.io",
            ),
            (
                "http://127.0.0.1:5001",
                "127.0.0.1:5001",
                "the mirror http://127.0.0.1:5001 of docker.io",
            ),
            ("https://registry-1.docker.io", "docker.io", "docker.io"),
        ]
        assert client.endpoint("127.0.0.1:5001").base_url == "http://127.0.0.1:5001"


def test_unreadable_ca_bundle(tmp_path: Path) -> None:
    client = RegistryClient(
        RegistryOptions(ca_bundles={"registry.example": tmp_path / "absent.pem"})
    )
    with pytest.raises(
        RegistryError,
        match=f"Cannot load the CA bundle {tmp_path}/absent.pem given for registry.example",
    ):
        client.endpoint("registry.example")


def test_a_registry_that_never_answers_times_out_once(silent_server: SilentServer) -> None:
    options = RegistryOptions(
        insecure_registries=frozenset({silent_server.host}),
        retry=FAST_RETRIES,
        read_timeout_seconds=0.3,
        read_timeout_setting="`push_read_timeout`",
    )
    with pytest.raises(RegistryTimeoutError) as error:
        get(RegistryClient(options).endpoint(silent_server.host))
    assert str(error.value) == (
        f"{silent_server.host} did not answer GET /v2/esb/api/manifests/x within 0.3 s. If the "
        "registry is merely slow, raise the read timeout with `push_read_timeout`."
    )
    assert len(silent_server.connections) == 1, "a timeout is not retried"


def test_the_deadline_shortens_the_wait_and_names_its_setting(silent_server: SilentServer) -> None:
    now = [100.0]
    options = RegistryOptions(
        insecure_registries=frozenset({silent_server.host}),
        read_timeout_seconds=30,
        deadline_seconds=0.3,
        deadline_setting="`push_deadline`",
        clock=lambda: now[0],
    )
    endpoint = RegistryClient(options).endpoint(silent_server.host)
    with pytest.raises(RegistryDeadlineError) as error:
        get(endpoint)
    assert str(error.value) == (
        f"{silent_server.host}: the deadline of 0.3 s ran out while waiting for the answer to GET "
        "/v2/esb/api/manifests/x. If the registry is merely slow (or the image large), raise the "
        "deadline with `push_deadline`."
    )
    now[0] += 0.3
    with pytest.raises(RegistryDeadlineError, match="ran out while about to send GET "):
        get(endpoint)
    assert len(silent_server.connections) == 1, "nothing is sent after the deadline"


def test_retries_stop_at_the_deadline(scripted_server: StartServer) -> None:
    server = scripted_server(answers(Answer(503)))
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    options = RegistryOptions(
        insecure_registries=frozenset({server.host}),
        retry=RetryPolicy(attempts=5, first_delay_seconds=1, max_delay_seconds=8),
        deadline_seconds=2.5,
        sleep=sleep,
        clock=lambda: now[0],
    )
    with pytest.raises(RegistryDeadlineError) as error:
        get(RegistryClient(options).endpoint(server.host))
    # 1 s, then 2 s would end after the deadline: two attempts, one wait.
    assert sleeps == [1]
    assert len(server.requests) == 2
    retrying = f"while waiting to retry after: {server.host} failed GET /v2/esb/api/manifests/x: "
    assert retrying in str(error.value)

"""Requests to registries: endpoints, TLS trust, authentication, retries, and errors users can act on.

- HTTPS always, verified against the system's CAs plus the registry's own CA bundle when one is
  given (as Docker adds `certs.d/<registry>/ca.crt` to the system's); plain HTTP only for a
  registry the options list as insecure.
- Credentials are looked up only when a registry asks for them (a 401), and are sent only to
  that registry's origin and its token server; a redirect to other storage carries none.
- Connection failures, 429 and 5xx answers are retried with exponential backoff; an operation
  that is not safe to repeat request by request (an upload) is retried whole by its caller.
- Every request has a connect timeout and a read timeout (the longest wait for data). A timeout
  is not retried: a server that accepts connections and never answers would otherwise cost every
  attempt's full wait. A client may also have a deadline, by which all of its requests, retries
  and waits between them are over.
- Pulls may go through mirrors, tried in order before the registry itself.
"""

from __future__ import annotations

import ssl
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from imagetool.errors import ToolError
from imagetool.registry.auth import (
    Challenge,
    Scope,
    basic_authorization,
    parse_challenges,
    token_from_response,
    token_query,
)
from imagetool.registry.credentials import CredentialLookup, DockerConfig
from imagetool.registry.reference import DOCKER_HUB, parse_registry

# Docker Hub's API is not at the host its references name.
_DOCKER_HUB_API = "registry-1.docker.io"
_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504, 507})
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_READ_ONLY_HINTS = ("read-only", "read only", "readonly")
_NO_SPACE_HINTS = ("no space left on device", "insufficient storage", "quota exceeded")
_MAX_DETAIL_CHARACTERS = 300
_CHUNK_SIZE = 1 << 20

T = TypeVar("T")
Body = bytes | Callable[[], BinaryIO] | None
"""A request's body: bytes, or a function opening a file (called anew for every send)."""


class RegistryError(ToolError, RuntimeError):
    """A registry refused or failed a request; the message names the registry and the fix."""


class RegistryAuthError(RegistryError):
    """401/403: the message names the registry, the repositories, and the credentials' source."""


class RegistryNotFoundError(RegistryError):
    """404: the registry has no such repository, manifest or blob."""


class RegistryTlsError(RegistryError):
    """The registry's certificate does not verify."""


class RegistryReadOnlyError(RegistryError):
    """The registry refuses writes (maintenance or read-only mode)."""


class TransientRegistryError(RegistryError):
    """A failure that may pass: connection errors, 429, 5xx. Retried; `attempts` says how often."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = 1

    def __str__(self) -> str:
        return (
            self.message if self.attempts == 1 else f"{self.message} (failed {self.attempts} times)"
        )


class RegistryUnreachableError(TransientRegistryError):
    """No HTTP answer: connection refused or reset."""


class RegistryTimeoutError(RegistryError):
    """The registry did not connect or answer within a timeout; the message names the setting."""


class RegistryDeadlineError(RegistryTimeoutError):
    """The client's deadline passed; the message names the setting that sets it."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often to try an operation that fails transiently, and how long to wait in between."""

    attempts: int = 5
    first_delay_seconds: float = 0.5
    """Doubled after each failure, up to `max_delay_seconds`."""
    max_delay_seconds: float = 8.0

    def delays(self) -> list[float]:
        """The waits between attempts: one fewer than `attempts`."""
        return [
            min(self.first_delay_seconds * 2**retry, self.max_delay_seconds)
            for retry in range(self.attempts - 1)
        ]


def retrying(
    policy: RetryPolicy,
    wait: Callable[[float, TransientRegistryError], None],
    operation: Callable[[], T],
) -> T:
    """`operation()`, tried again after each `TransientRegistryError` as `policy` allows;
    `wait(delay, error)` before each retry."""
    for delay in policy.delays():
        try:
            return operation()
        except TransientRegistryError as e:
            wait(delay, e)
    try:
        return operation()
    except TransientRegistryError as e:
        e.attempts = max(policy.attempts, 1)
        raise


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries: keys are registry names as references write them (`host[:port]`)."""

    docker_config: DockerConfig | None = None
    """Where credentials come from; None: anonymous everywhere."""
    ca_bundles: Mapping[str, Path] = field(default_factory=dict)
    """PEM CA bundles trusted, besides the system's, for each registry."""
    insecure_registries: Collection[str] = frozenset()
    """Registries reached over plain HTTP."""
    mirrors: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Mirror URLs (`https://host[:port]`) tried in order, for pulls, before each registry."""
    ca_bundle_setting: str = "--registry-ca {registry}=<PEM file>"
    """How the caller gives a registry's CA bundle, for the message of a certificate that does
    not verify; `{registry}` stands for the registry."""
    insecure_setting: str = "--insecure-registry {registry}"
    """How the caller allows plain HTTP to a registry, for the message of a plain-HTTP mirror that
    is not allowed; `{registry}` stands for the registry."""
    retry: RetryPolicy = RetryPolicy()
    connect_timeout_seconds: float = 10.0
    """For connecting to a server (TCP and TLS handshake)."""
    read_timeout_seconds: float = 60.0
    """For each wait for data from a server, e.g. for the answer to a request."""
    deadline_seconds: float | None = None
    """By when, counted from the client's creation, every request is over; None: no deadline."""
    connect_timeout_setting: str = "--connect-timeout SECONDS"
    read_timeout_setting: str = "--read-timeout SECONDS"
    deadline_setting: str = "--push-deadline SECONDS"
    """How the caller sets each limit, for the message of a request that exceeds it."""
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


class RegistryClient:
    """Endpoints for registries and their mirrors, each with its own connections and tokens."""

    def __init__(self, options: RegistryOptions) -> None:
        self.options = options
        self._endpoints: dict[str, Endpoint] = {}
        self._deadline = (
            None if options.deadline_seconds is None else options.clock() + options.deadline_seconds
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()

    def endpoint(self, registry: str) -> Endpoint:
        """The registry itself."""
        scheme = "http" if registry in self.options.insecure_registries else "https"
        host = _DOCKER_HUB_API if registry == DOCKER_HUB else registry
        return self._endpoint(f"{scheme}://{host}", registry, registry)

    def pull_endpoints(self, registry: str) -> list[Endpoint]:
        """The registry's mirrors in order, then the registry itself."""
        mirrors = [self._mirror(url, registry) for url in self.options.mirrors.get(registry, ())]
        return [*mirrors, self.endpoint(registry)]

    def _mirror(self, url: str, registry: str) -> Endpoint:
        parsed = urllib.parse.urlsplit(url if "://" in url else f"https://{url}")
        if parsed.scheme not in ("http", "https") or parsed.path.strip("/") or parsed.query:
            raise RegistryError(
                f"The mirror {url!r} of {registry} is not a URL of the form https://host[:port]."
            )
        host = parse_registry(parsed.netloc)
        if parsed.scheme == "http" and host not in self.options.insecure_registries:
            raise RegistryError(
                f"The mirror {url} of {registry} uses plain HTTP: allow that explicitly by listing "
                f"{host} as an insecure registry "
                f"({self.options.insecure_setting.replace('{registry}', host)})."
            )
        return self._endpoint(f"{parsed.scheme}://{host}", host, f"the mirror {url} of {registry}")

    def _endpoint(self, base_url: str, registry: str, description: str) -> Endpoint:
        if base_url not in self._endpoints:
            self._endpoints[base_url] = Endpoint(
                base_url, registry, description, self.options, self._deadline
            )
        return self._endpoints[base_url]


class Endpoint:
    """One registry server at one base URL, e.g. `https://127.0.0.1:5000`."""

    def __init__(
        self,
        base_url: str,
        registry: str,
        description: str,
        options: RegistryOptions,
        deadline: float | None = None,
    ) -> None:
        self.base_url = base_url
        self.registry = registry
        """The name credentials and CA bundles are looked up by."""
        self.description = description
        """How messages name it: the registry, or `the mirror URL of REGISTRY`."""
        self._options = options
        self._deadline = deadline
        """When every request must be over, by `options.clock`; None: never."""
        self._session = _session(_trust(registry, options.ca_bundles.get(registry)))
        self._credentials: CredentialLookup | None = None
        self._basic = False
        self._bearer: Challenge | None = None
        self._tokens: dict[tuple[Scope, ...], str] = {}

    def close(self) -> None:
        self._session.close()

    def url(self, path: str) -> str:
        return urllib.parse.urljoin(self.base_url, path)

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: Sequence[Scope],
        ok: Collection[int],
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send a request (retried when `retry`), authenticating as the registry demands.

        `url` is a path under the base URL or an absolute URL (an upload's `Location`).
        Returns the answer if its status is in `ok`; raises a `RegistryError` otherwise.
        """
        absolute = self.url(url)

        def attempt() -> requests.Response:
            response = self._send_authenticated(
                method, absolute, scopes, headers or {}, body, stream
            )
            if response.status_code in ok:
                return response
            error = self._error(method, absolute, response, scopes)
            response.close()
            raise error

        if not retry:
            return attempt()
        return self.with_retries(attempt)

    def body_chunks(self, response: requests.Response, what: str) -> Iterator[bytes]:
        """The body of a streamed answer, as sent (no Content-Encoding undone, since digests are of
        the stored bytes); a broken connection is a `RegistryUnreachableError`, to be retried."""
        try:
            yield from response.raw.stream(_CHUNK_SIZE, decode_content=False)
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as e:
            raise RegistryUnreachableError(
                f"Lost the connection to {self.description} while downloading {what}: {e}."
            ) from e

    def with_retries(self, operation: Callable[[], T]) -> T:
        """`operation()` retried by this endpoint's policy (see `retrying`), within its deadline."""
        return retrying(self._options.retry, self._wait_to_retry, operation)

    def _wait_to_retry(self, delay: float, error: TransientRegistryError) -> None:
        remaining = self._remaining()
        if remaining is not None and remaining <= delay:
            raise self._deadline_error(f"waiting to retry after: {str(error).rstrip('.')}")
        self._options.sleep(delay)

    def _remaining(self) -> float | None:
        """Seconds left before the deadline; None without one."""
        return None if self._deadline is None else self._deadline - self._options.clock()

    def _deadline_error(self, doing: str) -> RegistryDeadlineError:
        options = self._options
        return RegistryDeadlineError(
            f"{self.description}: the deadline of {options.deadline_seconds:g} s ran out while "
            f"{doing}. If the registry is merely slow (or the image large), raise the deadline "
            f"with {options.deadline_setting}."
        )

    def _send_authenticated(
        self,
        method: str,
        url: str,
        scopes: Sequence[Scope],
        headers: Mapping[str, str],
        body: Body,
        stream: bool,
    ) -> requests.Response:
        same_origin = _origin(url) == _origin(self.base_url)
        authorization = self._authorization(scopes) if same_origin else None
        response = self._send(method, url, headers, authorization, body, stream)
        if response.status_code != 401 or not same_origin:
            return response
        retry_with = self._answer_challenge(response, scopes, sent=authorization)
        if retry_with is None:
            return response
        response.close()
        return self._send(method, url, headers, retry_with, body, stream)

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        authorization: str | None,
        body: Body,
        stream: bool,
    ) -> requests.Response:
        all_headers = {**headers, **({"Authorization": authorization} if authorization else {})}
        options = self._options
        request = f"{method} {_path(url)}"
        connect, read = options.connect_timeout_seconds, options.read_timeout_seconds
        remaining = self._remaining()
        if remaining is not None:
            if remaining <= 0:
                raise self._deadline_error(f"about to send {request}")
            connect, read = min(connect, remaining), min(read, remaining)
        data = body() if callable(body) else body
        try:
            return self._session.request(
                method,
                url,
                headers=all_headers,
                data=data,
                stream=stream,
                timeout=(connect, read),
                # Redirects (e.g. of blobs to object storage) are for reads; requests drops the
                # Authorization header when one leads to another host.
                allow_redirects=method in ("GET", "HEAD"),
            )
        except requests.exceptions.SSLError as e:
            raise self._tls_error(e) from e
        except requests.Timeout as e:
            connecting = isinstance(e, requests.ConnectTimeout)
            waited = connect if connecting else read
            if remaining is not None and waited >= remaining:
                raise self._deadline_error(f"waiting for the answer to {request}") from e
            raise RegistryTimeoutError(
                f"{self.description} did not "
                + (f"accept a connection ({request})" if connecting else f"answer {request}")
                + f" within {waited:g} s. If the registry is merely slow, raise the "
                + ("connect" if connecting else "read")
                + " timeout with "
                + (options.connect_timeout_setting if connecting else options.read_timeout_setting)
                + "."
            ) from e
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as e:
            raise RegistryUnreachableError(
                f"Cannot reach {self.description} ({request}): {_reason(e)}."
            ) from e
        finally:
            close = getattr(data, "close", None)
            if close is not None:
                close()

    def _authorization(self, scopes: Sequence[Scope]) -> str | None:
        """The Authorization header known to work for these scopes, without asking the registry."""
        if self._basic:
            credentials = self._lookup().credentials
            return basic_authorization(credentials) if credentials else None
        if self._bearer is not None:
            key = tuple(sorted(scopes))
            if key not in self._tokens:
                self._tokens[key] = self._fetch_token(self._bearer, key)
            return f"Bearer {self._tokens[key]}"
        return None

    def _answer_challenge(
        self, response: requests.Response, scopes: Sequence[Scope], *, sent: str | None
    ) -> str | None:
        """The Authorization header to retry a 401 with, or None when retrying cannot help."""
        challenges = {
            c.scheme: c for c in parse_challenges(response.headers.get("WWW-Authenticate", ""))
        }
        if "bearer" in challenges:
            # A token we sent may have expired, or lack a scope the registry now names: get a
            # new one (the caller retries only once). Later requests get tokens without asking,
            # for their own scopes only.
            challenge = challenges["bearer"]
            self._bearer = Challenge(
                "bearer", {k: v for k, v in challenge.parameters.items() if k != "scope"}
            )
            key = tuple(sorted(scopes))
            self._tokens[key] = self._fetch_token(challenge, key)
            return f"Bearer {self._tokens[key]}"
        if "basic" in challenges and sent is None:
            self._basic = True
            credentials = self._lookup().credentials
            return basic_authorization(credentials) if credentials else None
        return None

    def _fetch_token(self, challenge: Challenge, scopes: tuple[Scope, ...]) -> str:
        realm = challenge.parameters.get("realm", "")
        if urllib.parse.urlsplit(realm).scheme != "https" and not (
            realm.startswith("http://") and self.base_url.startswith("http://")
        ):
            raise RegistryError(
                f"{self.description} sends clients to the token server {realm!r}, which is not an "
                "HTTPS URL; refusing to send credentials there."
            )
        credentials = self._lookup().credentials
        authorization = basic_authorization(credentials) if credentials else None
        query = token_query(challenge, scopes, credentials)

        def attempt() -> str:
            url = f"{realm}{'&' if '?' in realm else '?'}{urllib.parse.urlencode(query)}"
            response = self._send("GET", url, {}, authorization, None, False)
            if response.status_code in (401, 403):
                raise self._auth_error(
                    response, scopes, via=f" (through its token server {_host(realm)})"
                )
            if response.status_code != 200:
                raise self._error("GET", url, response, scopes)
            try:
                token = token_from_response(response.json())
            except ValueError:
                token = None
            if token is None:
                raise RegistryError(
                    f"The token server {_host(realm)} of {self.description} answered without a token."
                )
            return token

        return self.with_retries(attempt)

    def _lookup(self) -> CredentialLookup:
        if self._credentials is None:
            config = self._options.docker_config
            self._credentials = (
                config.lookup(self.registry)
                if config is not None
                else CredentialLookup(None, "no credentials (no Docker config given)")
            )
        return self._credentials

    def _error(
        self, method: str, url: str, response: requests.Response, scopes: Sequence[Scope]
    ) -> RegistryError:
        status = response.status_code
        errors = _registry_errors(response)
        detail = _describe(status, response.reason, errors)
        text = detail.lower()
        request = f"{method} {_path(url)}"
        read_only = (
            status == 405
            or any(code == "UNSUPPORTED" for code, _ in errors)
            or any(hint in text for hint in _READ_ONLY_HINTS)
        )
        if method in _WRITE_METHODS and read_only:
            return RegistryReadOnlyError(
                f"{self.description} refuses to store anything: it answered {request} with {detail}. "
                "It is read-only (e.g. in maintenance mode); push again once it accepts writes."
            )
        if status in (401, 403):
            return self._auth_error(response, scopes, via="")
        if status == 404:
            return RegistryNotFoundError(f"{self.description} has no {_path(url)}: {detail}.")
        if status == 507 or any(hint in text for hint in _NO_SPACE_HINTS):
            return TransientRegistryError(
                f"{self.description} is out of storage: it answered {request} with {detail}. Free "
                "space on the registry (or ask its operators to), then try again."
            )
        if status in _RETRIED_STATUSES:
            return TransientRegistryError(f"{self.description} failed {request}: {detail}.")
        return RegistryError(f"{self.description} refused {request}: {detail}.")

    def _auth_error(
        self, response: requests.Response, scopes: Sequence[Scope], *, via: str
    ) -> RegistryAuthError:
        access = ", ".join(f"{scope.repository} ({'+'.join(scope.actions)})" for scope in scopes)
        detail = _describe(response.status_code, response.reason, _registry_errors(response))
        return RegistryAuthError(
            f"{self.description}{via} refused access to {access or 'its API'}: {detail}; used "
            f"{self._lookup().source}. Check the credentials (e.g. `docker login {self.registry}`) "
            "and that they grant this access."
        )

    def _tls_error(self, error: requests.exceptions.SSLError) -> RegistryTlsError:
        return RegistryTlsError(
            f"The TLS certificate of {self.description} does not verify ({_reason(error)}). If it "
            "is signed by a private CA, trust that CA for this registry with "
            f"{self._options.ca_bundle_setting.replace('{registry}', self.registry)}."
        )


def _trust(registry: str, ca_bundle: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_bundle is not None:
        try:
            context.load_verify_locations(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as e:
            raise RegistryError(
                f"Cannot load the CA bundle {ca_bundle} given for {registry}: {e}."
            ) from e
    return context


class _TrustingAdapter(HTTPAdapter):
    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, ssl_context=self._context, **kwargs)

    # Through a proxy (HTTPS_PROXY), the same CAs vouch for the registry.
    def proxy_manager_for(self, proxy, **proxy_kwargs):
        return super().proxy_manager_for(proxy, ssl_context=self._context, **proxy_kwargs)


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def _session(context: ssl.SSLContext) -> requests.Session:
    session = requests.Session()
    session.mount("https://", _TrustingAdapter(context))
    # Without an `auth` of its own, requests would take credentials from ~/.netrc and replace
    # the Authorization header chosen here.
    session.auth = _no_netrc
    session.headers["User-Agent"] = "esb-imagetool"
    return session


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc


def _path(url: str) -> str:
    """A URL without scheme, host or query (upload URLs carry opaque state in theirs)."""
    return urllib.parse.urlsplit(url).path


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _registry_errors(response: requests.Response) -> list[tuple[str, str]]:
    """The `(code, message)` pairs of a registry's error answer; for other bodies, their text."""
    try:
        errors = response.json()["errors"]
    except (ValueError, KeyError, TypeError, requests.exceptions.RequestException):
        text = " ".join(response.text.split()) if response.content else ""
        return [("", text[:_MAX_DETAIL_CHARACTERS])] if text else []
    pairs = []
    for error in errors if isinstance(errors, list) else ():
        if isinstance(error, Mapping):
            message = str(error.get("message", ""))
            if error.get("detail"):
                message += f" ({str(error['detail'])[:_MAX_DETAIL_CHARACTERS]})"
            pairs.append((str(error.get("code", "UNKNOWN")), message))
    return pairs


def _describe(status: int, reason: str | None, errors: Sequence[tuple[str, str]]) -> str:
    """`404 Not Found (MANIFEST_UNKNOWN: manifest unknown)`: the status and the registry's errors."""
    details = "; ".join(f"{code}: {message}" if code else message for code, message in errors)
    status_line = f"{status} {reason or ''}".strip()
    return f"{status_line} ({details})" if details else status_line


def _reason(error: BaseException) -> str:
    """The innermost cause of a requests error, e.g. `[Errno 111] Connection refused`."""
    while error.__context__ is not None:
        error = error.__context__
    return str(error) or type(error).__name__

"""Bad inputs and faults, as a table: each case breaks one thing in a built copy of the checkout,
runs one goal, and asserts the exit code, what the message names, that no traceback is shown, and
the state of `dist/` and of the registry afterwards; then it puts the checkout back.

One copy serves every case, with its own pantsd, so that a case costs a warm run, not a Pants
start-up. `dist/` is compared with the outputs of the build the copy started with: a failed run
may add complete blobs, and must change nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest
from docker import DockerClient
from docker.models.images import Image

from integration.checkouts import Checkout, PantsRun, scratch_directory
from integration.containers import run_to_exit

# The module-scoped fixture that loads every built image into the engine, shared, not copied.
from integration.test_package_and_run import API as IMAGE_API
from integration.test_package_and_run import loaded_images  # noqa: F401
from integration.test_publish import PublishCheckout
from integration.test_upstream_base import SharedRegistry, test_registry  # noqa: F401

API, WORKER, SIGNER = "services/api", "services/worker", "services/signer"
API_TARGET = f"{API}:api"
BASE = "base"
BASE_TARGET = f"{BASE}:esb-service-base"
BASE_LOCK = f"{BASE}/packages.lock.json"
REPOSITORIES = ("esb/service-base", "esb/api", "esb/worker", "esb/signer")


class Edits:
    """Changes to the checkout that `restore` undoes: each path's first state is kept."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._originals: dict[str, bytes | str | None] = {}

    def _keep(self, relative: str) -> Path:
        path = self.root / relative
        if relative not in self._originals:
            if path.is_symlink():
                self._originals[relative] = os.readlink(path)
            elif path.is_file():
                self._originals[relative] = path.read_bytes()
            else:
                self._originals[relative] = None
        return path

    def write(self, relative: str, content: str | bytes) -> None:
        path = self._keep(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    def substitute(self, relative: str, old: str, new: str) -> None:
        text = (self.root / relative).read_text()
        assert old in text, f"{old!r} is not in {relative}"
        self.write(relative, text.replace(old, new, 1))

    def append(self, relative: str, text: str) -> None:
        self.write(relative, (self.root / relative).read_text() + text)

    def symlink(self, relative: str, target: str) -> None:
        path = self._keep(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)

    def remove(self, relative: str) -> None:
        self._keep(relative).unlink()

    def fifo(self, relative: str) -> None:
        path = self._keep(relative)
        os.mkfifo(path)

    def restore(self) -> None:
        # Deepest first, so that a link is removed before the directory it lies in.
        for relative in sorted(self._originals, key=lambda r: r.count("/"), reverse=True):
            original, path = self._originals[relative], self.root / relative
            if path.is_symlink() or path.exists():
                path.unlink()
            if isinstance(original, str):
                path.symlink_to(original)
            elif isinstance(original, bytes):
                path.write_bytes(original)
        self._originals.clear()


@dataclass(frozen=True)
class Case:
    id: str
    edit: Callable[[Edits], object]
    goal: tuple[str, ...]
    expected: tuple[str, ...]
    """Substrings of the run's output: the target, file or field, and the fix."""
    exit_code: int = 1
    options: tuple[str, ...] = field(default=())


def field_case(id: str, old: str, new: str, *expected: str, goal: str = "package") -> Case:
    """A case that changes one field of api's BUILD file."""
    return Case(
        id,
        lambda edits: edits.substitute(f"{API}/BUILD", old, new),
        (goal, f"{API}:"),
        (API_TARGET, *expected),
    )


SHIP_ALL_OF_SRC = 'sources=["pyproject.toml", "uv.lock", "src/**/*"],'


def shipped_file_case(id: str, relative: str, content: str | bytes, *expected: str) -> Case:
    """A case that ships every file under api's `src/`, one of them `relative` (under `src/`)."""

    def apply(edits: Edits) -> None:
        edits.substitute(f"{API}/BUILD", 'user="esb",', f'user="esb", {SHIP_ALL_OF_SRC}')
        edits.write(f"{API}/src/{relative}", content)

    return Case(id, apply, ("lint", f"{API}:"), (f"{API}/src/{relative}", *expected))


def pyproject_case(id: str, old: str, new: str, *expected: str, goal: str = "package") -> Case:
    return Case(
        id,
        lambda edits: edits.substitute(f"{API}/pyproject.toml", old, new),
        (goal, f"{API}:"),
        expected,
    )


def base_lock_case(id: str, edit: Callable[[str], str], *expected: str) -> Case:
    def apply(edits: Edits) -> None:
        edits.write(BASE_LOCK, edit((edits.root / BASE_LOCK).read_text()))

    return Case(id, apply, ("package", f"{BASE}:"), (BASE_LOCK, *expected))


def _locked(change: Callable[[list[dict]], None]) -> Callable[[str], str]:
    """An edit of the base lock's package entries."""

    def edit(text: str) -> str:
        lock = json.loads(text)
        change(lock["architectures"]["amd64"]["packages"])
        return json.dumps(lock, indent=2) + "\n"

    return edit


def _named(packages: list[dict], name: str) -> dict:
    return next(package for package in packages if package["name"] == name)


_drop_libc6 = _locked(lambda packages: packages.remove(_named(packages, "libc6")))
_wrong_sha256 = _locked(lambda packages: _named(packages, "bash").update(sha256="0" * 64))
# A version the archive dropped: a URL it no longer serves, pinning a file no cache holds (a
# file whose sha256 the cache of `.deb`s holds is not downloaded again, whatever its URL).
_missing_deb = _locked(
    lambda packages: _named(packages, "bash").update(
        url=_named(packages, "bash")["url"].replace("bash_", "bash-esb-no-such-file_"),
        sha256="1" * 64,
    )
)


def _one_output_path_for_two_images(edits: Edits) -> None:
    edits.substitute(
        f"{WORKER}/BUILD",
        'repository="esb/worker",',
        'repository="esb/worker", output_path="same",',
    )
    edits.substitute(
        f"{API}/BUILD", 'repository="esb/api",', 'repository="esb/api", output_path="same",'
    )


def _link_out_through_another_link(edits: Edits) -> None:
    edits.write(f"{API}/data/keep.txt", "")
    edits.symlink(f"{API}/src/esb_api/up", "../../data")
    edits.symlink(f"{API}/src/esb_api/leak.py", "up/../../../worker/src/esb_worker/__main__.py")


CASES = [
    # BUILD fields.
    field_case(
        "repository upper case", 'repository="esb/api"', 'repository="esb/API"', "`repository`"
    ),
    field_case(
        "tag with a space",
        'repository="esb/api",',
        'repository="esb/api", image_tags=["bad tag"],',
        "`image_tags`",
        "bad tag",
    ),
    field_case("port out of range", '"8080/tcp"', '"99999/tcp"', "`ports`", "99999"),
    field_case("port protocol", '"8080/tcp"', '"8080/http"', "`ports`", "8080/http"),
    field_case(
        "environment name", 'environment={"PORT"', 'environment={"1PORT"', "`environment`", "1PORT"
    ),
    field_case("user syntax", 'user="esb"', 'user="esb:x:y"', "`user`", "esb:x:y"),
    field_case(
        "output_path leaves dist",
        'repository="esb/api",',
        'repository="esb/api", output_path="../outside/api",',
        "`output_path`",
        "../outside/api",
    ),
    field_case(
        "output_path absolute",
        'repository="esb/api",',
        'repository="esb/api", output_path="/tmp/api",',
        "`output_path`",
        "/tmp/api",
    ),
    field_case("empty command", 'command=["python", "-m", "esb_api"]', "command=[]", "`command`"),
    field_case("unknown user", 'user="esb"', 'user="nosuchuser"', "`user`", "nosuchuser"),
    field_case(
        "unknown stop signal",
        'repository="esb/api",',
        'repository="esb/api", stop_signal="SIGFOO",',
        "`stop_signal`",
        "SIGFOO",
    ),
    field_case("empty base", 'base="//base:esb-service-base"', 'base=""', "`base`"),
    field_case(
        "base that does not exist",
        'base="//base:esb-service-base"',
        'base="//base:no-such-base"',
        "no-such-base",
    ),
    field_case("unknown field", 'user="esb",', 'user="esb", no_such_field=1,', "no_such_field"),
    field_case(
        "source glob leaves the directory",
        'user="esb",',
        'user="esb", sources=["../worker/**/*.py"],',
        "../worker",
    ),
    field_case(
        "dependency on another service",
        'user="esb",',
        'user="esb", dependencies=["services/worker:worker"],',
        "services/worker:worker",
        "`dependencies`",
    ),
    Case(
        "two images with one output_path",
        _one_output_path_for_two_images,
        ("package", "::"),
        (API_TARGET, f"{WORKER}:worker", "output_path"),
    ),
    Case(
        "two images with one repository",
        lambda edits: edits.substitute(
            f"{SIGNER}/BUILD", 'repository="esb/signer"', 'repository="esb/api"'
        ),
        ("package", "::"),
        (API_TARGET, f"{SIGNER}:signer", "repository"),
    ),
    Case(
        "invalid Debian package name",
        lambda edits: edits.substitute(f"{BASE}/BUILD", '"bash",', '"Bash_Shell",'),
        ("package", f"{BASE}:"),
        (BASE_TARGET, "`packages`", "Bash_Shell"),
    ),
    Case(
        "base package not in the lock",
        lambda edits: edits.substitute(f"{BASE}/BUILD", '"bash",', '"bash", "curl",'),
        ("package", f"{BASE}:"),
        (BASE_TARGET, BASE_LOCK, "pants esb-lock"),
    ),
    # Service files.
    pyproject_case(
        "merge-conflict markers in pyproject.toml",
        "dependencies = [",
        "<<<<<<< HEAD\ndependencies = [",
        f"{API}/pyproject.toml",
        "conflict",
    ),
    pyproject_case(
        "dependency missing from the lock",
        "dependencies = [",
        'dependencies = [\n  "esb-no-such-distribution>=1",',
        f"{API}/uv.lock",
        "pants esb-lock",
        goal="lint",
    ),
    pyproject_case(
        "requires-python excludes the base's Python",
        'requires-python = ">=3.11"',
        'requires-python = ">=3.13"',
        f"{API}/uv.lock",
        "requires-python",
        goal="lint",
    ),
    Case(
        "malformed uv.lock",
        lambda edits: edits.write(f"{API}/uv.lock", "this is [ not toml\n"),
        ("lint", f"{API}:"),
        (f"{API}/uv.lock",),
    ),
    Case(
        "missing uv.lock",
        lambda edits: edits.remove(f"{API}/uv.lock"),
        ("package", f"{API}:"),
        (API_TARGET, "selects no uv.lock in services/api/"),
    ),
    shipped_file_case("private key file", "esb_api/id_rsa", "not really\n", "allowed_secrets"),
    shipped_file_case(
        "private key in a file of any name",
        "esb_api/notes.txt",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
        "private key",
    ),
    shipped_file_case(
        "private key in UTF-16",
        "esb_api/key.txt",
        "-----BEGIN RSA PRIVATE KEY-----\nabc\n".encode("utf-16"),
        "private key",
    ),
    shipped_file_case("an env file", "esb_api/prod.env", "PASSWORD=x\n", "allowed_secrets"),
    shipped_file_case(
        "git credentials", "esb_api/.git-credentials", "https://u:p@h\n", "allowed_secrets"
    ),
    shipped_file_case(
        "AWS secret key in a settings file",
        "esb_api/settings.ini",
        "[default]\naws_secret_access_key = " + "A1b2C3d4E5" * 4 + "\n",
        "allowed_secrets",
    ),
    shipped_file_case(
        "PuTTY key", "esb_api/deploy.ppk", "PuTTY-User-Key-File-3: ssh-ed25519\n", "allowed_secrets"
    ),
    Case(
        "absolute symbolic link",
        lambda edits: edits.symlink(f"{API}/src/esb_api/passwd.py", "/etc/passwd"),
        ("package", f"{API}:"),
        (
            f"{API}/src/esb_api/passwd.py",
            "is a symbolic link to the absolute path `/etc/passwd`",
        ),
    ),
    Case(
        "symbolic link out through another link",
        _link_out_through_another_link,
        ("lint", f"{API}:"),
        (f"{API}/src/esb_api/leak.py", f"{API}/src/esb_api/up"),
    ),
    Case(
        "a FIFO among the sources",
        # Selected by the default `src/**/*.py`.
        lambda edits: edits.fifo(f"{API}/src/esb_api/pipe.py"),
        ("package", f"{API}:"),
        (f"{API}/src/esb_api/pipe.py",),
        # Nothing to ship in a FIFO: a warning names it, and the image is the same.
        exit_code=0,
    ),
    # The base's Debian lock.
    base_lock_case("base lock without libc6", _drop_libc6, "libc6", "pants esb-lock"),
    base_lock_case("wrong .deb sha256", _wrong_sha256, "bash", "pants esb-lock"),
    base_lock_case(
        "a pinned .deb the archive no longer has", _missing_deb, "bash", "pants esb-lock"
    ),
    base_lock_case("malformed base lock", lambda text: text[: len(text) // 2], "malformed"),
]


@dataclass
class Table:
    checkout: Checkout
    publisher: PublishCheckout
    baseline: dict[str, bytes]
    """Every file `package ::` wrote but the shared blobs, by path: a failed run changes none."""


def outputs_of(checkout: Checkout) -> dict[str, bytes]:
    outputs = {}
    for path in sorted(checkout.dist.rglob("*")):
        relative = path.relative_to(checkout.dist).as_posix()
        if relative.startswith("blobs/") or path.is_symlink() or not path.is_file():
            continue
        outputs[relative] = path.read_bytes()
    return outputs


@pytest.fixture(scope="module")
def table(repo_root: Path, test_registry: SharedRegistry) -> Iterator[Table]:
    with scratch_directory("esb-integration-adversarial-") as scratch:
        checkout = Checkout.copy_of(repo_root, scratch / "checkout")
        publisher = PublishCheckout.set_up(
            checkout, test_registry, f"adversarial-{uuid.uuid4().hex[:12]}", scratch
        )
        built = checkout.pants("package", "::")
        assert built.returncode == 0, built.report()
        yield Table(checkout, publisher, outputs_of(checkout))


def run_case(table: Table, case: Case) -> PantsRun:
    edits = Edits(table.checkout.root)
    try:
        case.edit(edits)
        return table.checkout.pants(*case.options, *case.goal)
    finally:
        edits.restore()


def assert_clean_failure(table: Table, case: Case, run: PantsRun) -> None:
    output = run.stdout + run.stderr
    assert run.returncode == case.exit_code, run.report()
    assert "Traceback" not in output, run.report()
    for expected in case.expected:
        assert expected in output, f"{expected!r} not in the output of {case.id!r}: {run.report()}"
    assert outputs_of(table.checkout) == table.baseline
    table.checkout.assert_every_blob_is_whole()


@pytest.mark.parametrize("case", CASES, ids=[case.id.replace(" ", "-") for case in CASES])
def test_bad_input(table: Table, case: Case) -> None:
    assert_clean_failure(table, case, run_case(table, case))


def test_a_lock_that_cannot_be_resolved_writes_no_lock(table: Table) -> None:
    api_lock = table.checkout.root / API / "uv.lock"
    locked = api_lock.read_bytes()
    edits = Edits(table.checkout.root)
    try:
        edits.substitute(
            f"{API}/pyproject.toml",
            "dependencies = [",
            'dependencies = [\n  "esb-no-such-distribution>=1",',
        )
        # The worker's lock would be written again were anything written.
        edits.remove(f"{WORKER}/uv.lock")
        run = table.checkout.pants("esb-lock", f"{API}:", f"{WORKER}:")
        output = run.stdout + run.stderr
        assert run.returncode == 1, run.report()
        assert "Traceback" not in output and "traceback" not in output, run.report()
        assert f"Lock the Python dependencies of {API_TARGET} failed" in output, run.report()
        assert "esb-no-such-distribution" in output, run.report()
        assert f"then run `pants esb-lock {API_TARGET}`" in output, run.report()
        assert "Nothing was written" in output, run.report()
        assert not (table.checkout.root / WORKER / "uv.lock").exists()
        assert api_lock.read_bytes() == locked
    finally:
        edits.restore()


def assert_registry_untouched(table: Table) -> None:
    for repository in REPOSITORIES:
        name = f"{table.publisher.namespace}/{repository}"
        assert table.publisher.tagged_digest(name, "latest") is None, name


@contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server on loopback that accepts connections and never answers; its `host:port`."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


def closed_port() -> str:
    """A loopback address where nothing listens."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return f"127.0.0.1:{probe.getsockname()[1]}"


def publish_to(address: str) -> str:
    return f'--esb-registries-publish={{"test": {{"address": "{address}/ns", "default": True}}}}'


def test_publish_to_a_closed_port_fails_naming_the_registry(table: Table) -> None:
    address = closed_port()
    run = table.checkout.pants(publish_to(address), "publish", f"{WORKER}:")
    assert run.returncode == 1, run.report()
    assert address in run.stderr and "Connection refused" in run.stderr, run.report()
    assert "Traceback" not in run.stderr
    assert outputs_of(table.checkout) == table.baseline


def test_publish_to_a_registry_that_never_answers_fails_within_the_deadline(
    table: Table,
) -> None:
    with silent_server() as address:
        run = table.checkout.pants(
            publish_to(address),
            "--esb-registries-push-read-timeout=2",
            "publish",
            f"{WORKER}:",
        )
    assert run.returncode == 1, run.report()
    assert address in run.stderr and "push_read_timeout" in run.stderr, run.report()
    assert "Traceback" not in run.stderr
    assert outputs_of(table.checkout) == table.baseline


def test_publish_with_wrong_credentials_fails_and_pushes_nothing(
    table: Table, tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    wrong_password = uuid.uuid4().hex
    auth = base64.b64encode(f"{table.publisher.registry.username}:{wrong_password}".encode())
    config.write_text(
        json.dumps({"auths": {table.publisher.registry.host: {"auth": auth.decode()}}})
    )
    run = table.checkout.pants(f"--esb-registries-docker-config={config}", "publish", "::")
    assert run.returncode == 1, run.report()
    assert table.publisher.registry.host in run.stderr and "401" in run.stderr, run.report()
    assert wrong_password not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert_registry_untouched(table)


def test_publish_of_a_registry_with_an_unknown_ca_fails_and_pushes_nothing(table: Table) -> None:
    run = table.checkout.pants("--esb-registries-registries={}", "publish", "::")
    assert run.returncode == 1, run.report()
    assert f"The TLS certificate of {table.publisher.registry.host} does not verify" in run.stderr
    assert "Traceback" not in run.stderr
    assert_registry_untouched(table)


def test_publish_of_two_images_with_one_repository_pushes_nothing(table: Table) -> None:
    case = Case(
        "publish two images with one repository",
        lambda edits: edits.substitute(
            f"{SIGNER}/BUILD", 'repository="esb/signer"', 'repository="esb/api"'
        ),
        ("publish", "::"),
        (API_TARGET, f"{SIGNER}:signer", "repository"),
    )
    assert_clean_failure(table, case, run_case(table, case))
    assert_registry_untouched(table)


def test_a_blob_truncated_in_dist_is_written_whole_again(table: Table) -> None:
    largest = table.checkout.largest_blob()
    largest.write_bytes(b"")
    abandoned = largest.parent / f".{largest.name}.4000001.abcd.partial"
    abandoned.write_bytes(b"half")
    run = table.checkout.pants("package", "::")
    assert run.returncode == 0, run.report()
    assert hashlib.sha256(largest.read_bytes()).hexdigest() == largest.name
    assert not abandoned.exists()
    assert outputs_of(table.checkout) == table.baseline


# At run time: the CA contract and an image that runs as any user on a read-only root.
RUNTIME_CASES = [
    (
        "required trust without a CA",
        dict(environment={"REQUIRE_CA_TRUST": "true"}),
        1,
        "ensure_ca_trust: error: REQUIRE_CA_TRUST=true",
    ),
    (
        "required trust with a CA directory that does not exist",
        dict(environment={"REQUIRE_CA_TRUST": "true", "SSL_CERT_DIR": "/nonexistent"}),
        1,
        "SSL_CERT_DIR=/nonexistent does not exist",
    ),
    (
        "REQUIRE_CA_TRUST neither true nor false",
        dict(environment={"REQUIRE_CA_TRUST": "maybe"}),
        1,
        "REQUIRE_CA_TRUST=maybe is neither true nor false",
    ),
    (
        "an arbitrary uid on a read-only root",
        dict(user="12345:12345", read_only=True, tmpfs={"/tmp": ""}),
        0,
        "imported esb_api",
    ),
]


@pytest.mark.parametrize(
    "options, status, expected",
    [case[1:] for case in RUNTIME_CASES],
    ids=[case[0].replace(" ", "-") for case in RUNTIME_CASES],
)
def test_at_run_time(
    loaded_images: dict[str, Image],
    docker_client: DockerClient,
    options: dict,
    status: int,
    expected: str,
) -> None:
    result = run_to_exit(
        docker_client,
        loaded_images[IMAGE_API].id,
        ["python", "-c", "import esb_api; print('imported esb_api')"],
        **options,
    )
    assert result.status == status, result.report()
    assert expected in result.stdout + result.stderr, result.report()

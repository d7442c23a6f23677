from __future__ import annotations

import json
import os
import subprocess

import pytest
from pants.core.goals.publish import PublishProcesses
from pants.core.util_rules import distdir, system_binaries
from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.process import Process
from pants.engine.rules import Get, QueryRule, rule
from pants.engine.target import InvalidFieldException
from pants.testutil.rule_runner import RuleRunner
from pants.util.contextutil import pushd
from pants.vcs import git

from esb.goals import publish
from esb.goals.publish import (
    PublishBaseImageFieldSet,
    PublishImageRequest,
    PublishServiceImageFieldSet,
)
from esb.repository_names import RepositoryNameError
from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.registries import (
    PublishDestination,
    PublishError,
    PublishRegistry,
    RegistrySettingsError,
    parse_publish_registries,
    publish_destinations,
)
from esb.target_types import (
    EsbBaseImageTarget,
    EsbImageRegistriesField,
    EsbImageTagsField,
    EsbServiceImageTarget,
)
from esb.util_rules import collisions, dependencies, upstream
from esb.util_rules.base import (
    BaseArchitectures,
    BaseArchitecturesRequest,
    BaseImageRequest,
    BuiltBaseImage,
)
from esb.util_rules.image import BuiltImage, ImageIndexRequest
from esb.util_rules.platform import BasePlatform
from esb.util_rules.service import ServiceArchitecturesRequest, ServiceImageRequest
from esb.util_rules.upstream import CA_BUNDLE_SETTING, INSECURE_SETTING
from esb_contract import commands, flags
from esb_contract.commands import read_argv

API = Address("services/api", target_name="api")
ROOT = Address("", target_name="api")
OPTION = "[esb-registries].publish"
CONFIGURED = (
    PublishRegistry("internal", "registry.example:5000", default=True),
    PublishRegistry("mirror", "mirror.example/team", default=True),
    PublishRegistry("staging", "staging.example:5000"),
)
DIGEST = "sha256:" + "0123456789ab" + "cd" * 26
COMMIT = "89abcdef0123" + "4" * 28


def registries(value: list[str] | None) -> EsbImageRegistriesField:
    return EsbImageRegistriesField(value, API)


def tags(value: list[str]) -> EsbImageTagsField:
    return EsbImageTagsField(value, API)


# -- [esb-registries].publish and the `registries` field -----------------------------------------


def test_publish_registries_are_checked_and_sorted() -> None:
    value = {
        "staging": {"address": "staging.example:5000"},
        "internal": {"address": "registry.example:5000/team/esb", "default": True},
    }
    assert parse_publish_registries(value, OPTION) == (
        PublishRegistry("internal", "registry.example:5000/team/esb", default=True),
        PublishRegistry("staging", "staging.example:5000"),
    )


@pytest.mark.parametrize(
    "alias, settings, problem",
    [
        pytest.param("@x", {"address": "r.example"}, "is not an alias", id="alias"),
        pytest.param("x", "r.example", "is 'r.example', not a table of settings", id="not-a-table"),
        pytest.param(
            "x", {"address": "r.example", "url": "r"}, "unknown settings 'url'", id="unknown"
        ),
        pytest.param("x", {"default": True}, "has no `address` string", id="no-address"),
        pytest.param("x", {"address": "https://r.example"}, "it is a URL: write", id="url"),
        pytest.param(
            "x", {"address": "r.example/Team"}, "namespace part(s) 'Team'", id="namespace"
        ),
        pytest.param(
            "x", {"address": "r.example", "default": "yes"}, "must be true or false", id="default"
        ),
        pytest.param(
            "x",
            {"address": "r.example", "skip_push": 1},
            "`skip_push` must be true or false, got 1",
            id="skip_push",
        ),
        pytest.param(
            "x",
            {"address": "r.example", "use_local_alias": "yes"},
            "`use_local_alias` must be true or false, got 'yes'",
            id="use_local_alias",
        ),
        pytest.param(
            "x",
            {"address": "r.example", "repository": "team/{repo}"},
            "`repository` it has the placeholder(s) {repo}, which are not among {name}, "
            "{directory}, {parent_directory}, {full_directory}, {target_repository}",
            id="repository-placeholder",
        ),
        pytest.param(
            "x",
            {"address": "r.example", "repository": ["team"]},
            "`repository` must be a string, got ['team']",
            id="repository-type",
        ),
        pytest.param(
            "x",
            {"address": "r.example", "extra_image_tags": ["ok", "-bad"]},
            "`extra_image_tags` must be a list of tags as `image_tags` takes them, got "
            "['ok', '-bad']",
            id="extra_image_tags",
        ),
    ],
)
def test_bad_publish_registries_name_the_entry_and_the_fix(
    alias: str, settings: object, problem: str
) -> None:
    with pytest.raises(RegistrySettingsError) as error:
        parse_publish_registries({alias: settings}, OPTION)
    message = str(error.value)
    assert message.startswith(f"The entry {alias!r} of `[esb-registries].publish`")
    assert problem in message
    assert message.endswith(
        "(`address` may end with a `/namespace`; `default`, `skip_push` and `use_local_alias` are "
        'optional, false; `repository` is an optional name such as `"team/{target_repository}"`; '
        "`extra_image_tags` an optional list of tags)."
    )


def test_unset_registries_are_the_default_aliases() -> None:
    assert publish_destinations(registries(None), API, CONFIGURED) == (
        PublishDestination("registry.example:5000", CONFIGURED[0]),
        PublishDestination("mirror.example/team", CONFIGURED[1]),
    )


def test_aliases_and_addresses_each_once() -> None:
    field = registries(["@staging", "other.example:5000", "staging.example:5000", "@staging"])
    assert publish_destinations(field, API, CONFIGURED) == (
        PublishDestination("staging.example:5000", CONFIGURED[2]),
        PublishDestination("other.example:5000"),
    )


def test_empty_registries_publish_nowhere() -> None:
    assert publish_destinations(registries([]), API, CONFIGURED) == ()


def test_a_registry_entry_renames_the_image_and_may_alias_it_locally() -> None:
    [entry] = parse_publish_registries(
        {
            "prod": {
                "address": "prod.example/ns",
                "repository": "{parent_directory}/{target_repository}",
                "extra_image_tags": ["stable", "h-{pants.hash}"],
                "use_local_alias": True,
            }
        },
        OPTION,
    )
    destination = PublishDestination(entry.address, entry)
    assert destination.image_repository("esb/api", API) == "services/esb/api"
    assert destination.local_alias("services/esb/api") == "prod/services/esb/api"
    assert destination.extra_image_tags == ("stable", "h-{pants.hash}")
    # An address, or an entry without `repository`, keeps the image's own name.
    assert PublishDestination("other.example").image_repository("esb/api", API) == "esb/api"
    assert PublishDestination("other.example").local_alias("esb/api") is None


def test_a_registry_repository_that_fills_in_to_no_name_names_the_entry() -> None:
    [entry] = parse_publish_registries(
        {"prod": {"address": "prod.example", "repository": "x/{parent_directory}"}}, OPTION
    )
    with pytest.raises(RepositoryNameError) as error:
        PublishDestination(entry.address, entry).image_repository("esb/api", ROOT)
    assert str(error.value).startswith(
        "The `repository` of `[esb-registries].publish.prod` is 'x/{parent_directory}', which "
        "names the image of //:api 'x/': not an OCI repository name"
    )


def test_destination_with_a_namespace() -> None:
    destination = PublishDestination("mirror.example/team", CONFIGURED[1])
    assert destination.path("esb/api") == "team/esb/api"
    assert destination.name("esb/api") == "mirror.example/team/esb/api"
    assert destination.description == "@mirror (mirror.example/team)"


@pytest.mark.parametrize(
    "field, configured, expected",
    [
        pytest.param(
            registries(None),
            (),
            "The target services/api:api has no registry to publish to: its `registries` field is "
            "unset and no entry of `[esb-registries].publish` has `default = true`.\n\nFix: add one "
            "to pants.toml, e.g. `[esb-registries.publish.internal]` with `address = "
            '"registry.example:5000"` and `default = true`, or set '
            '`registries=["registry.example:5000"]` on the target (`registries=[]` never publishes it).',
            id="no-default",
        ),
        pytest.param(
            registries(["@prod"]),
            CONFIGURED,
            "The `registries` field of the target services/api:api names '@prod', which is no alias "
            "of `[esb-registries].publish` (known: @internal, @mirror, @staging).\n\nFix: add it to "
            "`[esb-registries].publish` in pants.toml, or correct the alias.",
            id="unknown-alias",
        ),
        pytest.param(
            registries(["registry.example:5000/Esb"]),
            CONFIGURED,
            "The `registries` field of the target services/api:api has 'registry.example:5000/Esb': "
            "the namespace part(s) 'Esb' are not lower-case letters and digits separated by '.', '_', "
            "'__' or '-'.\n\nFix: write `\"@alias\"` for an alias of `[esb-registries].publish`, or an "
            'address `"host[:port][/namespace]"`, e.g. `"registry.example:5000"`.',
            id="bad-address",
        ),
    ],
)
def test_bad_registries_name_the_target_and_the_fix(
    field: EsbImageRegistriesField, configured: tuple[PublishRegistry, ...], expected: str
) -> None:
    with pytest.raises(PublishError) as error:
        publish_destinations(field, API, configured)
    assert str(error.value) == expected


# -- tags ----------------------------------------------------------------------------------------


def test_tags_may_hold_placeholders_that_package_leaves_out() -> None:
    field = tags(["latest", "sha-{digest}", "v{version}-{git_commit}", "1.0"])
    assert field.literal() == ("latest", "1.0")


@pytest.mark.parametrize("tag", ["{commit}", "v{version", "-{digest}", "{}", "a{{digest}}"])
def test_unknown_or_malformed_placeholders_are_refused(tag: str) -> None:
    with pytest.raises(InvalidFieldException) as error:
        tags([tag])
    assert f"has invalid tag(s) {tag!r}" in str(error.value)
    assert (
        "the placeholders `publish` fills in are {digest}, {pants.hash}, {git_commit}, {version}."
        in str(error.value)
    )


# -- the rule ------------------------------------------------------------------------------------


@rule
async def fake_image_tool(request: ImageToolRequest) -> Process:
    """The push process without building the image tool's PEX: the glue is what is tested."""
    return Process(
        ("imagetool", *request.argv),
        description=request.description,
        input_digest=request.input_digest,
    )


async def _fake_image() -> BuiltImage:
    digest = await Get(
        Digest,
        CreateDigest(
            [
                FileContent("image.oci/index.json", b"{}"),
                FileContent(f"image.oci/blobs/sha256/{'ab' * 32}", b"layer"),
                FileContent("image.image.json", json.dumps({"digest": DIGEST}).encode()),
            ]
        ),
    )
    return BuiltImage(digest, json.dumps({"digest": DIGEST}), ())


@rule
async def fake_service_image(request: ServiceImageRequest) -> BuiltImage:
    """The image as built, without building it: a layout with one blob."""
    return await _fake_image()


@rule
async def one_base_platform(request: BaseArchitecturesRequest) -> BaseArchitectures:
    return BaseArchitectures(("amd64",))


@rule
async def one_service_platform(request: ServiceArchitecturesRequest) -> BaseArchitectures:
    return BaseArchitectures(("amd64",))


@rule
async def no_index(request: ImageIndexRequest) -> BuiltImage:
    raise AssertionError("the images here are of one platform")


@rule
async def fake_base_image(request: BaseImageRequest) -> BuiltBaseImage:
    platform = BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11")
    return BuiltBaseImage(await _fake_image(), platform)


REGISTRY_OPTIONS = (
    '--esb-registries-publish={"internal": {"address": "127.0.0.1:5000", "default": True}, '
    '"mirror": {"address": "mirror.example/team"}}',
    '--esb-registries-registries={"127.0.0.1:5000": {"ca_bundle": "certs/ca.pem"}}',
)


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            *publish.rules(),
            *collisions.rules(),
            *distdir.rules(),
            *dependencies.rules(),
            *upstream.rules(),
            *git.rules(),
            *system_binaries.rules(),
            fake_image_tool,
            fake_service_image,
            fake_base_image,
            one_base_platform,
            one_service_platform,
            no_index,
            QueryRule(PublishProcesses, [PublishImageRequest]),
            QueryRule(DigestContents, [Digest]),
            QueryRule(Digest, [CreateDigest]),
        ],
        target_types=[EsbBaseImageTarget, EsbServiceImageTarget],
    )
    runner.write_files(
        {
            "base/BUILD": (
                'esb_base_image(name="esb-service-base", repository="esb/service-base", '
                'packages=["python3"], image_tags=["sha-{digest}"])\n'
                'esb_base_image(name="versioned", packages=["python3"], image_tags=["v{version}"])\n'
            ),
            "services/api/BUILD": (
                'esb_service_image(name="api", base="//base:esb-service-base", repository="esb/api", '
                'command=["python"], image_tags=["latest", "sha-{digest}", "v{version}"], '
                'registries=["@internal", "@mirror"])\n'
                'esb_service_image(name="hidden", base="//base:esb-service-base", command=["python"], '
                "registries=[])\n"
                'esb_service_image(name="paused", base="//base:esb-service-base", command=["python"], '
                'repository="esb/paused", registries=["@nowhere"], skip_push=True)\n'
            ),
            "services/api/pyproject.toml": "[project]\nname = 'esb-api'\nversion = '0.3.0'\n",
            "services/worker/BUILD": (
                'esb_service_image(name="worker", base="//base:esb-service-base", '
                'repository="esb/worker", command=["python"])\n'
            ),
            "certs/ca.pem": "-----BEGIN CERTIFICATE-----\n",
        }
    )
    runner.set_options(REGISTRY_OPTIONS)
    return runner


def publish_processes(rule_runner: RuleRunner, address: Address) -> PublishProcesses:
    target = rule_runner.get_target(address)
    field_set_type = (
        PublishServiceImageFieldSet
        if address.spec_path.startswith("services")
        else PublishBaseImageFieldSet
    )
    request = PublishImageRequest(field_set_type.create(target), ())
    return rule_runner.request(PublishProcesses, [request])


def test_one_push_per_registry_with_filled_in_tags(rule_runner: RuleRunner) -> None:
    internal, mirror = publish_processes(rule_runner, API)
    assert internal.names == (
        "127.0.0.1:5000/esb/api:latest",
        "127.0.0.1:5000/esb/api:sha-0123456789ab",
        "127.0.0.1:5000/esb/api:v0.3.0",
    )
    assert internal.description == "@internal (127.0.0.1:5000)"
    assert dict(internal.data) == {
        "publisher": "esb",
        "registry": "127.0.0.1:5000",
        "digest": DIGEST,
    }
    assert internal.process is not None
    argv = internal.process.process.argv
    assert argv[0] == "imagetool"
    push = read_argv(argv[1:])
    assert push.name == commands.PUSH_IMAGE
    assert push.value(flags.LAYOUT) == "image.oci"
    assert push.value(flags.REFERENCE) == "127.0.0.1:5000/esb/api"
    # Recorded beside the image's `package` outputs, by the tool, once the push succeeded.
    assert push.value(flags.OUT_PUBLISHED) == os.path.join(
        rule_runner.build_root, "dist", "services.api", "api.published.json"
    )
    assert push.get(flags.TAG) == ("latest", "sha-0123456789ab", "v0.3.0")
    # The base first, then the other services on it: whichever was pushed first has the base's
    # layers.
    assert push.get(flags.MOUNT_FROM) == ("esb/service-base", "esb/worker")
    assert push.get(flags.REGISTRY_CA) == ("127.0.0.1:5000=certs/ca.pem",)
    assert push.value(flags.CA_BUNDLE_SETTING) == CA_BUNDLE_SETTING
    assert push.value(flags.INSECURE_SETTING) == INSECURE_SETTING
    # The limits, each with the option its message names as the fix.
    assert push.value(flags.CONNECT_TIMEOUT) == "10"
    assert "`--esb-registries-push-connect-timeout`" in push.value(flags.CONNECT_TIMEOUT_SETTING)
    assert push.value(flags.READ_TIMEOUT) == "60"
    assert "`--esb-registries-push-read-timeout`" in push.value(flags.READ_TIMEOUT_SETTING)
    assert push.value(flags.PUSH_DEADLINE) == "600"
    assert "`--esb-registries-push-deadline`" in push.value(flags.PUSH_DEADLINE_SETTING)
    # The image as built, with its blobs, and the repository's CA bundles.
    contents = rule_runner.request(DigestContents, [internal.process.process.input_digest])
    assert sorted(entry.path for entry in contents) == [
        "certs/ca.pem",
        "image.image.json",
        f"image.oci/blobs/sha256/{'ab' * 32}",
        "image.oci/index.json",
    ]

    assert mirror.names[0] == "mirror.example/team/esb/api:latest"
    assert mirror.process is not None
    mirror_push = read_argv(mirror.process.process.argv[1:])
    assert mirror_push.value(flags.REFERENCE) == "mirror.example/team/esb/api"
    assert mirror_push.get(flags.MOUNT_FROM) == ("team/esb/service-base", "team/esb/worker")


def test_a_base_mounts_from_the_services_on_it(rule_runner: RuleRunner) -> None:
    [push] = publish_processes(rule_runner, Address("base", target_name="esb-service-base"))
    assert push.names == ("127.0.0.1:5000/esb/service-base:sha-0123456789ab",)
    assert push.process is not None
    # Not `hidden` nor `paused`, which are never published.
    assert read_argv(push.process.process.argv[1:]).get(flags.MOUNT_FROM) == (
        "esb/api",
        "esb/worker",
    )


def test_empty_registries_skip_the_image(rule_runner: RuleRunner) -> None:
    [skipped] = publish_processes(rule_runner, Address("services/api", target_name="hidden"))
    assert (skipped.names, skipped.process, skipped.description) == (
        ("hidden",),
        None,
        "(by `registries=[]` on services/api:hidden)",
    )


def test_skip_push_skips_the_image_without_reading_its_registries(
    rule_runner: RuleRunner,
) -> None:
    # `@nowhere` is no alias: the registries of a skipped image are not read.
    [skipped] = publish_processes(rule_runner, Address("services/api", target_name="paused"))
    assert (skipped.names, skipped.process, skipped.description) == (
        ("esb/paused",),
        None,
        "(by `skip_push` on services/api:paused)",
    )


def test_a_registry_with_skip_push_is_skipped_and_the_others_pushed(
    rule_runner: RuleRunner,
) -> None:
    rule_runner.set_options(
        [
            '--esb-registries-publish={"internal": {"address": "127.0.0.1:5000", "default": True}, '
            '"mirror": {"address": "mirror.example/team", "skip_push": True}}',
            REGISTRY_OPTIONS[1],
        ]
    )
    internal, mirror = publish_processes(rule_runner, API)
    assert internal.process is not None and internal.description == "@internal (127.0.0.1:5000)"
    assert (mirror.names, mirror.process, mirror.description) == (
        ("mirror.example/team/esb/api",),
        None,
        "(by `skip_push` on registry @mirror (mirror.example/team))",
    )


def test_registry_entries_rename_retag_and_mount_by_their_names(rule_runner: RuleRunner) -> None:
    rule_runner.set_options(
        [
            '--esb-registries-publish={"internal": {"address": "127.0.0.1:5000", "default": True, '
            '"repository": "team/{target_repository}", "extra_image_tags": ["stable", '
            '"h-{pants.hash}"]}, "mirror": {"address": "mirror.example/team"}}',
            REGISTRY_OPTIONS[1],
            "--esb-registries-default-repository=esb/{directory}",
        ]
    )
    internal, mirror = publish_processes(rule_runner, API)
    assert internal.names == (
        "127.0.0.1:5000/team/esb/api:latest",
        "127.0.0.1:5000/team/esb/api:sha-0123456789ab",
        "127.0.0.1:5000/team/esb/api:v0.3.0",
        "127.0.0.1:5000/team/esb/api:stable",
        f"127.0.0.1:5000/team/esb/api:h-{DIGEST[7:]}",
    )
    assert internal.process is not None
    push = read_argv(internal.process.process.argv[1:])
    assert push.value(flags.REFERENCE) == "127.0.0.1:5000/team/esb/api"
    # The family's names on that registry: the worker's comes from `default_repository`.
    assert push.get(flags.MOUNT_FROM) == ("team/esb/service-base", "team/esb/worker")
    # The other registry keeps the image's own name and tags.
    assert mirror.names == (
        "mirror.example/team/esb/api:latest",
        "mirror.example/team/esb/api:sha-0123456789ab",
        "mirror.example/team/esb/api:v0.3.0",
    )


def test_a_bad_default_repository_names_the_option_and_the_fix(rule_runner: RuleRunner) -> None:
    rule_runner.set_options([*REGISTRY_OPTIONS, "--esb-registries-default-repository=Esb/{name}"])
    with pytest.raises(ExecutionError) as error:
        publish_processes(rule_runner, Address("services/worker", target_name="worker"))
    assert (
        "`[esb-registries].default_repository` is 'Esb/{name}': it is not made of lower-case "
        "letters and digits"
    ) in str(error.value)
    assert 'Fix: set it to a name such as `"esb/{name}"`' in str(error.value)


def test_a_base_has_no_version(rule_runner: RuleRunner) -> None:
    with pytest.raises(ExecutionError) as error:
        publish_processes(rule_runner, Address("base", target_name="versioned"))
    assert (
        "The `image_tags` field of the target base:versioned uses {version}, a service's "
        "`[project].version`, but an `esb_base_image` has no pyproject.toml.\n\nFix: tag the base "
        "with {digest} or {git_commit}, or a literal version."
    ) in str(error.value)


def commit_everything(root: str) -> str:
    """Makes `root` a git repository with one commit of all its files; the commit's hash."""
    git_command = [
        "git",
        "-C",
        root,
        "-c",
        "user.name=esb test",
        "-c",
        "user.email=esb@example.invalid",
    ]
    # Pants' own state in the build root, ignored as in a real repository.
    with open(f"{root}/.gitignore", "w") as gitignore:
        gitignore.write("/.pants.d/\n")
    subprocess.run([*git_command, "init", "--quiet"], check=True)
    subprocess.run([*git_command, "add", "--all"], check=True)
    subprocess.run([*git_command, "commit", "--quiet", "--message", "publish test"], check=True)
    head = subprocess.run(
        [*git_command, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    )
    return head.stdout.strip()


def test_git_commit_tags_a_clean_checkout_and_refuses_a_dirty_one(rule_runner: RuleRunner) -> None:
    worker = Address("services/worker", target_name="worker")
    rule_runner.write_files(
        {
            "services/worker/BUILD": (
                'esb_service_image(name="worker", base="//base:esb-service-base", '
                'repository="esb/worker", command=["python"], image_tags=["git-{git_commit}"])\n'
            )
        }
    )
    commit = commit_everything(rule_runner.build_root)
    # Pants finds the repository from its working directory, the build root when it runs.
    with pushd(rule_runner.build_root):
        [push] = publish_processes(rule_runner, worker)
        assert push.names == (f"127.0.0.1:5000/esb/worker:git-{commit}",)

        rule_runner.write_files({"services/worker/src/esb_worker/extra.py": "DEBUG = True\n"})
        # A new session, as the next `pants publish` has: git is asked again in each one.
        rule_runner.set_options(REGISTRY_OPTIONS)
        with pytest.raises(ExecutionError) as error:
            publish_processes(rule_runner, worker)
    assert (
        "The `image_tags` field of the target services/worker:worker has the tag 'git-{git_commit}', "
        f"but the working tree at {rule_runner.build_root} differs from the commit checked out, "
        f"{commit[:12]} (services/worker/src/esb_worker/extra.py): "
    ) in str(error.value)


def test_push_limits_come_from_the_options(rule_runner: RuleRunner) -> None:
    rule_runner.set_options(
        [
            *REGISTRY_OPTIONS,
            "--esb-registries-push-read-timeout=5",
            "--esb-registries-push-deadline=90.5",
        ]
    )
    internal, _ = publish_processes(rule_runner, API)
    assert internal.process is not None
    push = read_argv(internal.process.process.argv[1:])
    assert push.value(flags.READ_TIMEOUT) == "5"
    assert push.value(flags.PUSH_DEADLINE) == "90.5"


@pytest.mark.parametrize("value", ["0", "-3", "inf"])
def test_push_limits_must_be_positive(rule_runner: RuleRunner, value: str) -> None:
    rule_runner.set_options([*REGISTRY_OPTIONS, f"--esb-registries-push-deadline={value}"])
    with pytest.raises(ExecutionError) as error:
        publish_processes(rule_runner, API)
    assert (
        f"`[esb-registries].push_deadline` is {float(value)!r}.\n\nFix: set it to a positive "
        "number of seconds, e.g. `push_deadline = 600.0` under `[esb-registries]` in pants.toml."
    ) in str(error.value)


def test_publish_refuses_an_image_that_shares_a_tag_with_another(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "services/signer/BUILD": (
                'esb_service_image(name="signer", base="//base:esb-service-base", '
                'repository="esb/worker", command=["python"])\n'
            )
        }
    )
    with pytest.raises(ExecutionError) as error:
        publish_processes(rule_runner, Address("services/worker", target_name="worker"))
    assert (
        "The image targets services/signer:signer and services/worker:worker both take "
        "127.0.0.1:5000/esb/worker:latest: whichever is published or loaded last would replace the "
        "other's tag."
    ) in str(error.value)

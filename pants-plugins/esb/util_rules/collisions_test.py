from __future__ import annotations

import pytest
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import RuleRunner

from esb.target_types import EsbBaseImageTarget, EsbServiceImageTarget
from esb.util_rules import collisions
from esb.util_rules.collisions import ImageCollisions, UniqueImage, UniqueImageRequest

API = Address("services/api", target_name="api")
SIGNER = Address("services/signer", target_name="signer")
WORKER = Address("services/worker", target_name="worker")
BASE = Address("base", target_name="esb-service-base")
REGISTRY_OPTIONS = (
    '--esb-registries-publish={"internal": {"address": "127.0.0.1:5000", "default": True}, '
    '"team": {"address": "127.0.0.1:5000/team"}, "other": {"address": "other.example"}}',
)


def service(name: str, **fields: str) -> str:
    extra = "".join(f", {field}={value}" for field, value in fields.items())
    return (
        f'esb_service_image(name="{name}", base="//base:esb-service-base", '
        f'command=["python"]{extra})\n'
    )


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            *collisions.rules(),
            QueryRule(UniqueImage, [UniqueImageRequest]),
            QueryRule(ImageCollisions, []),
        ],
        target_types=[EsbBaseImageTarget, EsbServiceImageTarget],
    )
    runner.write_files(
        {
            "base/BUILD": (
                'esb_base_image(name="esb-service-base", repository="esb/service-base", '
                'packages=["python3"])\n'
            ),
            "services/api/BUILD": service("api", repository='"esb/api"'),
            "services/worker/BUILD": service("worker", repository='"esb/worker"'),
        }
    )
    runner.set_options(REGISTRY_OPTIONS)
    return runner


def write_signer(rule_runner: RuleRunner, **fields: str) -> None:
    rule_runner.write_files({"services/signer/BUILD": service("signer", **fields)})


def unique(rule_runner: RuleRunner, address: Address) -> UniqueImage:
    return rule_runner.request(UniqueImage, [UniqueImageRequest(address)])


def collision_message(rule_runner: RuleRunner, address: Address) -> str:
    with pytest.raises(ExecutionError) as error:
        unique(rule_runner, address)
    assert "ImageCollisionError" in str(error.value)
    return str(error.value)


def test_distinct_images_are_unique(rule_runner: RuleRunner) -> None:
    write_signer(rule_runner, repository='"esb/signer"')
    for address in (API, SIGNER, WORKER, BASE):
        assert unique(rule_runner, address) == UniqueImage(address)


def test_the_same_repository_and_tag_names_both_targets_the_fields_and_the_fix(
    rule_runner: RuleRunner,
) -> None:
    write_signer(rule_runner, repository='"esb/api"')
    expected = (
        "The image targets services/api:api and services/signer:signer both take "
        "127.0.0.1:5000/esb/api:latest: whichever is published or loaded last would replace the "
        "other's tag. The name comes from the fields `repository` ('esb/api' and 'esb/api'), "
        "`image_tags` and `registries` (@internal (127.0.0.1:5000) and @internal "
        "(127.0.0.1:5000)).\n\nFix: give services/signer:signer a `repository` of its own (e.g. "
        '`repository="esb/signer"`), or `image_tags` that differ (a tag with {digest} is unique '
        "to each image), or `registries` that do not overlap."
    )
    # Asked about either image, and whichever is on the command line: all targets are checked.
    assert expected in collision_message(rule_runner, API)
    assert expected in collision_message(rule_runner, SIGNER)
    assert unique(rule_runner, WORKER) == UniqueImage(WORKER)


def test_the_same_explicit_tag_collides_and_the_shared_tags_are_listed(
    rule_runner: RuleRunner,
) -> None:
    write_signer(rule_runner, repository='"esb/api"', image_tags='["v1", "stable", "latest"]')
    rule_runner.write_files(
        {
            "services/api/BUILD": service(
                "api", repository='"esb/api"', image_tags='["stable", "v1"]'
            )
        }
    )
    assert (
        "both take 127.0.0.1:5000/esb/api:stable, 127.0.0.1:5000/esb/api:v1: whichever"
        in collision_message(rule_runner, SIGNER)
    )


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param('["sha-{digest}"]', id="digest"),
        pytest.param('["{version}-{digest}", "{git_commit}-{digest}"]', id="digest-with-others"),
        pytest.param('["signer"]', id="own-tag"),
    ],
)
def test_tags_unique_to_each_image_do_not_collide(rule_runner: RuleRunner, tags: str) -> None:
    write_signer(rule_runner, repository='"esb/api"', image_tags=tags)
    rule_runner.write_files(
        {
            "services/api/BUILD": service(
                "api", repository='"esb/api"', image_tags=tags.replace("signer", "api")
            )
        }
    )
    assert unique(rule_runner, SIGNER) == UniqueImage(SIGNER)


@pytest.mark.parametrize("tag", ["v{version}", "git-{git_commit}"])
def test_tags_whose_placeholders_can_be_alike_collide(rule_runner: RuleRunner, tag: str) -> None:
    write_signer(rule_runner, repository='"esb/api"', image_tags=f'["{tag}"]')
    rule_runner.write_files(
        {"services/api/BUILD": service("api", repository='"esb/api"', image_tags=f'["{tag}"]')}
    )
    assert f"both take 127.0.0.1:5000/esb/api:{tag}:" in collision_message(rule_runner, API)


@pytest.mark.parametrize(
    "signer_registries",
    [
        pytest.param('["@other"]', id="another-registry"),
        pytest.param('["@team"]', id="another-namespace"),
        pytest.param("[]", id="never-published"),
    ],
)
def test_different_registries_do_not_collide(
    rule_runner: RuleRunner, signer_registries: str
) -> None:
    write_signer(rule_runner, repository='"esb/api"', registries=signer_registries)
    assert unique(rule_runner, SIGNER) == UniqueImage(SIGNER)
    assert unique(rule_runner, API) == UniqueImage(API)


def test_a_namespace_and_a_repository_that_meet_collide(rule_runner: RuleRunner) -> None:
    # `127.0.0.1:5000/team` + `esb/api` is `127.0.0.1:5000` + `team/esb/api`.
    write_signer(rule_runner, repository='"team/esb/api"')
    rule_runner.write_files(
        {"services/api/BUILD": service("api", repository='"esb/api"', registries='["@team"]')}
    )
    message = collision_message(rule_runner, SIGNER)
    assert "both take 127.0.0.1:5000/team/esb/api:latest:" in message
    assert "(@team (127.0.0.1:5000/team) and @internal (127.0.0.1:5000))" in message


def test_a_registry_repository_that_names_two_images_alike_collides(
    rule_runner: RuleRunner,
) -> None:
    rule_runner.set_options(
        [
            '--esb-registries-publish={"internal": {"address": "127.0.0.1:5000", "default": True, '
            '"repository": "team/{directory}", "extra_image_tags": ["stable"], '
            '"use_local_alias": True}}'
        ]
    )
    rule_runner.write_files(
        {
            "services/signer/BUILD": service("signer", repository='"esb/signer"')
            + service("signer2", repository='"esb/signer2"', output_path='"signer2"')
        }
    )
    message = collision_message(rule_runner, SIGNER)
    # Both are `team/signer` there, under the address and the local alias, with every tag.
    assert (
        "both take 127.0.0.1:5000/team/signer:latest, 127.0.0.1:5000/team/signer:stable, "
        "internal/team/signer:latest and 1 more"
    ) in message


def test_the_same_output_path_names_both_targets_and_the_field(rule_runner: RuleRunner) -> None:
    write_signer(rule_runner, repository='"esb/signer"', output_path='"images/api"')
    rule_runner.write_files(
        {"services/api/BUILD": service("api", repository='"esb/api"', output_path='"images/api"')}
    )
    expected = (
        "The image targets services/api:api and services/signer:signer both write "
        "`images/api.oci`, `.image.json` and `.inventory.json` under the dist directory: their "
        "`output_path` fields are both 'images/api' (set, or by default).\n\nFix: set "
        "`output_path` on one of them to a path of its own, e.g. "
        '`output_path="services.signer/signer"`.'
    )
    assert expected in collision_message(rule_runner, API)
    assert expected in collision_message(rule_runner, SIGNER)


def test_an_unresolvable_registries_field_is_left_to_publish(rule_runner: RuleRunner) -> None:
    write_signer(rule_runner, repository='"esb/api"', registries='["@nowhere"]')
    assert unique(rule_runner, SIGNER) == UniqueImage(SIGNER)


def test_one_product_holds_the_collisions_of_all_targets(rule_runner: RuleRunner) -> None:
    write_signer(rule_runner, repository='"esb/api"')
    found = rule_runner.request(ImageCollisions, [])
    assert sorted(found.messages) == [API, SIGNER]
    assert found.messages[API] == found.messages[SIGNER]


def test_images_published_nowhere_collide_on_the_name_they_are_loaded_under(
    rule_runner: RuleRunner,
) -> None:
    rule_runner.set_options([])
    write_signer(rule_runner, repository='"esb/api"')
    message = collision_message(rule_runner, SIGNER)
    assert "both take esb/api:latest: whichever is published or loaded last" in message
    assert "(no registry: the name `pants run` loads it under and" in message

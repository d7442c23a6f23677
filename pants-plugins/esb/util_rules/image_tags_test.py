from __future__ import annotations

import pytest
from pants.engine.addresses import Address

from esb.subsystems.registries import PublishError
from esb.target_types import EsbImageTagsField
from esb.util_rules.image_tags import (
    GitHead,
    TagTemplates,
    filled_tags,
    git_commit_tag_value,
    project_version,
)

API = Address("services/api", target_name="api")
COMMIT = "89abcdef0123" + "4" * 28


def tags(value: list[str]) -> TagTemplates:
    return TagTemplates.of(EsbImageTagsField(value, API), API)


def test_tags_are_filled_in_each_once() -> None:
    values = {"digest": "0123456789ab", "git_commit": "f" * 40, "version": "1.2.0"}
    field = tags(["latest", "sha-{digest}", "v{version}", "git-{git_commit}", "v1.2.0"])
    assert tuple(filled_tags(field, values)) == (
        "latest",
        "sha-0123456789ab",
        "v1.2.0",
        f"git-{'f' * 40}",
    )


def test_a_tag_that_fills_in_to_an_invalid_one_is_refused() -> None:
    with pytest.raises(PublishError) as error:
        filled_tags(tags(["v{version}"]), {"digest": "0123456789ab", "version": "1.0+local"})
    assert str(error.value) == (
        "The `image_tags` field of the target services/api:api has the tag 'v{version}', which "
        "becomes 'v1.0+local': not a valid tag (at most 128 letters, digits, '_', '.' and '-', not "
        "starting with '.' or '-').\n\nFix: use placeholders whose values fit (e.g. a version "
        "without '+'), or a literal tag."
    )


@pytest.mark.parametrize(
    "pyproject, problem",
    [
        pytest.param(b"[project]\nname = 'esb-api'\n", "sets no `[project].version`", id="missing"),
        pytest.param(
            b"[project]\nname = 'esb-api'\ndynamic = ['version']\n",
            "declares `version` as dynamic",
            id="dynamic",
        ),
        pytest.param(b"[project\n", "is not valid TOML", id="toml"),
    ],
)
def test_version_problems_name_the_file_and_the_fix(pyproject: bytes, problem: str) -> None:
    with pytest.raises(PublishError) as error:
        project_version(pyproject, "services/api/pyproject.toml", tags(["v{version}"]))
    message = str(error.value)
    assert message.startswith(
        "The `image_tags` field of the target services/api:api uses {version}, but "
        f"services/api/pyproject.toml {problem}"
    )
    assert "Fix: " in message


def test_version_from_pyproject() -> None:
    assert project_version(b"[project]\nversion = '2.0.1'\n", "p.toml", tags([])) == "2.0.1"


def test_git_commit_of_a_clean_working_tree() -> None:
    head = GitHead("/repo", COMMIT)
    assert git_commit_tag_value(head, tags(["latest", "git-{git_commit}"])) == COMMIT


@pytest.mark.parametrize(
    "head, problem",
    [
        pytest.param(
            GitHead("/repo", COMMIT, uncommitted=("services/api/BUILD", "services/api/src/new.py")),
            "but the working tree at /repo differs from the commit checked out, 89abcdef0123 "
            "(services/api/BUILD, services/api/src/new.py): the image is built from the working "
            "tree, so the tag could name a commit that does not build it.\n\nFix: commit the "
            "changes (or stash them) and publish again, or tag with {digest}, which names the "
            "image's content, instead.",
            id="uncommitted",
        ),
        pytest.param(
            GitHead(),
            "but Pants finds no git repository (or no `git`) at the build root.\n\nFix: publish "
            "from a git checkout, or remove {git_commit} from the tag.",
            id="no-git",
        ),
        pytest.param(
            GitHead("/repo", git_error="fatal: ambiguous argument 'HEAD'"),
            "but git names no commit checked out at /repo (fatal: ambiguous argument 'HEAD')."
            "\n\nFix: commit, then publish again.",
            id="no-commit",
        ),
    ],
)
def test_git_commit_problems_name_the_target_the_tag_and_the_fix(
    head: GitHead, problem: str
) -> None:
    with pytest.raises(PublishError) as error:
        git_commit_tag_value(head, tags(["latest", "git-{git_commit}"]))
    assert str(error.value) == (
        f"The `image_tags` field of the target services/api:api has the tag 'git-{{git_commit}}', {problem}"
    )


def test_many_uncommitted_files_are_counted_rather_than_listed() -> None:
    head = GitHead("/repo", COMMIT, uncommitted=tuple(f"f{index}" for index in range(8)))
    with pytest.raises(PublishError) as error:
        git_commit_tag_value(head, tags(["git-{git_commit}", "{git_commit}-{digest}"]))
    message = str(error.value)
    assert message.startswith(
        "The `image_tags` field of the target services/api:api has the tags 'git-{git_commit}', "
        "'{git_commit}-{digest}', but"
    )
    assert "(f0, f1, f2, f3, f4 and 3 more)" in message


def test_templates_whose_placeholders_have_no_value_are_left_out() -> None:
    field = tags(["latest", "sha-{digest}", "v{version}", "git-{git_commit}"])
    assert filled_tags(field, {"digest": "0123456789ab", "version": "1.0"}) == {
        "latest": "latest",
        "sha-0123456789ab": "sha-{digest}",
        "v1.0": "v{version}",
    }

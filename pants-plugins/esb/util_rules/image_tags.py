"""The tags of an image with their placeholders filled in: `{digest}`, `{pants.hash}`,
`{git_commit}` and `{version}`. `publish` pushes these tags; `package` lists those it can fill
in, in `<output>.docker-info.json`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from pants.base.glob_match_error_behavior import GlobMatchErrorBehavior
from pants.core.util_rules.system_binaries import GitBinaryException
from pants.engine.addresses import Address
from pants.engine.fs import DigestContents, PathGlobs
from pants.engine.rules import Get, collect_rules, rule
from pants.vcs.git import GitWorktreeRequest, MaybeGitWorktree

from esb.subsystems.registries import PublishError
from esb.target_types import (
    CONTENT_PLACEHOLDERS,
    SERVICE_PYPROJECT_FILE,
    TAG_PLACEHOLDER,
    EsbBaseImageTarget,
    EsbImageTagsField,
)
from esb.toml_files import TomlError, parse_toml
from esb.util_rules.service import in_service

DIGEST_TAG_LENGTH = 12
"""`{digest}` is this many hex digits of the manifest digest, as Docker shortens image IDs."""


@dataclass(frozen=True)
class TagTemplates:
    """The tags to give an image as written, placeholders and all, and where they are written."""

    templates: tuple[str, ...]
    address: Address
    source: str
    """How messages name where the templates come from, e.g. "The `image_tags` field of the
    target services/api:api"."""

    @classmethod
    def of(
        cls,
        field: EsbImageTagsField,
        address: Address,
        extra: tuple[str, ...] = (),
        extra_source: str = "",
    ) -> TagTemplates:
        """The `image_tags` of the target at `address`, and the `extra` tags from
        `extra_source` after them."""
        source = f"The `{field.alias}` field of the target {address}"
        if extra:
            source = f"{source}, with {extra_source},"
        return cls((*(field.value or ()), *extra), address, source)

    def using(self, placeholder: str) -> list[str]:
        return [template for template in self.templates if f"{{{placeholder}}}" in template]


def filled_tags(tags: TagTemplates, values: Mapping[str, str]) -> dict[str, str]:
    """The tags with their placeholders filled in from `values`, each tag once, mapped to the
    template it came from. A template using a placeholder that `values` lacks is left out."""
    filled: dict[str, str] = {}
    for template in tags.templates:
        if any(name not in values for name in TAG_PLACEHOLDER.findall(template)):
            continue
        tag = TAG_PLACEHOLDER.sub(lambda match: values[match[1]], template)
        if not EsbImageTagsField.is_valid(tag):
            raise PublishError(
                f"{tags.source} has the tag {template!r}, which becomes {tag!r}: not a valid tag "
                "(at most 128 letters, digits, '_', '.' and '-', not starting with '.' or '-')."
                "\n\nFix: use placeholders whose values fit (e.g. a version without '+'), or a "
                "literal tag."
            )
        filled.setdefault(tag, template)
    return filled


def project_version(pyproject: bytes, path: str, tags: TagTemplates) -> str:
    """`[project].version` of a service's pyproject.toml, for `{version}` in its tags."""
    where = f"{tags.source} uses {{version}}"
    try:
        project = parse_toml(pyproject).get("project", {})
    except TomlError as e:
        raise PublishError(
            f"{where}, but {path} is not valid TOML: {e}.\n\nFix: correct {path}."
        ) from None
    version = project.get("version") if isinstance(project, dict) else None
    if not isinstance(version, str) or not version:
        dynamic = isinstance(project, dict) and "version" in (project.get("dynamic") or ())
        problem = "declares `version` as dynamic" if dynamic else "sets no `[project].version`"
        raise PublishError(
            f'{where}, but {path} {problem}.\n\nFix: set `version = "1.2.3"` under `[project]` '
            f"in {path}, or remove {{version}} from the tag."
        )
    return version


@dataclass(frozen=True)
class GitHeadRequest:
    pass


@dataclass(frozen=True)
class GitHead:
    """What `{git_commit}` may stand for: the commit checked out at the build root, and whether
    the working tree still is that commit."""

    worktree: Optional[str] = None
    """None: Pants finds no git repository (or no `git`) at the build root."""
    commit: Optional[str] = None
    """None with a worktree: git names no commit checked out, for the reason in `git_error`."""
    git_error: Optional[str] = None
    uncommitted: tuple[str, ...] = ()
    """Files that differ from the commit: modified, staged, deleted, or new and not ignored."""


@rule
async def git_head(_: GitHeadRequest) -> GitHead:
    # Asked once per run, however many images use {git_commit}.
    worktree = (await Get(MaybeGitWorktree, GitWorktreeRequest())).git_worktree
    if worktree is None:
        return GitHead()
    try:
        commit = str(worktree.commit_id)
        uncommitted = worktree.changed_files(include_untracked=True)
    except GitBinaryException as e:
        return GitHead(str(worktree.worktree), git_error=str(e))
    return GitHead(str(worktree.worktree), commit, uncommitted=tuple(sorted(uncommitted)))


UNCOMMITTED_FILES_SHOWN = 5
"""How many of the uncommitted files the error about them names."""


def git_commit_tag_value(head: GitHead, tags: TagTemplates) -> str:
    """The value of `{git_commit}` in the tags: refused unless the working tree is exactly the
    commit, since the tag would name a commit the image was not built from."""
    templates = [repr(tag) for tag in tags.using("git_commit")]
    where = f"{tags.source} has the tag{'s' if len(templates) > 1 else ''} {', '.join(templates)}"
    if head.worktree is None:
        raise PublishError(
            f"{where}, but Pants finds no git repository (or no `git`) at the build root.\n\n"
            "Fix: publish from a git checkout, or remove {git_commit} from the tag."
        )
    if head.commit is None:
        raise PublishError(
            f"{where}, but git names no commit checked out at {head.worktree} "
            f"({head.git_error}).\n\nFix: commit, then publish again."
        )
    if head.uncommitted:
        shown = ", ".join(head.uncommitted[:UNCOMMITTED_FILES_SHOWN])
        more = len(head.uncommitted) - UNCOMMITTED_FILES_SHOWN
        files = f"{shown} and {more} more" if more > 0 else shown
        raise PublishError(
            f"{where}, but the working tree at {head.worktree} differs from the commit checked "
            f"out, {head.commit[:12]} ({files}): the image is built from the working tree, so "
            "the tag could name a commit that does not build it.\n\nFix: commit the changes (or "
            "stash them) and publish again, or tag with {digest}, which names the image's "
            "content, instead."
        )
    return head.commit


async def _service_version(tags: TagTemplates) -> str:
    address = tags.address
    path = in_service(address, SERVICE_PYPROJECT_FILE)
    contents = await Get(
        DigestContents,
        PathGlobs(
            [path],
            glob_match_error_behavior=GlobMatchErrorBehavior.error,
            description_of_origin=f"{{version}} in the tags of {address}",
        ),
    )
    return project_version(contents[0].content, path, tags)


async def _placeholder_value(name: str, tags: TagTemplates, service: bool) -> str:
    if name == "git_commit":
        head = await Get(GitHead, GitHeadRequest())
        return git_commit_tag_value(head, tags)
    if not service:
        raise PublishError(
            f"{tags.source} uses {{version}}, a service's "
            f"`[project].version`, but an `{EsbBaseImageTarget.alias}` has no pyproject.toml."
            "\n\nFix: tag the base with {digest} or {git_commit}, or a literal version."
        )
    return await _service_version(tags)


async def tag_values(
    tags: TagTemplates, service: bool, image_digest: str, *, strict: bool
) -> dict[str, str]:
    """The values of the placeholders the tags use, and only of those (finding the version or
    the commit may fail). `strict`: a value that cannot be found fails, naming the fix
    (`publish`); otherwise it is left out, and so are the tags that use it (`package`)."""
    used = {name for tag in tags.templates for name in TAG_PLACEHOLDER.findall(tag)}
    content_hash = image_digest.partition(":")[2]
    digest, pants_hash = CONTENT_PLACEHOLDERS
    values = {digest: content_hash[:DIGEST_TAG_LENGTH], pants_hash: content_hash}
    for name in sorted(used - set(values)):
        try:
            values[name] = await _placeholder_value(name, tags, service)
        except PublishError:
            if strict:
                raise
    return values


def rules():
    return collect_rules()

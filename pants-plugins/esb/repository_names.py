"""An image's repository name, from a template with the placeholders of Pants' `docker_image`.

The template is the target's `repository` field, else `[esb-registries].default_repository`; a
`[esb-registries].publish` entry's `repository` renames the image on that registry, where
`{target_repository}` is the name the image has everywhere else.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Mapping, Optional

from pants.engine.addresses import Address

from esb_contract import reference

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
"""`{name}` in a repository or a tag, filled in when the target is known."""
DEFAULT_REPOSITORY = "{name}"
REPOSITORY_PLACEHOLDERS = ("name", "directory", "parent_directory", "full_directory")
"""`{name}`: the target's name; `{directory}`: the name of its BUILD file's directory;
`{parent_directory}`: of the directory above; `{full_directory}`: the path from the build root."""
TARGET_REPOSITORY = "target_repository"
REGISTRY_REPOSITORY_PLACEHOLDERS = (*REPOSITORY_PLACEHOLDERS, TARGET_REPOSITORY)

PLACEHOLDERS_HELP = (
    "`{name}` (the target's name), `{directory}` (the name of the directory of its BUILD file), "
    "`{parent_directory}` (of the directory above that) and `{full_directory}` (the path of "
    "that directory from the build root)"
)
_GRAMMAR = (
    "lower-case letters and digits, separated by '.', '_', '__' or '-', with '/' between "
    "components"
)


class RepositoryNameError(ValueError):
    """A repository template, or the name it gives, that is no OCI repository name."""


def _fill(template: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), template)


def template_problem(template: str, known: tuple[str, ...]) -> Optional[str]:
    """Why `template` cannot give a repository name whatever the target; None if it can."""
    unknown = [name for name in PLACEHOLDER.findall(template) if name not in known]
    if unknown:
        return (
            f"it has the placeholder(s) {', '.join(f'{{{name}}}' for name in unknown)}, "
            f"which are not among {', '.join(f'{{{name}}}' for name in known)}"
        )
    sample = _fill(template, {name: "a" for name in known})
    if not reference.REPOSITORY.fullmatch(sample):
        return f"it is not made of {_GRAMMAR} (placeholders aside)"
    return None


def placeholder_values(address: Address) -> dict[str, str]:
    """The placeholders' values for the target at `address`, in lower case as Pants'
    `docker_image` gives them (a target `MyApi` is the image `myapi`)."""
    directory = PurePosixPath(address.spec_path)
    values = {
        "name": address.target_name,
        "directory": directory.name,
        "parent_directory": directory.parent.name if address.spec_path else "",
        "full_directory": address.spec_path,
    }
    return {name: value.lower() for name, value in values.items()}


def fill_repository(
    template: str, address: Address, where: str, fix: str, target_repository: str = ""
) -> str:
    """`template` filled in for the target at `address`, checked. `where` says, for the error,
    which field or option the template came from; `fix` how to mend it."""
    values = placeholder_values(address)
    if target_repository:
        values[TARGET_REPOSITORY] = target_repository
    repository = _fill(template, values)
    if not reference.REPOSITORY.fullmatch(repository):
        bad = [
            part for part in repository.split("/") if not reference.PATH_COMPONENT.fullmatch(part)
        ]
        raise RepositoryNameError(
            f"{where} is {template!r}, which names the image of {address} {repository!r}: not "
            f"an OCI repository name (the component(s) {', '.join(map(repr, bad))} are not "
            f"{_GRAMMAR}).\n\nFix: {fix}"
        )
    return repository

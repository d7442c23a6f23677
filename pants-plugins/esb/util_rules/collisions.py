"""No two images in the same place: one check over every image target of the repository.

Two images that `publish` pushes to the same tag of the same repository on a registry would
replace each other's tag, the last published winning; two images with the same `output_path`
would write the same files under `dist/`. Both are decided by the targets' fields alone, so one
rule looks at all image targets (not only those on the command line: the other image may be
published by another run) once per change of BUILD files, and `package` and `publish` ask it
about each image they handle.

Tags are compared as written: `{digest}` or `{pants.hash}` makes a tag unique to each image's
content, while
`{git_commit}` and `{version}` can give two images the same value, so tags with them collide
when written alike.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Optional

from pants.engine.addresses import Address
from pants.engine.rules import collect_rules, rule
from pants.engine.target import AllTargets, Target
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from esb.subsystems.registries import RegistriesSubsystem, package_destinations
from esb.target_types import (
    EsbBaseImageTarget,
    EsbImageOutputPathField,
    EsbImageRegistriesField,
    EsbImageRepositoryField,
    EsbImageTagsField,
    EsbServiceImageTarget,
    names_content,
)

_SHOWN = 3
"""How many of the shared tags a message names."""
LOCAL_ONLY = "no registry: the name `pants run` loads it under"


class ImageCollisionError(Exception):
    """Two image targets in the same place; the message names both, the fields and the fix."""


@dataclass(frozen=True)
class ImagePlacement:
    """Where an image target goes: its `dist/` prefix, and the tags it publishes."""

    address: Address
    output_path: str
    repository: str
    registries: tuple[str, ...]
    """How messages name each registry it publishes to (e.g. `@internal (r.example:5000)`)."""
    tagged: tuple[str, ...]
    """`registry/repository:tag` for every registry and every tag that could be another
    image's too (as written, without the tags holding `{digest}`)."""


def image_placement(target: Target, registries: RegistriesSubsystem) -> ImagePlacement:
    repository = target[EsbImageRepositoryField].image_repository(registries.default_repository)
    destinations = package_destinations(
        target[EsbImageRegistriesField], target.address, registries.publish_registries
    )
    tags = [tag for tag in target[EsbImageTagsField].value or () if not names_content(tag)]
    if destinations:
        described = tuple(destination.description for destination in destinations)
        tagged = []
        for destination in destinations:
            here = destination.image_repository(repository, target.address)
            names = [destination.name(here), destination.local_alias(here)]
            extra = [tag for tag in destination.extra_image_tags if not names_content(tag)]
            tagged += [f"{name}:{tag}" for name in names if name for tag in (*tags, *extra)]
    else:
        # Published nowhere, the image still has a name: the one `pants run` loads it under,
        # which another image of the same name would take over.
        described, tagged = (LOCAL_ONLY,), [f"{repository}:{tag}" for tag in tags]
    return ImagePlacement(
        address=target.address,
        output_path=target[EsbImageOutputPathField].value_or_default(file_ending=None),
        repository=repository,
        registries=described,
        tagged=tuple(dict.fromkeys(tagged)),
    )


def _tagged_message(first: ImagePlacement, second: ImagePlacement, shared: list[str]) -> str:
    shown = ", ".join(shared[:_SHOWN]) + (
        f" and {len(shared) - _SHOWN} more" if len(shared) > _SHOWN else ""
    )
    repository, tags, registries = (
        EsbImageRepositoryField.alias,
        EsbImageTagsField.alias,
        EsbImageRegistriesField.alias,
    )
    return (
        f"The image targets {first.address} and {second.address} both take {shown}: whichever "
        "is published or loaded last would replace the other's tag. The name comes from the fields "
        f"`{repository}` ({first.repository!r} and {second.repository!r}), `{tags}` and "
        f"`{registries}` ({', '.join(first.registries)} and {', '.join(second.registries)}).\n\n"
        f"Fix: give {second.address} a `{repository}` of its own (e.g. "
        f'`{repository}="{first.repository.rpartition("/")[0] or "esb"}/'
        f'{second.address.target_name}"`), or `{tags}` that differ (a tag with {{digest}} is '
        f"unique to each image), or `{registries}` that do not overlap."
    )


def _output_path_message(first: ImagePlacement, second: ImagePlacement) -> str:
    field = EsbImageOutputPathField.alias
    return (
        f"The image targets {first.address} and {second.address} both write "
        f"`{first.output_path}.oci`, `.image.json` and `.inventory.json` under the dist "
        f"directory: their `{field}` fields are both {first.output_path!r} (set, or by "
        f"default).\n\nFix: set `{field}` on one of them to a path of its own, e.g. "
        f'`{field}="{second.address.spec_path.replace("/", ".")}/{second.address.target_name}"`.'
    )


def find_collisions(placements: Iterable[ImagePlacement]) -> dict[Address, tuple[str, ...]]:
    """For each image that shares a place with another, the messages saying so, naming both."""
    by_tagged: dict[str, list[ImagePlacement]] = defaultdict(list)
    by_output: dict[str, list[ImagePlacement]] = defaultdict(list)
    for placement in sorted(placements, key=lambda p: p.address):
        by_output[placement.output_path].append(placement)
        for tagged in placement.tagged:
            by_tagged[tagged].append(placement)
    shared: dict[tuple[ImagePlacement, ImagePlacement], list[str]] = defaultdict(list)
    for tagged, sharing in by_tagged.items():
        for index, first in enumerate(sharing):
            for second in sharing[index + 1 :]:
                shared[(first, second)].append(tagged)
    messages: dict[Address, list[str]] = defaultdict(list)
    for (first, second), tags in shared.items():
        message = _tagged_message(first, second, sorted(tags))
        messages[first.address].append(message)
        messages[second.address].append(message)
    for sharing in by_output.values():
        for index, first in enumerate(sharing):
            for second in sharing[index + 1 :]:
                message = _output_path_message(first, second)
                messages[first.address].append(message)
                messages[second.address].append(message)
    return {address: tuple(found) for address, found in messages.items()}


@dataclass(frozen=True)
class ImageCollisions:
    """The collisions among all image targets, by each address involved."""

    messages: FrozenDict[Address, tuple[str, ...]]


@rule(desc="Check that no two images share a tag or an output path", level=LogLevel.DEBUG)
async def find_image_collisions(
    all_targets: AllTargets, registries: RegistriesSubsystem
) -> ImageCollisions:
    images = [
        target
        for target in all_targets
        if isinstance(target, (EsbBaseImageTarget, EsbServiceImageTarget))
    ]
    placements = [image_placement(target, registries) for target in images]
    return ImageCollisions(FrozenDict(find_collisions(placements)))


@dataclass(frozen=True)
class UniqueImageRequest:
    address: Address


@dataclass(frozen=True)
class UniqueImage:
    """The image target at `address` shares no tag and no output path with another."""

    address: Address


@rule
async def check_image_is_unique(
    request: UniqueImageRequest, collisions: ImageCollisions
) -> UniqueImage:
    found: Optional[tuple[str, ...]] = collisions.messages.get(request.address)
    if found:
        raise ImageCollisionError("\n\n".join(found))
    return UniqueImage(request.address)


def rules():
    return collect_rules()

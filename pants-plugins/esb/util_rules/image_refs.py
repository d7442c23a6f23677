"""The names an image goes by, per registry: its repository there and its tags there, filled in.

`package` lists them in `<output>.docker-info.json`, `publish` pushes them, and `pants run` names
the image in the engine by them: one computation for the three, as Pants' `docker_image` has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from pants.engine.addresses import Address

from esb.subsystems.registries import (
    PublishDestination,
    RegistriesSubsystem,
    package_destinations,
    publish_destinations,
)
from esb.target_types import EsbImageRegistriesField, EsbImageRepositoryField, EsbImageTagsField
from esb.util_rules.image_tags import TagTemplates, filled_tags, tag_values


@dataclass(frozen=True)
class RegistryRefs:
    """The image on one registry (or, with no registry, by its local name)."""

    destination: Optional[PublishDestination]
    repository: str
    """The image's repository name there, without the registry."""
    tags: Mapping[str, str]
    """Each tag, filled in, mapped to the template it came from."""

    @property
    def name(self) -> str:
        """`registry/repository`, or the repository alone with no registry."""
        return self.destination.name(self.repository) if self.destination else self.repository

    @property
    def local_alias(self) -> Optional[str]:
        """`alias/repository` when the registry's entry sets `use_local_alias`."""
        return self.destination.local_alias(self.repository) if self.destination else None


@dataclass(frozen=True)
class ImageNaming:
    """The fields of an image target that name it."""

    address: Address
    repository: EsbImageRepositoryField
    tags: EsbImageTagsField
    registries: EsbImageRegistriesField
    service: bool
    """A service image, whose tags may use `{version}`."""


def destinations_of(
    naming: ImageNaming, registries: RegistriesSubsystem, *, strict: bool
) -> tuple[PublishDestination, ...]:
    """Where `publish` pushes the image. `strict`: a `registries` field with a problem fails
    (`publish`); otherwise the image has no registry (`package`, `pants run`)."""
    find = publish_destinations if strict else package_destinations
    return find(naming.registries, naming.address, registries.publish_registries)


async def image_refs(
    naming: ImageNaming,
    destinations: tuple[PublishDestination, ...],
    registries: RegistriesSubsystem,
    image_digest: str,
    *,
    strict: bool,
) -> tuple[RegistryRefs, ...]:
    """The image's names on each of `destinations`; with none, its local name. `strict`: a tag
    placeholder without a value fails (`publish`); otherwise the tags using it are left out."""
    repository = naming.repository.image_repository(registries.default_repository)
    refs = []
    for destination in destinations or (None,):
        templates = (
            TagTemplates.of(
                naming.tags,
                naming.address,
                destination.extra_image_tags,
                destination.extra_tags_source,
            )
            if destination
            else TagTemplates.of(naming.tags, naming.address)
        )
        values = await tag_values(templates, naming.service, image_digest, strict=strict)
        refs.append(
            RegistryRefs(
                destination,
                (
                    destination.image_repository(repository, naming.address)
                    if destination
                    else repository
                ),
                filled_tags(templates, values),
            )
        )
    return tuple(refs)

"""How the processes that make an image's layers and assemble it are described: Pants shows
these descriptions while it runs them, and the benchmarks tell the image work from the rest
(lock checks, tool builds, resolves) by them. Pants' workunit log of a process holds its
description but neither its arguments nor metadata of ours, so the description is the marker."""

BUILD = "Build the"
INSTALL = "Install"
ASSEMBLE = "Assemble"

IMAGE_STEPS = (BUILD, INSTALL, ASSEMBLE)


def describe(step: str, subject: str) -> str:
    """The description of an image step, e.g. `describe(BUILD, "uv layer (3.11)")`."""
    if step not in IMAGE_STEPS:
        raise ValueError(f"{step!r} is not an image step; one of {IMAGE_STEPS}")
    return f"{step} {subject}"


def is_image_step(description: str) -> bool:
    """Whether a process so described made a layer or assembled an image."""
    return any(description.startswith(f"{step} ") for step in IMAGE_STEPS)

"""The esb backend: daemonless, reproducible OCI images for a Python microservice monorepo."""

from esb import pyproject_errors
from esb.goals import lint, lock, package, publish, run, tailor
from esb.subsystems import image_tool, tool_interpreter, uv
from esb.target_types import EsbBaseImageTarget, EsbServiceImageTarget
from esb.util_rules import base, collisions, created, dependencies, image, layers, service, upstream


def target_types():
    return [EsbBaseImageTarget, EsbServiceImageTarget]


def rules():
    pyproject_errors.install()
    return [
        *base.rules(),
        *collisions.rules(),
        *created.rules(),
        *dependencies.rules(),
        *image.rules(),
        *image_tool.rules(),
        *layers.rules(),
        *lint.rules(),
        *lock.rules(),
        *package.rules(),
        *publish.rules(),
        *run.rules(),
        *service.rules(),
        *tailor.rules(),
        *tool_interpreter.rules(),
        *uv.rules(),
        *upstream.rules(),
    ]

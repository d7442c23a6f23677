"""The image tool: the plain `imagetool` library, run by the backend as sandboxed processes.

The library ships inside the plugin (like Pants' docker backend ships its Dockerfile parser) and
is packed into a PEX with its third-party requirements, so that every image-building step is an
ordinary, cacheable `Process` whose key covers the tool's code. The requirements come from the
lockfile that ships beside this module (package data of the plugin's wheel), or from a resolve of
the user's repository that `[esb-image-tool].resolve` names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from typing import Iterator, Optional

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import EntryPoint, PexLayout
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_environment import PythonExecutable
from pants.backend.python.util_rules.pex_requirements import (
    EntireLockfile,
    LoadedLockfile,
    LoadedLockfileRequest,
    Lockfile,
    Resolve,
    ResolvePexConfig,
    ResolvePexConfigRequest,
)
from pants.engine.fs import CreateDigest, Digest, DigestSubset, FileContent, PathGlobs, RemovePrefix
from pants.engine.process import Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.option.global_options import GlobalOptions
from pants.option.option_types import StrOption
from pants.option.subsystem import Subsystem
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel
from pants.util.strutil import help_text, softwrap

from esb.compat import Traversable
from esb.subsystems.tool_interpreter import ToolInterpreter, ToolInterpreterRequest
from esb.subsystems.uv import UvWheel
from esb_contract.commands import read_argv

IMAGE_TOOL_PACKAGE = "imagetool"
# The packages the tool's PEX holds: the tool, and the contract it shares with this backend.
IMAGE_TOOL_PACKAGES = (IMAGE_TOOL_PACKAGE, "esb_contract")
# The lockfile of the tool's requirements that ships with the backend: the package and the file
# name of `importlib.resources`. It is also this repository's `esb-image-tool` resolve's lockfile,
# so `pants generate-lockfiles --resolve=esb-image-tool` updates what the wheel ships.
DEFAULT_LOCKFILE_RESOURCE = ("esb.subsystems", "esb-image-tool.lock")
# With a remote cache, Pants races each step's cache lookup against running the step locally, and
# by default starts both at once: a small layer can then finish locally before its hit has been
# fetched, so that a workspace with a warm remote cache still rebuilds steps (and spends a core on
# every hit). The local run waits this long for the lookup instead. A miss, or a cache that cannot
# be reached, ends the lookup at once and the step runs without delay.
REMOTE_CACHE_SPECULATION_DELAY_MILLIS = 10_000
# Every image-tool process's `TMPDIR`: a directory of its sandbox (Pants puts the sandbox's path for
# `{chroot}`), so that no scratch file outlives the process in the machine's /tmp.
SCRATCH_DIRECTORY = "{chroot}/.tmp"
# A lockfile without a resolve's name: Pants then takes the PEX's interpreter as given.
_UNNAMED = ""


class ImageToolResolveError(ValueError):
    pass


class ImageToolSubsystem(Subsystem):
    options_scope = "esb-image-tool"
    help = help_text(
        """
        The image tool that builds layers and images in sandboxed, cacheable processes. Its
        code ships with the esb backend; its third-party requirements come from the lockfile
        that ships with it, or from a resolve of your repository.
        """
    )

    resolve = StrOption(
        default=None,
        advanced=True,
        help=softwrap(
            """
            The resolve (in `[python].resolves`) that provides the image tool's requirements:
            `isal`, `python-debian`, `pyelftools`, `packaging`, `docker`, `requests` and
            `urllib3`. The tool runs on that resolve's interpreter constraints; use the Python
            minor version of the base images (3.11 for Debian 12) so that bytecode compiled at
            build time is valid there. Unset, the tool installs the lockfile that ships with
            the esb backend, on the interpreter constraints it was locked for (CPython 3.11).
            """
        ),
    )


def _tool_files(directory: Traversable, prefix: str) -> Iterator[FileContent]:
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        path = f"{prefix}/{entry.name}"
        if entry.is_dir():
            if entry.name != "__pycache__":
                yield from _tool_files(entry, path)
        elif entry.name.endswith(".py") and not (
            entry.name.endswith("_test.py") or entry.name == "conftest.py"
        ):
            yield FileContent(path, entry.read_bytes())


@dataclass(frozen=True)
class ImageToolPexRequest:
    pex_request: PexRequest


@dataclass(frozen=True)
class ImageTool:
    """The tool's venv PEX, split for its processes: `launcher` is the PEX with only its scripts
    (which run the venv that the first run seeds into Pants' named cache), and `packed` the
    packed PEX those scripts seed it from, which every process gets as an immutable input: Pants
    then links it into each sandbox instead of writing its files there."""

    launcher: VenvPex
    packed: Digest


@rule
async def image_tool_pex_request(
    subsystem: ImageToolSubsystem, python_setup: PythonSetup
) -> ImageToolPexRequest:
    sources = await Get(
        Digest,
        CreateDigest(
            file
            for package in IMAGE_TOOL_PACKAGES
            for file in _tool_files(resources.files(package), package)
        ),
    )
    if subsystem.resolve:
        if subsystem.resolve not in python_setup.resolves:
            raise ImageToolResolveError(
                softwrap(
                    f"""
                    The option `[{subsystem.options_scope}].resolve` names the resolve
                    `{subsystem.resolve}`, which `[python].resolves` does not have (it has:
                    {', '.join(sorted(python_setup.resolves)) or 'none'}). Add it there with its
                    lockfile, or unset the option to use the lockfile shipped with the esb backend.
                    """
                )
            )
        lockfile = await Get(Lockfile, Resolve(subsystem.resolve, use_entire_lockfile=True))
        constraints = InterpreterConstraints(
            python_setup.resolves_to_interpreter_constraints.get(
                subsystem.resolve, python_setup.interpreter_constraints
            )
        )
    else:
        package, name = DEFAULT_LOCKFILE_RESOURCE
        lockfile = Lockfile(
            url=f"resource://{package}/{name}",
            url_description_of_origin="the image tool's lockfile, shipped with the esb backend",
            resolve_name=subsystem.options_scope,
        )
        loaded = await Get(LoadedLockfile, LoadedLockfileRequest(lockfile))
        # Pants writes the header that holds the constraints: the shipped lockfile has one.
        assert loaded.metadata is not None
        constraints = loaded.metadata.valid_for_interpreter_constraints
    interpreter, resolve_config, unnamed_config = await MultiGet(
        Get(ToolInterpreter, ToolInterpreterRequest(constraints)),
        Get(ResolvePexConfig, ResolvePexConfigRequest(lockfile.resolve_name)),
        Get(ResolvePexConfig, ResolvePexConfigRequest(_UNNAMED)),
    )
    python: PythonExecutable | None = None
    if interpreter.python and resolve_config == unnamed_config:
        # Pants refills blank constraints from a named resolve, and a PEX request takes an
        # interpreter or constraints, never both: the lockfile goes unnamed, which changes nothing
        # else when no `[python]` option is set per resolve for its name.
        python = interpreter.python
        lockfile = replace(lockfile, resolve_name=_UNNAMED)
        constraints = InterpreterConstraints()
    return ImageToolPexRequest(
        PexRequest(
            output_filename="imagetool.pex",
            internal_only=True,
            # A directory: `ImageTool.packed` is an immutable input, which must be one.
            layout=PexLayout.PACKED,
            requirements=EntireLockfile(lockfile),
            python=python,
            interpreter_constraints=constraints,
            sources=sources,
            main=EntryPoint(f"{IMAGE_TOOL_PACKAGE}.cli", "main"),
        )
    )


@rule(desc="Build the image tool", level=LogLevel.DEBUG)
async def build_image_tool(request: ImageToolPexRequest) -> ImageTool:
    pex = await Get(VenvPex, PexRequest, request.pex_request)
    packed_prefix = pex.pex_filename
    scripts, packed = await MultiGet(
        Get(Digest, DigestSubset(pex.digest, PathGlobs(["*", f"!{packed_prefix}"]))),
        Get(Digest, DigestSubset(pex.digest, PathGlobs([f"{packed_prefix}/**"]))),
    )
    return ImageTool(
        replace(pex, digest=scripts), await Get(Digest, RemovePrefix(packed, packed_prefix))
    )


@dataclass(frozen=True)
class ImageToolRequest:
    """One run of the image tool: `argv` is a subcommand and its arguments."""

    argv: tuple[str, ...]
    description: str
    input_digest: Digest
    output_files: tuple[str, ...] = ()
    output_directories: tuple[str, ...] = ()
    needs_network_trust: bool = False
    cache_scope: ProcessCacheScope = ProcessCacheScope.SUCCESSFUL
    append_only_caches: FrozenDict[str, str] = FrozenDict()
    """Named caches (name → path in the sandbox), kept between runs; their contents are not part
    of the cache key."""
    extra_env: FrozenDict[str, str] = FrozenDict()
    """Variables of the process's environment (part of its cache key)."""
    uv: Optional[UvWheel] = None
    """For a command that runs uv: its pinned wheel, which the process fetches itself."""

    @property
    def full_argv(self) -> tuple[str, ...]:
        return (*self.argv, *(self.uv.argv if self.uv else ()))

    def __post_init__(self) -> None:
        # An argv the tool's parser would refuse or misread fails here, where it was built.
        read_argv(self.full_argv)


@rule
async def image_tool_process(
    request: ImageToolRequest, tool: ImageTool, global_options: GlobalOptions
) -> Process:
    env: dict[str, str] = {**request.extra_env, "TMPDIR": SCRATCH_DIRECTORY}
    # Fetching uv's wheel, on a miss of its cache, reaches the index too.
    needs_network_trust = request.needs_network_trust or request.uv is not None
    if needs_network_trust and global_options.ca_certs_path:
        env["SSL_CERT_FILE"] = global_options.ca_certs_path
    caches = {**request.append_only_caches, **(request.uv.append_only_caches if request.uv else {})}
    process = await Get(
        Process,
        VenvPexProcess(
            tool.launcher,
            argv=request.full_argv,
            description=request.description,
            input_digest=request.input_digest,
            output_files=request.output_files,
            output_directories=request.output_directories,
            extra_env=env,
            cache_scope=request.cache_scope,
            append_only_caches=caches,
            # Shown as "Completed: <description>" when it runs, and silent on a cache hit: the
            # console says exactly which steps a change re-ran.
            level=LogLevel.INFO,
        ),
    )
    return replace(
        process,
        immutable_input_digests=FrozenDict(
            {**process.immutable_input_digests, tool.launcher.pex_filename: tool.packed}
        ),
        remote_cache_speculation_delay_millis=REMOTE_CACHE_SPECULATION_DELAY_MILLIS,
    )


def rules():
    return collect_rules()

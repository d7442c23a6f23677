"""The uv binary the backend uses to install locks and ships in every service image.

uv reaches the image tool's processes as its wheel's pinned URL and a named cache, not as a
downloaded file: Pants 2.17 must download a `DownloadFile` to key a process on its digest, so
every fresh workspace would fetch the wheel even when every step that runs uv is cached. With
the pin in the key, only a step that runs fetches the wheel (once per cache) and extracts uv
(`imagetool.venv.uv_binary`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pants.engine.rules import collect_rules, rule
from pants.option.option_types import StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text, softwrap

from esb_contract import flags
from esb_contract.pinned_url import PinnedUrl

# The named cache of the pinned wheel and its extracted binary, and its path in a sandbox.
UV_NAMED_CACHE = "esb_uv"
UV_CACHE_PATH = ".cache/esb-uv"


class UvVersionError(ValueError):
    pass


_EXCLUDE_NEWER = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?")


class UvSubsystem(Subsystem):
    options_scope = "esb-uv"
    help = help_text(
        """
        The uv release used to lock and install every service's `uv.lock`, and shipped in every
        service image as `/usr/local/bin/uv`. It is taken from uv's wheel on PyPI, pinned by
        sha256, so no uv on the user's `PATH` is ever used.
        """
    )

    version = StrOption(default="0.13.9", help="The uv version to use.")
    exclude_newer = StrOption(
        default=None,
        help=softwrap(
            """
            Lock as of this time: `pants esb-lock` ignores distributions uploaded after it, as
            uv's `--exclude-newer` does (an RFC 3339 timestamp such as `2026-11-01T00:00:00Z`,
            or a date `2026-11-01`), for the `uv.lock` and the `build-constraints.txt` it
            writes. uv records the time in the lock, and `pants lint` and `pants package` check
            each lock as of the time it records: locks made at different times, or with no
            cutoff, coexist, and changing this option changes only the locks `esb-lock` writes
            next. Without it, `esb-lock` resolves against the index as it is now.
            """
        ),
    )
    known_versions = StrListOption(
        default=[
            "0.13.9|linux_x86_64|d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"
            "|17606939|https://files.pythonhosted.org/packages/3d/aa/26d64642d808de4a652579ef950d7cd2"
            "d37f080a8babf9c67c6b75fc4c3f/uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "0.13.9|linux_arm64|ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375"
            "|16864124|https://files.pythonhosted.org/packages/fe/2f/51a5de367c602592c018a42a23d57fba"
            "5f2689fe6c3bf025dcf043b39c61/uv-0.13.9-py3-none-manylinux_2_28_aarch64.whl",
        ],
        help=softwrap(
            """
            uv wheels, one per line: `<version>|<platform>|<sha256>|<size>|<url>`, where
            platform is `linux_x86_64` or `linux_arm64` (the image's architecture and the build
            host's). The sha256 and size are those PyPI lists for the wheel.
            """
        ),
        advanced=True,
    )

    def resolution_env(self) -> FrozenDict[str, str]:
        """The environment of the image-tool processes that write a `uv.lock`."""
        if not self.exclude_newer:
            return FrozenDict()
        if not _EXCLUDE_NEWER.fullmatch(self.exclude_newer):
            raise UvVersionError(
                f"`[{self.options_scope}].exclude_newer` is {self.exclude_newer!r}, which is "
                "neither a date nor an RFC 3339 timestamp.\n\nFix: set it to e.g. "
                "`2026-11-01` or `2026-11-01T00:00:00Z`."
            )
        return FrozenDict({"UV_EXCLUDE_NEWER": self.exclude_newer})

    def wheel_pin(self, platform: str) -> PinnedUrl:
        for line in self.known_versions:
            version, known_platform, sha256, size, url = (part.strip() for part in line.split("|"))
            if version == self.version and known_platform == platform:
                return PinnedUrl(url, sha256, int(size))
        raise UvVersionError(
            f"No uv {self.version} wheel for the platform {platform} is listed in "
            f"`[{self.options_scope}].known_versions`.\n\nFix: add a line "
            f"`{self.version}|{platform}|<sha256>|<size>|<url>` with the wheel's details from "
            f"https://pypi.org/project/uv/{self.version}/#files, or set "
            f"`[{self.options_scope}].version` to a listed version."
        )


@dataclass(frozen=True)
class UvWheelRequest:
    platform: str


@dataclass(frozen=True)
class UvWheel:
    """uv's wheel for the requested platform, as an image-tool process takes it: the
    arguments that pin it, and the named cache the process fetches it into."""

    pin: PinnedUrl

    @property
    def argv(self) -> tuple[str, ...]:
        return (flags.UV, self.pin.to_argument(), flags.UV_CACHE, UV_CACHE_PATH)

    @property
    def append_only_caches(self) -> FrozenDict[str, str]:
        return FrozenDict({UV_NAMED_CACHE: UV_CACHE_PATH})


@rule
async def uv_wheel(request: UvWheelRequest, uv: UvSubsystem) -> UvWheel:
    return UvWheel(uv.wheel_pin(request.platform))


def rules():
    return collect_rules()

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import pytest

from esb_contract import commands, flags
from esb_contract.commands import read_argv
from esb_contract.messages import TOOL_BUG
from imagetool.cli import COMMAND_MODULES, command, main
from imagetool.commands import CommandError
from imagetool.debian.archive import ArchiveError
from imagetool.debian.bytecode import BytecodeError
from imagetool.debian.cacerts import CertificateError
from imagetool.debian.deb import DebError
from imagetool.debian.lock import ResolutionError
from imagetool.debian.tree import TreeError
from imagetool.engine import EngineError
from imagetool.errors import ToolError
from imagetool.oci import OciError
from imagetool.tarlayer import LayerError
from imagetool.venv.indexes import LockError, VenvBuildError
from imagetool.venv.install import NoSuitableWheelError
from imagetool.venv.uv_binary import UvWheelError


def test_a_bug_exits_with_its_own_status_and_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise KeyError("a bug")

    add_arguments, _ = command(commands.BASE_LIBRARIES)
    monkeypatch.setattr("imagetool.cli.command", lambda name: (add_arguments, broken))
    assert main([commands.BASE_LIBRARIES, "--layout", "x", "--out", "y"]) == TOOL_BUG
    stderr = capsys.readouterr().err
    assert stderr.startswith("Traceback (most recent call last):")
    assert stderr.rstrip().endswith("KeyError: 'a bug'")


def test_a_command_runs_with_the_scratch_directory_that_tmpdir_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The backend names a directory of the sandbox, which holds only the inputs.
    scratch = tmp_path / "sandbox" / ".tmp"
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)
    seen = []

    def run(args: argparse.Namespace) -> int:
        seen.append(tempfile.gettempdir())
        return 0

    add_arguments, _ = command(commands.BASE_LIBRARIES)
    monkeypatch.setattr("imagetool.cli.command", lambda name: (add_arguments, run))
    assert main([commands.BASE_LIBRARIES, "--layout", "x", "--out", "y"]) == 0
    assert seen == [str(scratch)]


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES))
def test_each_command_declares_exactly_the_contracts_flags(name: str) -> None:
    add_arguments, _ = command(name)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    actions = [a for a in parser._actions if a.option_strings and a.dest != "help"]

    def declared(keep: Callable[[argparse.Action], bool]) -> set[str]:
        return {option for a in actions if keep(a) for option in a.option_strings}

    contract = commands.COMMANDS[name]
    assert declared(lambda a: True) == contract.takes
    assert declared(lambda a: a.required) == contract.required
    assert declared(lambda a: a.nargs == 0) == contract.switches
    assert declared(lambda a: isinstance(a, argparse._AppendAction)) == contract.repeated
    # Every other flag takes exactly one value, which `read_argv` assumes.
    assert declared(lambda a: a.nargs not in (None, 0) and a.nargs != 1) == set()


def test_every_flag_of_the_contract_is_some_commands() -> None:
    contract = {value for key, value in vars(flags).items() if key.isupper()}
    assert set().union(*(c.takes for c in commands.COMMANDS.values())) == contract


@pytest.mark.parametrize(
    "argv",
    [
        [
            commands.CHECK_NATIVE,
            *(flags.VENV_BLOB, "a", flags.VENV_BLOB, "b"),
            *(flags.BASE_LIBRARIES, "l", flags.BASE, "base:base"),
        ],
        [commands.RUN_IMAGE, flags.LAYOUT, "l", flags.METADATA, "m", flags.LOAD_ONLY],
        [commands.RUN_IMAGE, f"{flags.LAYOUT}=l", flags.METADATA, "m", "--", "sh", "-c", "x"],
    ],
)
def test_what_read_argv_accepts_the_tool_parses_to_the_same_values(argv: list[str]) -> None:
    invocation = read_argv(argv)
    add_arguments, _ = command(argv[0])
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parsed = vars(parser.parse_args(argv[1:]))
    for action in parser._actions:
        given = [f for f in action.option_strings if f in invocation.values]
        if given and given[0] not in invocation.arguments.switches:
            expected = list(invocation.get(given[0]))
            value = parsed[action.dest]
            assert [str(v) for v in (value if isinstance(value, list) else [value])] == expected
    assert parsed.get("command", [])[1:] == list(invocation.rest)


def test_help_lists_every_subcommand_with_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    listing = " ".join(capsys.readouterr().out.split())
    for name in COMMAND_MODULES:
        add_arguments, _ = command(name)
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        assert parser.description is not None, f"{name} has no description"
        summary = " ".join(parser.description.split()).split(". ")[0]
        assert f"{name} {summary}" in listing


def test_each_module_implements_the_subcommands_mapped_to_it() -> None:
    # Exactly the commands the backend runs, by the contract's names.
    assert set(COMMAND_MODULES) == commands.ALL
    for module in set(COMMAND_MODULES.values()):
        mapped = {name for name, owner in COMMAND_MODULES.items() if owner == module}
        assert set(importlib.import_module(module).COMMANDS) == mapped, module


@pytest.mark.parametrize(
    "error",
    [
        ArchiveError,
        BytecodeError,
        CertificateError,
        CommandError,
        DebError,
        EngineError,
        LayerError,
        LockError,
        NoSuitableWheelError,
        OciError,
        ResolutionError,
        TreeError,
        UvWheelError,
        VenvBuildError,
    ],
)
def test_every_library_error_is_a_tool_error(error: type[Exception]) -> None:
    assert issubclass(error, ToolError)


@pytest.mark.parametrize(
    "argv",
    [
        ["layer-from-dir", "--root", "."],
        ["debian-rootfs", "--lock", "absent.json", "--architecture", "amd64", "--debs", "."],
        ["uv-layer", "--uv", "absent.whl"],
        [
            "venv-layer",
            "--python-version", "3.11.2",
            "--python-platform", "x86_64-manylinux_2_36",
            "--interpreter", "/usr/bin/python3.11",
        ],
        [
            "distribution-layer",
            "--requirement", "six==1.17.0 --hash=sha256:00",
            "--uv", "absent.whl",
            "--python-version", "3.11.2",
            "--python-platform", "x86_64-manylinux_2_36",
            "--interpreter", "/usr/bin/python3.11",
        ],
    ],
    ids=lambda argv: argv[0],
)  # fmt: skip
def test_a_bad_source_date_epoch_is_one_error_for_every_layer(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")

    assert main([*argv, "--out-blob", "layer.tar.gz", "--out-descriptor", "layer.json"]) == 1

    assert capsys.readouterr().err == (
        "SOURCE_DATE_EPOCH='yesterday' is not a number of seconds since the epoch.\n"
    )


def test_debian_rootfs_writes_no_platform(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "debian-rootfs",
        "--lock",
        "l",
        "--architecture",
        "amd64",
        "--debs",
        "d",
        "--out-blob",
        "b",
        "--out-descriptor",
        "j",
    ]
    with pytest.raises(SystemExit) as exit:
        main([*argv, "--out-platform", "platform.json"])
    assert exit.value.code == 2
    assert "unrecognized arguments: --out-platform" in capsys.readouterr().err


# The commands the backend runs once per service or per distribution. Each is a process of its
# own, so what its module imports is paid hundreds of times in a cold build of many services.
PER_SERVICE_COMMANDS = (
    commands.ASSEMBLE,
    commands.DISTRIBUTION_LAYER,
    commands.EXPORT_LOCK,
    commands.MERGE_LAYERS,
    commands.PROJECT_LAYER,
)
# Libraries that only other commands need: the Debian and ELF parsers, the engine and registry
# clients.
OTHER_COMMANDS_LIBRARIES = ("debian", "docker", "elftools", "requests", "urllib3")
# Modules that only some runs of these commands need, imported where they are used: HTTPS for a
# download that the cache usually spares, `packaging` for the lock's checks, installed metadata.
MODULES_IMPORTED_WHEN_USED = ("ssl", "urllib.request", "packaging", "importlib.metadata")


def _modules_loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code`."""
    return set(
        subprocess.run(
            [sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sys.modules))"],
            capture_output=True,
            text=True,
            check=True,
            # A fresh interpreter, which finds the tool and its requirements where this one does.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        ).stdout.split()
    )


@pytest.mark.parametrize("name", PER_SERVICE_COMMANDS)
def test_a_per_service_command_imports_only_what_every_run_needs(name: str) -> None:
    loaded = _modules_loaded_by(f"from imagetool.cli import build_parser; build_parser([{name!r}])")
    assert not {m.split(".")[0] for m in loaded} & set(OTHER_COMMANDS_LIBRARIES)
    assert not set(loaded) & set(MODULES_IMPORTED_WHEN_USED)


def test_a_distributions_layer_records_need_no_debian_or_metadata_library() -> None:
    # What `distribution-layer` runs besides uv and the layer's writing: the records of the
    # distribution's METADATA, and the venv's result.
    loaded = _modules_loaded_by(
        "import tarfile\n"
        "from pathlib import Path\n"
        "from imagetool.cli import build_parser\n"
        "from imagetool.inventory import layer_inventory\n"
        "from imagetool.venv.install import BuiltVenv\n"
        f"build_parser([{commands.DISTRIBUTION_LAYER!r}])\n"
        "data = b'Metadata-Version: 2.1\\nName: demo\\nVersion: 1.0\\n\\n'\n"
        "info = tarfile.TarInfo('.venv/lib/python3.11/site-packages/demo-1.0.dist-info/METADATA')\n"
        "info.size = len(data)\n"
        "inventory = layer_inventory([(info, data)])\n"
        "assert [e.name for es in inventory.records.values() for e in es] == ['demo']\n"
        "BuiltVenv(Path('venv'), Path('venv/lib/python3.11/site-packages'), ())"
    )
    assert "debian" not in {m.split(".")[0] for m in loaded}
    assert "importlib.metadata" not in loaded

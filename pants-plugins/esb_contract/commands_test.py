from __future__ import annotations

import pytest

from esb_contract import commands, flags
from esb_contract.commands import COMMANDS, ArgvError, read_argv

RUN = [commands.RUN_IMAGE, flags.LAYOUT, "image.oci", flags.METADATA, "image.json"]


def test_an_argv_is_read_into_each_flags_values_in_order() -> None:
    invocation = read_argv(
        [*RUN, flags.ENV, "A=1", f"{flags.ENV}=B=2", flags.LOAD_ONLY, flags.TIMEOUT, "-1.5"]
    )
    assert invocation.name == commands.RUN_IMAGE
    assert invocation.arguments is COMMANDS[commands.RUN_IMAGE]
    assert invocation.value(flags.LAYOUT) == "image.oci"
    assert invocation.get(flags.ENV) == ("A=1", "B=2")
    assert invocation.get(flags.LOAD_ONLY) == ()
    assert flags.LOAD_ONLY in invocation.values
    assert invocation.get(flags.PUBLISH) == ()
    assert invocation.value(flags.TIMEOUT) == "-1.5"
    assert invocation.rest == ()


def test_what_follows_a_double_dash_is_the_commands_own() -> None:
    assert read_argv([*RUN, "--", "sh", "--help"]).rest == ("sh", "--help")


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "[] is not one of the image tool's commands"),
        (["no-such-command"], "['no-such-command'] is not one of the image tool's commands"),
        ([*RUN, flags.WHEEL, "x"], f"`run-image` takes no flag {flags.WHEEL}"),
        ([*RUN, flags.NETWORK, "a", flags.NETWORK, "b"], f"`run-image` takes {flags.NETWORK} once"),
        ([*RUN, flags.NETWORK], f"`run-image` {flags.NETWORK} needs a value"),
        ([*RUN, flags.NETWORK, "--host"], f"`run-image` {flags.NETWORK} needs a value"),
        ([*RUN, f"{flags.LOAD_ONLY}=yes"], f"`run-image` {flags.LOAD_ONLY} takes no value"),
        (RUN[:3], f"`run-image` needs {flags.METADATA}"),
    ],
)
def test_an_argv_the_tool_would_refuse_or_misread_is_refused(argv: list, message: str) -> None:
    with pytest.raises(ArgvError) as error:
        read_argv(argv)
    assert str(error.value) == message


def test_every_command_is_named_and_its_flag_sets_agree() -> None:
    assert commands.ALL == set(COMMANDS)
    for name, command in COMMANDS.items():
        assert command.repeated <= command.required | command.optional, name
        assert not command.switches & (command.required | command.optional), name
        assert not command.required & command.optional, name

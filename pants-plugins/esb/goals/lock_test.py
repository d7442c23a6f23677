from esb.goals.lock import debian_lock_argv
from esb_contract import commands, flags
from esb_contract.commands import read_argv


def test_lock_argv_keeps_source_priority_and_sorts_packages() -> None:
    argv = debian_lock_argv(
        ["python3", "bash"], ["https://a x main", "https://b y main"], ["amd64", "arm64"]
    )
    invocation = read_argv(argv)
    assert invocation.name == commands.DEBIAN_LOCK
    assert invocation.get(flags.SOURCE) == ("https://a x main", "https://b y main")
    assert invocation.get(flags.PACKAGE) == ("bash", "python3")
    assert invocation.get(flags.ARCHITECTURE) == ("amd64", "arm64")

from esb.goals.lock import debian_lock_argv


def test_lock_argv_keeps_source_priority_and_sorts_packages() -> None:
    assert debian_lock_argv(["python3", "bash"], ["https://a x main", "https://b y main"]) == (
        "debian-lock",
        "--source",
        "https://a x main",
        "--source",
        "https://b y main",
        "--package",
        "bash",
        "--package",
        "python3",
        "--out-lock",
        "packages.lock.json",
    )

from __future__ import annotations

from esb_contract.messages import TOOL_BUG, USER_ERROR, tool_message


def test_a_user_error_is_shown_as_the_tool_wrote_it() -> None:
    stderr = "the user 'x' is not in /etc/passwd.\n\nFix: set it.\n"
    assert tool_message(USER_ERROR, stderr) == "the user 'x' is not in /etc/passwd.\n\nFix: set it."


def test_a_bug_is_shown_as_one() -> None:
    stderr = "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n"
    message = tool_message(TOOL_BUG, stderr)
    assert message.startswith(
        "The image tool failed unexpectedly (exit status 70): this is a bug in esb-images."
    )
    assert message.endswith("KeyError: 'x'")

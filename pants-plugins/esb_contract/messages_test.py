from __future__ import annotations

from esb_contract.messages import error_prefix, tool_message


def test_the_backend_reads_back_what_the_tool_prints() -> None:
    stderr = f"{error_prefix('assemble')}the user 'x' is not in /etc/passwd.\nFix: set it.\n"
    assert tool_message("assemble", stderr) == "the user 'x' is not in /etc/passwd.\nFix: set it."
    # Another command's prefix is not the tool's message framing: it stays.
    assert tool_message("pull-image", "imagetool assemble: x") == "imagetool assemble: x"

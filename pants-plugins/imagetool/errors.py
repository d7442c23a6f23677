"""The one base class of the image tool's errors."""

from __future__ import annotations


class ToolError(Exception):
    """An input the user must fix; the message names the file/package and the fix.

    The CLI prints its message alone, with no traceback, and exits with `USER_ERROR`; any other
    exception is a bug in the tool (`esb_contract.messages`).
    """

"""How the image tool reports to the backend besides its output files.

A user error (bad input, with its fix) is the message alone on stderr and exit status
`USER_ERROR`; a failure the tool did not foresee is a bug, with Python's traceback on stderr and
exit status `TOOL_BUG`. A `note: <text>` line on stdout is something the backend logs as a
warning. `run-image` exits with the container's own status, as `docker run` does.
"""

NOTE_PREFIX = "note: "
USER_ERROR = 1
TOOL_BUG = 70
"""sysexits.h's EX_SOFTWARE: an internal software error."""


def tool_message(exit_code: int, stderr: str) -> str:
    """What to tell the user of a failed tool process: a user error as the tool wrote it, or,
    for a bug, the tool's output under a line that says so."""
    if exit_code == USER_ERROR:
        return stderr.strip()
    return (
        f"The image tool failed unexpectedly (exit status {exit_code}): this is a bug in "
        f"esb-images. Please report it with this output.\n\n{stderr.strip()}"
    )

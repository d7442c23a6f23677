"""How the image tool reports to the backend besides its output files: a user error is one
`imagetool <command>: <message>` on stderr and exit status 1 (any other failure is a bug), and
a `note: <text>` line on stdout is something the backend logs as a warning."""

NOTE_PREFIX = "note: "


def error_prefix(command: str) -> str:
    return f"imagetool {command}: "


def tool_message(command: str, stderr: str) -> str:
    """The message of `command`'s error on `stderr`, without the prefix, on every line."""
    prefix = error_prefix(command)
    return "\n".join(
        line[len(prefix) :] if line.startswith(prefix) else line
        for line in stderr.strip().splitlines()
    )

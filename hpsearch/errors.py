"""The one exception type for user mistakes: the CLI prints it as one line and exits 2."""

__all__ = ["UserError", "error_line"]


class UserError(Exception):
    """A problem with what the user asked for (bad flag, file, range or name), not a bug."""


def error_line(message: str) -> str:
    """The one line a user mistake is reported in, argparse's own included."""
    return f"hpsearch: error: {message}"

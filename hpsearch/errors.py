"""The one exception type for user mistakes: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """A problem with what the user asked for (bad flag, file, range or name), not a bug."""

"""The exception the CLI turns into a one-line message (and a non-zero exit) instead of a traceback."""


class UserError(Exception):
    """Bad input or environment that the user can fix; the message says how."""

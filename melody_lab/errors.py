"""The exceptions the CLI turns into a one-line message (and exit 2) instead of a traceback."""


class UserError(Exception):
    """Bad input or environment that the user can fix; the message says how."""


class BundleError(UserError):
    """A saved component or bundle folder is missing, incomplete, corrupted or of another format."""


class CheckpointError(RuntimeError):
    """A training checkpoint is missing, corrupt, or does not match what is being loaded."""

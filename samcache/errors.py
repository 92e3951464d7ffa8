"""One exception type for bad input: the CLI prints it as a single line, no traceback."""


class SamcacheError(Exception):
    """A user-facing error: missing or corrupt file, wrong checkpoint, mismatched cache."""

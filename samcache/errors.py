"""Exception types the CLI turns into one line on stderr (never a traceback)."""


class SamcacheError(Exception):
    """A user-facing error: bad value, missing or corrupt file, wrong checkpoint, mismatched cache.

    The library states the problem; ``setting`` names the setting that would fix it (e.g. "checkpoint"),
    which the CLI turns into the flag to pass (``--checkpoint``) and a notebook user into the keyword.
    """

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.setting = setting


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, carrying advice that is true for the command that was interrupted."""

    def __init__(self, advice: str, exit_code: int = 130):
        super().__init__(advice)
        self.advice, self.exit_code = advice, exit_code


class SamcacheWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints 'warning: ...')."""

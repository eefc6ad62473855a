"""How init reports a failure: the message reaches the user, the code becomes the exit code."""

from __future__ import annotations

EXIT_SETUP_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


class InitError(Exception):
    """A failure to report to the daemon: the message is shown to the user, the code is the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_SETUP_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

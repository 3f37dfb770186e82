"""Errors a user can fix, carried up to a one-line message."""


class UserError(Exception):
    """Bad usage, config or input: exit code 2, one line, no traceback."""

    exit_code = 2


class NothingToTrain(UserError):
    """A preference stage whose rows are all unusable (every prompt too long): the generation goes on without it."""


class OperationFailed(Exception):
    """A valid request that could not be carried out: exit code 1."""

    exit_code = 1

"""The one error type users see: a mistake in their input, reported in one line without a traceback."""


class BenchError(Exception):
    """Bad input from the user (unknown id, bad kwargs, missing file, ...): the CLI prints it in one line."""

"""The one error type users see: a mistake in their input, reported in one line without a traceback."""


class BenchError(Exception):
    """Bad input from the user (unknown id, bad kwargs, missing file, ...): the CLI prints it in one line."""


def one_line(text: object, limit: int = 400) -> str:
    """`text` on one line, at most `limit` characters (an error page or a policy's exception can be long)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."

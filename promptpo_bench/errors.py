"""The one error type users see: a mistake in their input, reported in one line without a traceback."""


class BenchError(Exception):
    """Bad input from the user (unknown id, bad kwargs, missing file, ...): the CLI prints it in one line."""


def clean_text(text: str) -> str:
    """`text` with what UTF-8 cannot encode (a lone surrogate: JSON's "\\ud800" decodes to one) written as its escape,
    so that a policy's failure, a Feedback's text or an LLM's answer can be written, hashed and sent on."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(text: object, limit: int = 400) -> str:
    """`text` on one line, at most `limit` characters (an error page or a policy's exception can be long)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."

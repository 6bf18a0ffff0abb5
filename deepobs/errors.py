"""Errors that mean "the input was wrong": the command line reports them in one line."""


class ConfigurationError(ValueError):
    """A bad problem name, optimizer, hyperparameter, path or data file."""


class DataError(ConfigurationError):
    """A data file is missing or corrupt; the message names the file and the fix."""


def one_line(message) -> str:
    """``message`` with every line break and control character escaped (``\\n``, ``\\x0c``),
    so that an error naming a hostile argument still fits on one line."""
    return "".join(character if character.isprintable() else character.encode("unicode_escape").decode()
                   for character in str(message))

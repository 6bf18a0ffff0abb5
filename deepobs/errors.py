"""Errors that mean "the input was wrong": the command line reports them in one line."""


class ConfigurationError(ValueError):
    """A bad problem name, optimizer, hyperparameter, path or data file."""


class DataError(ConfigurationError):
    """A data file is missing or corrupt; the message names the file and the fix."""

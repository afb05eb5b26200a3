"""User-facing errors.

Every error a user can cause by bad input is an :class:`FvlabError` whose message says what was
wrong, what is valid and how to fix it. The CLI prints such messages as one line and exits 2.
"""

from __future__ import annotations


class FvlabError(Exception):
    """An error caused by input the user can fix; the message is written for them."""


class DatasetNotFoundError(FvlabError):
    """A dataset file or folder is missing."""


class CorruptFileError(FvlabError):
    """A file exists but its content is not what it claims to be."""


class UnknownLayerError(FvlabError, LookupError):
    """A layer name does not exist in the model."""


class UnknownModelError(FvlabError, LookupError):
    """A model name is not in the zoo and is not a saved model."""


class InputShapeError(FvlabError, ValueError):
    """An image tensor does not have the shape the model expects."""


class RepeatedModuleError(FvlabError):
    """A captured module ran more than once in one forward pass, so its output is ambiguous."""


class FvlabWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints one line)."""

"""Errors a user can cause. The CLI prints their message as one line on stderr and exits non-zero."""


class StreamVSRError(Exception):
    """Base class for errors caused by input, options or environment (not bugs)."""

    exit_code = 2


class InputError(StreamVSRError):
    """The input cannot be opened, is not a video, has no frames, ..."""


class OutputError(StreamVSRError):
    """The output cannot be written (missing folder, exists without --overwrite, disk full, ...)."""


class ModelError(StreamVSRError):
    """Unknown model, bad weights folder, missing/unexpected checkpoint keys, unsupported scale, ..."""


class DecodeWarning(UserWarning):
    """A recoverable problem while decoding (e.g. a corrupt packet midway)."""


class DataError(StreamVSRError):
    """Bad training data, manifest or degradation options (empty corpus, unreadable file, bad ranges, ...)."""

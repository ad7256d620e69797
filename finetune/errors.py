"""Errors a user can cause. The CLI turns each into one line and a non-zero exit."""


class LandscapeError(Exception):
    """Base class of every error caused by user input rather than by a bug."""


class ConfigError(LandscapeError):
    """A malformed or inconsistent configuration value."""


class UnknownModelError(LandscapeError):
    """A model name timm does not know."""


class UnknownDatasetError(LandscapeError):
    """A dataset spec no registered dataset matches."""


class DatasetMissingError(LandscapeError):
    """A known dataset whose files are not on disk (and no download was asked for)."""


class IncompatibleWeightsError(LandscapeError):
    """Initial weights that do not fit the model's architecture."""


class RunDirError(LandscapeError):
    """A run directory that is missing, incomplete, corrupt or already taken."""


class NetworkError(LandscapeError):
    """Something needed the network and could not reach it."""

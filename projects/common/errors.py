# Copyright (c) EVLab contributors.
"""The error type for mistakes in a user's input."""


class EVLabError(Exception):
    """A problem with the user's input: config, data, checkpoint or flags.

    The tools print its message alone, without a traceback, since the
    message names the file, key or value at fault and what to do about it.
    """

"""The error type of bad input: a file, a config value or an option that centernet cannot use.

Every such error names the file (and the row, key or option) and says what is wrong; the ``centernet`` console
prints it as one line (``CENTERNET_TRACEBACK=1`` adds the traceback). The concrete errors also derive from the
built-in type a Python caller would expect (``ValueError`` for content, ``OSError`` for files), so code that
catches those keeps working.
"""

from __future__ import annotations

__all__ = ["InputError", "PretrainedWeightsError"]


class InputError(Exception):
    """Bad input; the message names the file (and row / key / option) and what is wrong."""


class PretrainedWeightsError(InputError, OSError):
    """Pretrained backbone weights that are neither downloadable nor cached; the message says where to put them."""

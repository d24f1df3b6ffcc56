"""Exceptions raised for a failed libsmyrf call.

Every one is a SmyrfError carrying `status` (the smyrf_status number) and `message` (the
library's own explanation, which names the argument at fault). Each also derives from
the built-in exception a Python caller would expect, so `except ValueError` catches an
invalid argument whether Python or the library spotted it.
"""


class SmyrfError(RuntimeError):
    """A libsmyrf call failed; `status` and `message` come from the library."""

    status_name = "error"

    def __init__(self, status, message):
        super().__init__(f"libsmyrf: {self.status_name}: {message}")
        self.status = status
        self.message = message


class InvalidArgumentError(SmyrfError, ValueError):
    status_name = "invalid argument"


class UnsupportedError(SmyrfError, NotImplementedError):
    status_name = "unsupported"


class OutOfMemoryError(SmyrfError, MemoryError):
    status_name = "out of memory"


class BackendUnavailableError(SmyrfError):
    status_name = "backend unavailable"


class DeviceError(SmyrfError):
    status_name = "device error"


class InternalError(SmyrfError):
    status_name = "internal error"


# Indexed by the pinned smyrf_status values of smyrf.h.
_BY_STATUS = {
    1: InvalidArgumentError,
    2: UnsupportedError,
    3: OutOfMemoryError,
    4: BackendUnavailableError,
    5: DeviceError,
    6: InternalError,
}


def from_status(status, message):
    """The exception for a failed status (the factory the SWIG module calls)."""
    return _BY_STATUS.get(status, SmyrfError)(status, message)

"""The errors the command line turns into one line and an exit status: the class says which
status, so that no code decides it at the moment it raises."""


class HiggsbenchError(Exception):
    """Something a command could not do; the message names what, and what to do about it."""

    exit_status = 1


class UsageError(HiggsbenchError):
    """A problem the user can fix: the message names the option, file, line or setting."""

    exit_status = 2


class RunFailed(HiggsbenchError):
    """A run that started and then failed: a child run of a sweep that exited with an error
    or ran past its time, a finished run whose logging to the tracking server failed."""

    exit_status = 1

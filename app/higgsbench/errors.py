"""The one exception type the command line turns into a clean message and a non-zero exit."""


class HiggsbenchError(Exception):
    """A problem the user can fix: the message names the file, line or setting and what to do."""

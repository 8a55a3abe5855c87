"""One exception type for every problem a user can fix (bad input, bad config).

The CLI turns it into a one-line message and a non-zero exit, never a traceback.
Always name the offending file and the problem in the message.
"""


class DicebenchError(Exception):
    """A problem with the user's input, configuration or environment."""

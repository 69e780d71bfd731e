"""The one exception type for user mistakes.

Entry points turn a `ConfigError` into a single line on stderr and exit code 2, with no traceback;
its message names the problem and the fix.
"""


class ConfigError(Exception):
    """Bad input from the user (flags, files, model folders): message = problem + fix, one line."""

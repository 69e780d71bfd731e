class ConfigError(Exception):
    """Bad input from the user (flags, files, model folders): a one-line problem; fix. Entry points print it
    on stderr and exit with code 2, with no traceback."""

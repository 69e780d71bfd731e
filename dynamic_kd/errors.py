class ConfigError(Exception):
    """A user's mistake (flags, files, model folders) as one line, problem; fix. Entry points print it and exit 2."""

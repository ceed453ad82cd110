"""Errors the user can fix. The plugin turns them into pytest usage errors; nothing else is caught."""


class MiaUsageError(ValueError):
    """Bad input: names the file or option at fault and says what to do."""

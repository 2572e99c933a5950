"""The one exception type for user mistakes (config, data files, paths)."""


class UserError(Exception):
    """A problem the user can fix; `main()` prints it as one line and exits 2."""

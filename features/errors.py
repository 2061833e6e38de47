"""Errors meant for users: the CLI prints them without a traceback and exits non-zero."""


class UserError(Exception):
    """Something the user can fix (bad data, bad params, a missing model, a wrong date)."""

"""The operator tools' one error: a line for the operator; the CLI exits non-zero."""

from __future__ import annotations


class OpsError(Exception):
    """One line for the operator; the CLI exits non-zero."""

"""Errors raised by the reports; all derive from :class:`funnel.errors.FunnelError`."""

from funnel.errors import FunnelError


class ReportError(FunnelError):
    """A report was asked for something the data cannot answer; the message says the fix."""

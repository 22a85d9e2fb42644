"""Errors raised by the generators of deploy files; rooted in :class:`funnel.errors.FunnelError`."""

from funnel.errors import FunnelError


class GeneratorError(FunnelError):
    """A generator was given parameters it cannot render; the message names them."""

"""Custom events: bounds on their names and properties (GA4-like), the contract.

A producer sends ``event_type: "custom"`` with ``event_name`` and an optional
``properties`` map on the clickstream topic (schema v3). After validation the event's
``event_type`` is ``custom:<event_name>``: that is how funnels name it, and how it is
stored in ``events_raw``. Names never become Prometheus labels.
"""

from __future__ import annotations

import re
from typing import Final

# A letter, then letters, digits or underscores; 40 characters at most (as GA4).
CUSTOM_EVENT_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
PROPERTY_KEY: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
MAX_PROPERTIES: Final = 25
MAX_PROPERTY_VALUE_CHARS: Final = 100

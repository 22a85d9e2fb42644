"""`funnel worker` that SIGKILLs itself inside its first forget request (issue #17 drill).

Run as ``python -m tests.integration.forget_crash_worker worker ...``. When the audit row
of phase FORGET_CRASH_AT (``started`` or ``corrected``) is written, the process kills
itself with SIGKILL, once: FORGET_CRASH_MARKER is created first, and a worker that finds
it runs normally.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from funnel.cli import main
from streams.forget_runner import ForgetRunner
from streams.outputs.forget_audit import ForgetAudit

_real_record = ForgetRunner._record


async def _record_then_die(self: ForgetRunner, audit: ForgetAudit) -> Any:
    written = await _real_record(self, audit)
    marker = Path(os.environ["FORGET_CRASH_MARKER"])
    if audit.phase == os.environ["FORGET_CRASH_AT"] and not marker.exists():
        marker.write_text(f"{audit.request_id} {audit.phase}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return written


ForgetRunner._record = _record_then_die  # type: ignore[method-assign]

if __name__ == "__main__":
    main()

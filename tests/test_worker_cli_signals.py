"""`ghlsync worker` keeps a SIGTERM/SIGINT that comes while it starts (before its event loop
takes the signals over): the first is kept and drains at once, a second stops at once."""

from __future__ import annotations

import os
import signal

import pytest

from ghlsync.cli._worker import _EarlySignals


def test_a_first_signal_while_starting_is_kept_and_a_second_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with _EarlySignals() as early:
        os.kill(os.getpid(), signal.SIGTERM)  # without the handler: the process would end
        assert early.received == 1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert early.received == 2
    after = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert after == before  # the caller's handlers are back (here: pytest's)


def test_outside_the_main_thread_it_leaves_the_signals_alone() -> None:
    import threading

    seen: list[object] = []

    def start() -> None:
        with _EarlySignals() as early:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(early.received)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    assert seen == [before, 0]

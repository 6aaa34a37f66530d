"""Chat and training taking turns on the cores (serve/core_sharing.py), on the clock with no model."""

import threading
import time

from trainer.serve.core_sharing import CoreSharing


def run_trainer(turns: CoreSharing, seconds: float) -> float:
    """Call the pause point as a training loop would for `seconds`; returns the share of time it computed."""
    computing, started = 0.0, time.monotonic()
    while time.monotonic() - started < seconds:
        turns.training_pause()
        step = time.monotonic()
        time.sleep(0.002)  # one layer's worth of work
        computing += time.monotonic() - step
    return computing / (time.monotonic() - started)


def test_a_short_burst_of_chat_is_waited_out_entirely():
    turns = CoreSharing(grace_seconds=1.0, training_share=0.5, slice_seconds=0.05)
    turns.chat_busy(True)
    threading.Timer(0.2, turns.chat_busy, args=(False,)).start()
    started = time.monotonic()
    turns.training_pause()
    assert 0.15 < time.monotonic() - started < 0.6, "the trainer waited for the reply to end"
    assert turns.slices_granted == 0


def test_steady_chat_gets_its_grace_then_shares_the_cores():
    turns = CoreSharing(grace_seconds=0.3, training_share=0.5, slice_seconds=0.05)
    turns.chat_busy(True)
    share = run_trainer(turns, 2.0)
    # 0.3 s of grace, then half of the remaining 1.7 s: about 0.42 of the whole.
    assert 0.25 < share < 0.6 and turns.slices_granted >= 10

    # The decode loop holds still during a training slice, and only then.
    granted = turns.slices_granted
    while turns.slices_granted == granted:
        turns.training_pause()
    started = time.monotonic()
    turns.wait_chat_turn()
    assert 0.01 < time.monotonic() - started < 0.1
    started = time.monotonic()
    turns.wait_chat_turn()
    assert time.monotonic() - started < 0.01


def test_once_chat_goes_quiet_the_trainer_runs_freely_and_chat_earns_its_grace_back():
    turns = CoreSharing(grace_seconds=0.2, training_share=0.5, slice_seconds=0.05)
    turns.chat_busy(True)
    run_trainer(turns, 0.5)
    turns.chat_busy(False)
    assert run_trainer(turns, 0.4) > 0.9, "no chat: the trainer never waits"
    turns.chat_busy(True)
    granted = turns.slices_granted
    threading.Timer(0.15, turns.chat_busy, args=(False,)).start()
    turns.training_pause()
    assert turns.slices_granted == granted, "a reply after a quiet spell is waited out again"

"""Chat and training take turns on the cores: chat first, but steady chat cannot starve a round.

On a 2-core CPU a decoding step and a training step each want every core, and running both at
once slows both. So the trainer pauses at its pause points (model/yielding.py) while replies are
being decoded. A reply or a short burst of them is waited out entirely: it runs on an otherwise
idle machine. Once chat has kept the trainer waiting for `grace_seconds` (counted down again while
the trainer runs freely), the two alternate: chat decodes for a slice, then the decode loop holds
still for the trainer's slice, in the ratio `training_share`. Rounds then end in a bounded time
under any load, and replies slow down but never stop for longer than one training slice.
"""

from __future__ import annotations

import threading
import time

# How long the trainer runs in one turn while chat is steady: short enough that a visitor sees a
# pause in the stream, not a stall; long enough that a turn is more than a thread switch.
TRAINING_SLICE_SECONDS = 0.5


class CoreSharing:
    def __init__(self, grace_seconds: float, training_share: float, slice_seconds: float = TRAINING_SLICE_SECONDS):
        if not 0 < training_share < 1:
            raise ValueError(f"training_share must be in (0, 1), got {training_share}")
        self.grace_seconds = grace_seconds
        self.training_slice = slice_seconds
        self.chat_slice = slice_seconds * (1 - training_share) / training_share
        self._cond = threading.Condition()
        self._busy = False
        self._training_until = 0.0  # the decode loop holds still until then
        self._waited = 0.0  # seconds chat has kept the trainer waiting, less the time it then ran freely
        self._free_since: float | None = None
        self._granted = False
        self.slices_granted = 0

    # -- the decode loop's side -------------------------------------------------------------------

    def chat_busy(self, busy: bool) -> None:
        """The decode loop has replies in flight (True) or none (False)."""
        with self._cond:
            if busy != self._busy:
                self._busy = busy
                self._cond.notify_all()

    def wait_chat_turn(self) -> None:
        """Called by the decode loop before each step: holds still during a training slice."""
        delay = self._training_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    # -- the trainer's side -----------------------------------------------------------------------

    def training_pause(self) -> None:
        """Called by the trainer at each pause point: returns when it may compute."""
        now = time.monotonic()
        if now < self._training_until:
            return
        with self._cond:
            if self._granted:  # a slice of ours just ended: that was not free running
                self._granted = False
            elif self._free_since is not None:
                self._waited = max(0.0, self._waited - (now - self._free_since))
            if self._busy:
                self._wait_for_chat()
            self._free_since = time.monotonic()

    def _wait_for_chat(self) -> None:
        started = time.monotonic()
        if self._waited < self.grace_seconds:
            self._cond.wait_for(lambda: not self._busy, timeout=self.grace_seconds - self._waited)
        if self._busy:  # chat has had its grace: it gets a slice, then we do
            self._cond.wait_for(lambda: not self._busy, timeout=self.chat_slice)
        self._waited += time.monotonic() - started
        if self._busy:
            self._training_until = time.monotonic() + self.training_slice
            self._granted = True
            self.slices_granted += 1

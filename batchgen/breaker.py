"""The circuit breaker: when the API fails persistently, pause the whole run instead of letting
every job spend its retries on an outage. Pure bookkeeping; the scheduler acts on it.

It watches the last ``window`` transient outcomes (5xx, lost answers). When at least
``threshold`` of them failed it *trips*: every worker pauses, for longer after each trip in a
row. A success closes it again. After ``max_trips`` trips with no success between them the API
is taken to be down, and the run stops (resumable) with every unfinished job still pending.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class Breaker:
    window: int = 10
    threshold: float = 0.8
    base_pause: float = 5.0
    max_pause: float = 300.0
    max_trips: int = 8
    trips: int = 0  # in a row, without a success between them
    _recent: deque[bool] = field(default_factory=deque)

    def success(self) -> None:
        """The API answered sensibly: the outage, if any, is over."""
        self._push(True)
        self.trips = 0

    def failure(self) -> float | None:
        """A transient failure; returns how long every worker should pause if the breaker trips."""
        self._push(False)
        failed = self._recent.count(False)
        if len(self._recent) < self.window or failed < self.threshold * self.window:
            return None
        self.trips += 1
        self._recent.clear()  # the next trip needs a fresh window of evidence
        return min(self.max_pause, self.base_pause * 2.0 ** (self.trips - 1))

    @property
    def given_up(self) -> bool:
        """Whether the API has failed through ``max_trips`` pauses in a row."""
        return self.trips > self.max_trips

    def _push(self, ok: bool) -> None:
        self._recent.append(ok)
        while len(self._recent) > self.window:
            self._recent.popleft()

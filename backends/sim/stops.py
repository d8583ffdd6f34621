"""Stop-sequence handling for a stream: text that could still become a stop string is held back."""

from __future__ import annotations


class StopScanner:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self.text = ""
        self._sent = 0
        self.stopped = False

    def push(self, piece: str) -> str:
        """Add generated text; return what may be sent now (stop strings and what follows are cut)."""
        self.text += piece
        cut = min((i for i in (self.text.find(s, max(0, self._sent - len(s))) for s in self._stops) if i >= 0),
                  default=-1)
        if cut >= 0:
            self.stopped = True
            out = self.text[self._sent:cut]
            self._sent = cut
            return out
        safe = len(self.text) - self._hold
        if safe <= self._sent:
            return ""
        out = self.text[self._sent:safe]
        self._sent = safe
        return out

    def flush(self) -> str:
        out = "" if self.stopped else self.text[self._sent:]
        self._sent = len(self.text)
        return out

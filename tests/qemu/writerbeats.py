"""How many stores pt-dirtywriter --steady --heartbeat-ms made in a window of host time.

The writer (tests/guest/dirtywriter.c) prints "dirtywriter: t=GUEST_TIME stores=K" on
the guest console every few ms. Heartbeats follows com1.log and stamps each line with
the host's time.monotonic() (CLOCK_MONOTONIC, the clock of ptctl's JSON) when it appears.
The guest's clock is its TSC, which runs with the host's (Linux with tsc=reliable), so
guest time = host time - offset; the offset is the smallest (arrival - guest time) seen,
as a line can arrive late but never early. A store count at a host time lies between
those of the heartbeats right before and right after it (counts only grow), whatever
pace a busy host let the emulated guest keep.
"""
import re
import threading
import time

import ptqemu

HEARTBEAT_RE = re.compile(r"dirtywriter: t=([0-9.]+) stores=([0-9]+)")
# How far the offset may be off: a line that arrives within this of being written sets
# it (the file is polled every 5 ms), in seconds.
CLOCK_MARGIN_S = 0.02


class Heartbeats(threading.Thread):
    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.beats, self.lock = path, [], threading.Lock()
        self.start()

    def run(self):
        pos, tail = 0, b""
        while True:
            try:
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except OSError:
                data = b""
            now = time.monotonic()
            pos += len(data)
            tail += data
            *lines, tail = tail.split(b"\n")
            for line in lines:
                m = HEARTBEAT_RE.search(ptqemu.clean(line))
                if m:
                    with self.lock:
                        self.beats.append((now, float(m.group(1)), int(m.group(2))))
            time.sleep(0.005)

    def _snapshot(self, host_t, wait_s=20):
        """The heartbeats, and the guest time of host_t (waits for a later heartbeat)."""
        end = time.time() + wait_s
        while True:
            with self.lock:
                beats = list(self.beats)
            if len(beats) >= 2:
                offset = min(a - g for a, g, _ in beats)
                g = host_t - offset
                if beats[-1][1] >= g:
                    return beats, g
            if time.time() > end:
                raise ptqemu.QemuError(f"no writer heartbeat after {host_t:.3f} "
                                       f"(the guest made no progress for {wait_s} s)")
            time.sleep(0.05)

    def stores_between(self, host_t):
        """(lo, hi): bounds of the writer's store count at host_t."""
        beats, g = self._snapshot(host_t)
        if g < beats[0][1]:
            raise ptqemu.QemuError(f"no writer heartbeat before {host_t:.3f}")
        lo = max(n for _, t, n in beats if t <= g)
        hi = min(n for _, t, n in beats if t >= g)
        return lo, hi

    def stores_in(self, start, seconds):
        """(n_min, n_max): bounds of the stores made in [start, start + seconds]."""
        lo_end, _ = self.stores_between(start + seconds - CLOCK_MARGIN_S)
        _, hi_start = self.stores_between(start + CLOCK_MARGIN_S)
        _, hi_end = self.stores_between(start + seconds + CLOCK_MARGIN_S)
        lo_start, _ = self.stores_between(start - CLOCK_MARGIN_S)
        return max(lo_end - hi_start, 0), hi_end - lo_start

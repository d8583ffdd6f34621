"""Every Redis key and channel name lockgate uses, in one place.

Keys of one backend carry the hash tag ``{backend}`` and keys of one gateway the tag ``{gateway}``, so each Lua
script touches a single Redis Cluster slot: the submit script (all priority bands of a backend) and the emit
script (a gateway's inbox and its per-job cancel flag and streamed marker).
"""

from __future__ import annotations

GROUP = "workers"
"""The consumer group every worker of a backend joins, on each of the backend's job streams."""


class Keys:
    def __init__(self, prefix: str, bands: int) -> None:
        self.prefix = prefix
        self.bands = bands

    def jobs(self, backend: str, band: int) -> str:
        return f"{self.prefix}:{{{backend}}}:jobs:{band}"

    def job_streams(self, backend: str) -> list[str]:
        """The backend's job streams, highest band first (the order workers serve them)."""
        return [self.jobs(backend, b) for b in reversed(range(self.bands))]

    def fair(self, backend: str, band: int) -> str:
        """Sorted set: job id -> fair tag, the jobs of a band waiting for a worker (dispatch/fair.py)."""
        return f"{self.prefix}:{{{backend}}}:fair:{band}"

    def fair_queues(self, backend: str) -> list[str]:
        """The backend's waiting-job sets, highest band first (the order of ``job_streams``)."""
        return [self.fair(backend, b) for b in reversed(range(self.bands))]

    def payloads(self, backend: str) -> str:
        """Hash: job id -> msgpack job, for the jobs in the fair sets."""
        return f"{self.prefix}:{{{backend}}}:payloads"

    def fair_tags(self, backend: str) -> str:
        """Hash: ``v:BAND`` -> the band's virtual time; ``t:BAND:TENANT`` -> the tenant's last tag."""
        return f"{self.prefix}:{{{backend}}}:tags"

    def bell(self, backend: str) -> str:
        """List: one entry per submit, popped by an idle worker's BLPOP (the job streams are only written
        when a worker takes a job, so a blocking XREADGROUP on them would never wake)."""
        return f"{self.prefix}:{{{backend}}}:bell"

    def worker_bell(self, backend: str, worker_id: str) -> str:
        """List: one worker's own bell, rung by a submit that picked this worker from the idle stack. The
        submit script builds the name itself from the shared bell's (``SUBMIT`` in scripts.py)."""
        return f"{self.bell(backend)}:w:{worker_id}"

    def idle(self, backend: str) -> str:
        """List used as a stack: ids of the workers with no job of the backend, the most recently idle first.
        A submit rings the top one's own bell, so the warmest idle process takes the job (``dispatch.wake``)."""
        return f"{self.prefix}:{{{backend}}}:idle"

    def room(self, backend: str) -> str:
        """Sorted set: worker id -> how many more jobs it takes before the next worker gets any
        (``dispatch.pack``), for the workers that hold at least one job of the backend and fewer than ``pack``. A
        submit rings the own bell of the one with the least room left, so jobs fill few workers at moderate load."""
        return f"{self.prefix}:{{{backend}}}:room"

    def queue_keys(self, backend: str) -> list[str]:
        """KEYS of the submit and take scripts: streams, fair sets (both highest band first), payloads,
        tags, bell, idle stack, room."""
        return [*self.job_streams(backend), *self.fair_queues(backend), self.payloads(backend),
                self.fair_tags(backend), self.bell(backend), self.idle(backend), self.room(backend)]

    def band(self, priority: int) -> int:
        return min(max(priority, 0), self.bands - 1)

    def dead(self, backend: str) -> str:
        return f"{self.prefix}:{{{backend}}}:dead"

    def workers(self, backend: str) -> str:
        """Hash: worker id -> msgpack WorkerReport (health, load, capacity, expiry)."""
        return f"{self.prefix}:{{{backend}}}:workers"

    def cancel_channel(self, backend: str) -> str:
        """Pub/sub channel on which gateways announce cancelled job ids to the backend's workers."""
        return f"{self.prefix}:{{{backend}}}:cancel"

    def inbox(self, gateway_id: str) -> str:
        return f"{self.prefix}:gw:{{{gateway_id}}}:inbox"

    # Per-job keys live in the owning gateway's slot (they hang off its inbox key) so that the emit script can
    # check the cancel flag and set the streamed marker atomically with the XADD of the events.
    @staticmethod
    def cancel_flag(inbox: str, job_id: str) -> str:
        return f"{inbox}:cancel:{job_id}"

    @staticmethod
    def streamed(inbox: str, job_id: str) -> str:
        """Exists once a token of the job was written to the inbox: from then on the job is never re-run."""
        return f"{inbox}:streamed:{job_id}"

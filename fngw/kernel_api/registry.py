"""The kernels a worker runs for the kernel API: start, list, interrupt, restart, delete, cull.

Knows nothing of HTTP: errors are ``KernelApiError`` subclasses that the resources turn into
statuses. ``max_kernels`` is enforced atomically: a slot is reserved before the (yielding) start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gevent
import gevent.pool

from fngw.kernels import (
    Kernel,
    KernelError,
    ResolvedSpec,
    SeedCell,
    kernel_environment,
    output_prelude,
    pid_alive,
)
from fngw.kernels.protocol import Message
from fngw.manifest import KernelApiSettings

from . import start_options
from .culling import cull_idle_kernels
from .errors import (
    HostedElsewhere,
    Invalid,
    KernelApiError,
    LaunchTimeout,
    NotFound,
    RegistryUnavailable,
    ResourceLimit,
    ShuttingDown,
    StartFailed,
)
from .kernelspecs import AllowedKernelspecs
from .models import ApiKernel, KernelModel, KernelRecord, RemoteKernel, iso_now
from .owners import forget_owner, note_owner
from .peers import Peers
from .shared import KernelRecords
from .supervision import restart_after_death

__all__ = [
    "ApiKernel",
    "HostedElsewhere",
    "Invalid",
    "KernelApiError",
    "KernelRegistry",
    "LaunchTimeout",
    "NotFound",
    "RemoteKernel",
    "ResourceLimit",
    "ShuttingDown",
    "StartFailed",
    "iso_now",
]

log = logging.getLogger("fngw.kernel_api")

PUBLISH_EVERY = 2.0  # seconds between looks at the registry: heartbeats, our kernels' published state


class KernelRegistry:
    """The kernels one worker runs for the kernel API, and its view of the others (through the
    shared records): the instance's other workers' kernels it attaches to; with a Redis registry,
    other instances' kernels it reaches through ``peers``. Start, get, list, interrupt, restart,
    delete, cull; max_kernels held across workers (and instances). Raises the errors of
    fngw.kernel_api.errors."""

    def __init__(
        self,
        settings: KernelApiSettings,
        *,
        runtime_dir: Path,
        environ: Mapping[str, str] | None = None,
        secrets: tuple[str, ...] = (),
        seed: tuple[SeedCell, ...] = (),
        seed_kernel: str | None = None,
        start_timeout: float = 60.0,
        shared: KernelRecords | None = None,
        peers: Peers | None = None,
        handoff_dir: Path | None = None,
    ):
        self.settings = settings
        self.runtime_dir = runtime_dir
        self.environ = dict(environ if environ is not None else os.environ)
        self.secrets = secrets
        self.seed = seed
        self.seed_kernel = seed_kernel
        self.start_timeout = start_timeout
        self.kernels: dict[str, ApiKernel] = {}
        self._reserved = 0
        self._warm: deque[Kernel] = deque()
        self._warming = 0
        self._tasks = gevent.pool.Group()
        self._starting: set[gevent.Greenlet] = set()  # requests whose kernel is starting
        self.kernelspecs = AllowedKernelspecs(settings.allowed_kernels)
        self._closed = False
        # Other workers of this instance (and, in Redis, other instances) see our kernels through
        # these records, and we theirs.
        self.shared = shared
        self.peers = peers  # other instances' kernels are asked of them
        self.handoff_dir = handoff_dir  # where each worker of the instance takes spliced websockets
        self._published: dict[str, tuple[str, str, int]] = {}  # kernel id -> state last published
        # Kernels this worker answers for (publishes, stops with the instance): those it started,
        # and those it took over from a worker that is gone (a reload, a killed worker).
        self._owned: set[str] = set()

    # --- lifecycle -------------------------------------------------------------------------------

    def start_background(self) -> None:
        """Start the prewarmed kernels and the cull loop; returns at once."""
        for _ in range(self.settings.prewarm):
            self._tasks.spawn(self._warm_one)
        if self.settings.cull.idle is not None:
            self._tasks.spawn(cull_idle_kernels, self)
        if self.shared is not None:
            self._tasks.spawn(self._keep_publishing)

    def _keep_publishing(self) -> None:
        """Every PUBLISH_EVERY seconds: say this instance is alive, and publish the state of the
        kernels this worker runs that changed (for other instances' listings)."""
        assert self.shared is not None
        while not self._closed:
            try:
                self._publish_changes()
            except KernelApiError as exc:  # the registry is unreachable: say so, try again
                log.warning("kernel API: cannot publish to the registry: %s", exc)
            except Exception:  # never let the publisher die: the deployment would lose this instance
                log.exception("kernel API: publishing to the registry failed; trying again")
            gevent.sleep(PUBLISH_EVERY)

    def _publish_changes(self) -> None:
        assert self.shared is not None
        forgotten = self._forgotten(self.shared.heartbeat())
        self._take_over_orphans()
        for entry in list(self.kernels.values()):
            state = (entry.execution_state, entry.last_activity, entry.connections)
            if entry.id not in self._owned or self._published.get(entry.id) == state:
                continue
            if self.kernels.get(entry.id) is not entry:
                continue  # deleted meanwhile
            if self.publish(entry, create=forgotten) or self.kernels.get(entry.id) is not entry:
                continue
            # The record is gone: deleted elsewhere, or the registry lost its data (a Redis restarted
            # empty) since the last heartbeat, which only a heartbeat tells apart.
            if self._forgotten(self.shared.heartbeat(force=True)):
                forgotten = True
                self.publish(entry)
            else:  # deleted through another worker or instance: stop it here too, never restart it
                self._stop_here(entry)
                log.info("kernel API: kernel %s was deleted through another worker or instance", entry.id)

    def _forgotten(self, forgotten: bool) -> bool:
        """``forgotten`` (the registry lost our records, a heartbeat says): then they are all written
        again."""
        if forgotten:
            log.warning("kernel API: the registry had forgotten this instance; publishing its kernels again")
            self._published.clear()
        return forgotten

    def _stop_here(self, entry: ApiKernel) -> None:
        """Forget ``entry`` in this worker, tell its clients it is dead, and shut its process down."""
        self.kernels.pop(entry.id, None)
        self._published.pop(entry.id, None)
        self._disown(entry.id)
        entry.announce("dead")
        entry.kernel.shutdown()

    def _seed_cells(self, spec: ResolvedSpec, name: str) -> tuple[SeedCell, ...]:
        """What a kernel runs on every start and restart: the output prelude, which cuts output into
        bounded messages so that a flood cannot make the gateway hold one huge message (without
        isolation: interactive clients want their threads' output), then the manifest's seed."""
        for_this = self.seed_kernel is None or self.seed_kernel.casefold() == name.casefold()
        seed = self.seed if self.seed and for_this else ()
        prelude = output_prelude(spec.language, isolate=False)
        return seed if prelude is None else (SeedCell(-1, prelude, silent=True), *seed)

    def _new_kernel(self, name: str, env: dict[str, str], cwd: str | None, kernel_id: str | None) -> Kernel:
        spec = self.kernelspecs.resolve(name)
        return Kernel(
            spec,
            env=env,
            cwd=cwd,
            seed=self._seed_cells(spec, name),
            label=f"kernel API ({name})",
            runtime_dir=self.runtime_dir,
            start_timeout=self.start_timeout,
            kernel_id=kernel_id,
            outlives_parent=True,  # a killed worker or a reload leaves it running for the others
        )

    def _base_env(self) -> dict[str, str]:
        return kernel_environment(self.environ, {}, self.secrets)

    def _count(self) -> int:
        local = len(self._warm) + self._warming
        if self.shared is not None:  # the files include kernels being started (pending records)
            self.shared.prune()
            return len(self.shared.ids()) + local
        return len(self.kernels) + self._reserved + local

    def start_kernel(
        self, name: str | None = None, env: Any = None, path: str | None = None, kernel_id: str | None = None
    ) -> ApiKernel:
        """Start a kernel (a prewarmed one when it fits): name (default kernel_api.default_kernel), env
        (KERNEL_* and whitelisted strings), path (its working folder, as Kernel Gateway), kernel_id
        (the client's own). Raises NotFound, Invalid, ResourceLimit, LaunchTimeout, StartFailed (and
        whatever interrupts the start: ClientGone, ShuttingDown); nothing is left running when it
        raises."""
        name = self.kernelspecs.installed_name(name or self.settings.default_kernel)  # 404 before anything else
        asked_env = start_options.client_env(env, self.settings.env_whitelist)
        start_options.check_request(kernel_id, path)
        if kernel_id is not None and kernel_id in self.kernels:
            return self.kernels[kernel_id]
        if kernel_id is not None and self.shared is not None and self.shared.read(kernel_id) is not None:
            return self.get(kernel_id)
        plain = not asked_env and path is None and kernel_id is None  # a prewarmed kernel fits as it is
        if plain and name == self.kernelspecs.installed_name(self.settings.default_kernel) and self._warm:
            entry = self._register(self._warm.popleft(), name)
            self._tasks.spawn(self._warm_one)
            return entry
        timeout, why = start_options.launch_timeout(asked_env, self.settings.launch_timeout)  # 400s first
        kernel_id = kernel_id or str(uuid.uuid4())
        cwd = asked_env.get("KERNEL_WORKING_DIR")
        if cwd is not None and not Path(cwd).is_dir():
            cwd = None
        if cwd is None and path:
            cwd = start_options.directory_for(path)
        kernel = self._new_kernel(name, {**self._base_env(), **asked_env, "KERNEL_GATEWAY": "1"}, cwd, kernel_id)
        self._reserve(kernel_id)  # from here on, every way out releases the slot
        self._starting.add(gevent.getcurrent())
        try:
            with gevent.Timeout(timeout, LaunchTimeout(f"the kernel did not start within {timeout:g}s ({why})")):
                kernel.start()  # on any failure, timeout or the client leaving included, it kills what it started
        except KernelError as exc:
            raise StartFailed(f"the kernel failed to start: {exc}", exc) from None
        except LaunchTimeout as exc:
            raise LaunchTimeout(f"{exc}; nothing was left running") from None
        finally:
            self._starting.discard(gevent.getcurrent())
            self._reserved -= 1
            if kernel.state != "idle" and self.shared is not None:
                self.shared.remove(kernel_id)
        return self._register(kernel, name)

    def _reserve(self, kernel_id: str) -> None:
        """Take a slot under ``max_kernels`` before the (long, yielding) start: atomically within this
        worker, and across the instance's workers under the shared folder's lock."""
        limit = self.settings.max_kernels
        if self.shared is None:
            if limit is not None and self._count() >= limit:
                raise ResourceLimit("Resource Limit")
            self._reserved += 1
            return
        with self.shared.locked():
            if limit is not None and self._count() >= limit:
                raise ResourceLimit("Resource Limit")
            self.shared.write({"id": kernel_id, "pending": True, "owner": os.getpid()})
        self._reserved += 1

    def _take_over_orphans(self) -> None:
        """Answer for this instance's kernels whose worker is gone (it was replaced by a reload, or
        killed): their processes outlive it, and one of the workers must publish and cull them."""
        assert self.shared is not None
        for record in self.shared.all():
            owner = record.get("owner")
            if record.get("pending") or self.shared.instance_of(record) is not None:
                continue
            if not isinstance(owner, int) or owner == os.getpid() or pid_alive(owner):
                continue
            with contextlib.suppress(KernelApiError):
                self.get(record["id"])  # adopts it, and takes it over (see _adopt)

    def _claim(self, kernel_id: str) -> bool:
        """Become the worker that answers for kernel_id if its worker is gone (under the records'
        lock: one worker claims it). Whether this worker now owns it."""
        assert self.shared is not None
        with self.shared.locked():
            record = self.shared.read(kernel_id)
            owner = record.get("owner") if record is not None else None
            if record is None or record.get("pending") or not isinstance(owner, int) or pid_alive(owner):
                return False
            self.shared.write({**record, "owner": os.getpid()})
        self._own(kernel_id)
        log.info(
            "kernel API: took over kernel %s (pid %s) from worker %s, which is gone",
            kernel_id,
            record.get("pid"),
            owner,
        )
        return True

    def _register(self, kernel: Kernel, name: str, publish: bool = True) -> ApiKernel:
        entry = ApiKernel(kernel=kernel, name=name, execution_state="idle")
        self.kernels[kernel.id] = entry
        if publish:
            self._own(kernel.id)
        kernel.on_death(lambda k: self._tasks.spawn(restart_after_death, self, entry))
        kernel.on_iopub(lambda k, msg: self._observe(entry, msg))
        if publish:
            self.publish(entry)
            log.info("kernel API: kernel %s (%s) started (pid %s)", kernel.id, name, kernel.pid)
        else:
            log.info("kernel API: attached to kernel %s (pid %s) of another worker", kernel.id, kernel.pid)
        return entry

    def publish(self, entry: ApiKernel, create: bool = True) -> bool:
        """Write entry's record (this worker owns its process) for the other workers and instances;
        with ``create`` False only over a record that is still there. Whether it was written (False:
        the record was removed meanwhile, the kernel deleted elsewhere)."""
        pid = entry.kernel.pid
        entry.kernel.keep()  # known to the records from now on: it outlives this worker
        if self.shared is not None and pid is not None:  # (None: not running, nothing to reach)
            connection = entry.kernel.connection_info
            self._published[entry.id] = (entry.execution_state, entry.last_activity, entry.connections)
            store = self.shared.write if create else self.shared.update
            written = store(
                {
                    "id": entry.id,
                    "name": entry.name,
                    "pid": pid,
                    "owner": os.getpid(),
                    "connection": connection,
                    "execution_state": entry.execution_state,
                    "last_activity": entry.last_activity,
                    "connections": entry.connections,
                }
            )
            return written is not False
        return True

    def _adopt(self, kernel_id: str) -> ApiKernel | None:
        """A kernel another worker of this instance started, reached through our own sockets."""
        shared = self.shared
        record = shared.read(kernel_id) if shared is not None else None
        if shared is None or not record or record.get("pending"):
            return None
        self._not_elsewhere(kernel_id, record)
        if record.get("owner") == os.getpid():
            return None
        pid, name, connection = record.get("pid"), record.get("name"), record.get("connection")
        if not isinstance(pid, int) or not isinstance(name, str) or not isinstance(connection, dict):
            shared.remove(kernel_id)  # unreadable: nobody can reach that kernel through it
            return None
        if not pid_alive(pid):
            shared.remove(kernel_id)  # its worker died and the master reaped it
            return None
        spec = self.kernelspecs.resolve(name)
        kernel = Kernel.attach(
            spec,
            connection,
            pid,
            kernel_id=kernel_id,
            label=f"kernel API ({name})",
            runtime_dir=self.runtime_dir,
            seed=self._seed_cells(spec, name),
            start_timeout=self.start_timeout,
            env={**self._base_env(), "KERNEL_GATEWAY": "1"},
            outlives_parent=True,  # a restart through this worker starts a process that outlives it too
        )
        entry = self._register(kernel, name, publish=False)
        self._claim(kernel_id)  # its worker may be gone: then this one answers for it
        return entry

    def _not_elsewhere(self, kernel_id: str, record: KernelRecord) -> None:
        """Raise ``HostedElsewhere`` when another instance runs ``record``'s kernel (``NotFound``
        when that instance is gone: so is its kernel)."""
        assert self.shared is not None
        instance = self.shared.instance_of(record)
        if instance is None:
            return
        address = self.shared.address_of(instance)
        if address is None:
            self.shared.remove(kernel_id)
            raise NotFound(f"Kernel does not exist: {kernel_id} (its instance is gone)")
        raise HostedElsewhere(kernel_id, instance, address)

    def lookup(self, kernel_id: str, fresh: bool = True) -> ApiKernel | RemoteKernel:
        """The kernel kernel_id wherever it runs: this instance's (adopted on the way), or another
        instance's as that instance reports it now (``fresh``) or as it last published it. NotFound,
        PeerUnavailable."""
        try:
            return self.get(kernel_id)
        except HostedElsewhere as elsewhere:
            record = self.shared.read(kernel_id) if self.shared is not None else None
            if record is None:
                raise NotFound(f"Kernel does not exist: {kernel_id}") from None
            model: KernelModel = {
                "id": kernel_id,
                "name": record.get("name", ""),
                "last_activity": record.get("last_activity"),
                "execution_state": record.get("execution_state", "idle"),
                "connections": record.get("connections", 0),
            }
            if fresh and self.peers is not None:
                model = self.peers.model(elsewhere.address, kernel_id)
            return RemoteKernel(kernel_id, model["name"], elsewhere.address, model)

    def entries(self) -> list[ApiKernel | RemoteKernel]:
        """Every kernel of the instance (those of other workers adopted on the way), and, with a
        Redis registry, of the deployment (other instances' as they last published them)."""
        if self.shared is None:
            return list(self.kernels.values())
        self.shared.prune()
        found: list[ApiKernel | RemoteKernel] = []
        for kernel_id in set(self.shared.ids()) | set(self.kernels):
            with contextlib.suppress(NotFound):
                found.append(self.lookup(kernel_id, fresh=False))
        return found

    def local_counts(self) -> tuple[int, int]:
        """(kernels this worker started and owns, websocket connections to this worker): summed
        over workers, each kernel and each connection counts once."""
        owned = sum(1 for e in self.kernels.values() if not e.kernel.attached)
        return owned, sum(e.connections for e in self.kernels.values())

    def _observe(self, entry: ApiKernel, msg: Message) -> None:
        entry.touch()
        if msg.get("msg_type") == "status" and entry.execution_state not in ("restarting", "dead"):
            # While a restart seeds the new process, its cells' idle is not the kernel's: clients
            # told "idle" would run code before the seed has.
            state = msg.get("content", {}).get("execution_state")
            if state in ("busy", "idle", "starting"):
                entry.execution_state = state

    def _warm_one(self) -> None:
        if self._closed:
            return
        name = self.kernelspecs.installed_name(self.settings.default_kernel)
        self._warming += 1
        try:
            kernel = self._new_kernel(name, {**self._base_env(), "KERNEL_GATEWAY": "1"}, None, None)
            kernel.start()
            if self._closed:
                kernel.shutdown()
            else:
                self._warm.append(kernel)
        except KernelError as exc:
            log.error("kernel API: a prewarmed kernel failed to start: %s", exc)
        finally:
            self._warming -= 1

    def get(self, kernel_id: str) -> ApiKernel:
        """The kernel kernel_id of the instance (adopting another worker's on the way). NotFound."""
        entry = self.kernels.get(kernel_id)
        if entry is not None and self.shared is not None and self._deleted_in_records(kernel_id):
            # Deleted through another worker; its process is going away: forget it here too.
            self.kernels.pop(kernel_id, None)
            if entry.kernel.attached:
                entry.kernel.detach()
            entry.announce("dead")
            entry = None
        elif entry is None:
            entry = self._adopt(kernel_id)
        if entry is None:
            raise NotFound(f"Kernel does not exist: {kernel_id}")
        return entry

    def _own(self, kernel_id: str) -> None:
        """This worker runs kernel_id's process: publish it, and note it in the instance's folder."""
        self._owned.add(kernel_id)
        if self.handoff_dir is not None:
            note_owner(self.handoff_dir, kernel_id, os.getpid())

    def _disown(self, kernel_id: str) -> None:
        if kernel_id in self._owned and self.handoff_dir is not None:
            forget_owner(self.handoff_dir, kernel_id)
        self._owned.discard(kernel_id)

    def _deleted_in_records(self, kernel_id: str) -> bool:
        """Whether the shared records no longer hold kernel_id. With the registry unreachable, a
        kernel this worker serves is taken as still there: it keeps answering for it meanwhile."""
        assert self.shared is not None
        try:
            return self.shared.read(kernel_id) is None
        except RegistryUnavailable:
            return False

    def delete(self, kernel_id: str) -> None:
        """Shut kernel_id down and forget it everywhere. NotFound, PeerUnavailable, RegistryUnavailable
        (then nothing has changed)."""
        try:
            entry = self.get(kernel_id)
        except HostedElsewhere as elsewhere:
            self._peers(elsewhere).delete(elsewhere.address, kernel_id)
            return
        if self.shared is not None:
            self.shared.remove(kernel_id)  # first: the owner then knows the exit is not a crash
        self._stop_here(entry)
        log.info("kernel API: kernel %s deleted", kernel_id)

    def _peers(self, elsewhere: HostedElsewhere) -> Peers:
        if self.peers is None:
            raise elsewhere
        return self.peers

    def interrupt(self, kernel_id: str) -> None:
        """Interrupt kernel_id's running cell. NotFound, PeerUnavailable."""
        try:
            entry = self.get(kernel_id)
        except HostedElsewhere as elsewhere:
            self._peers(elsewhere).interrupt(elsewhere.address, kernel_id)
            return
        entry.kernel.interrupt()

    def restart(self, kernel_id: str) -> ApiKernel | RemoteKernel:
        """Restart kernel_id (this worker then owns the new process; another instance's kernel is
        restarted by that instance) and re-seed it. NotFound, StartFailed, PeerUnavailable."""
        try:
            entry = self.get(kernel_id)
        except HostedElsewhere as elsewhere:
            model = self._peers(elsewhere).restart(elsewhere.address, kernel_id)
            return RemoteKernel(kernel_id, model["name"], elsewhere.address, model)
        entry.announce("restarting")
        if self.shared is not None:  # this worker becomes the owner of the new process
            self.shared.write({"id": kernel_id, "pending": True, "owner": os.getpid()})
        self._own(kernel_id)
        try:
            entry.kernel.restart()
        except KernelError as exc:
            self.kernels.pop(kernel_id, None)
            self._disown(kernel_id)
            if self.shared is not None:
                self.shared.remove(kernel_id)
            entry.announce("dead")
            raise StartFailed(f"the kernel failed to restart: {exc}", exc) from None
        self.publish(entry)
        entry.execution_state = "idle"
        entry.touch()
        log.info("kernel API: kernel %s restarted (pid %s)", kernel_id, entry.kernel.pid)
        return entry

    @property
    def closed(self) -> bool:
        """The worker is stopping: no more kernels start, no more culls run."""
        return self._closed

    def abandon_starts(self) -> None:
        """SIGTERM: stop every kernel still starting, so that its client gets an answer (503, retry
        elsewhere) before the worker's graceful timeout rather than a closed connection."""
        for waiting in list(self._starting):
            gevent.kill(waiting, ShuttingDown("the gateway is shutting down; start the kernel again"))

    def shutdown(self, hand_over: bool = False) -> None:
        """Stop the background tasks and this worker's kernels (at most about 15 s): those it owns,
        unless ``hand_over`` (the instance goes on, a reload: they keep running, in the records, for
        the workers that follow); kernels of other workers it only attached to are left alone."""
        self._closed = True
        self._tasks.kill(block=True, timeout=5)
        group = gevent.pool.Group()
        for entry in list(self.kernels.values()):
            if hand_over or entry.id not in self._owned:
                entry.kernel.detach()
                continue
            if self.shared is not None:
                # Gone from the records first: nobody is sent here for a kernel that is stopping.
                with contextlib.suppress(KernelApiError):
                    self.shared.remove(entry.id)
            group.spawn(entry.kernel.shutdown)
        for kernel in list(self._warm):
            group.spawn(kernel.shutdown)
        group.join(timeout=10)
        self.kernels.clear()
        self._warm.clear()

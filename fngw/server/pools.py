"""The kernel pools one gateway worker runs for its route plan."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import gevent.pool

from fngw.kernels import (
    Kernel,
    KernelPool,
    KernelSeedError,
    SeedCell,
    cells_prelude,
    kernel_environment,
    output_prelude,
    resolve_kernelspec,
    strip_ansi,
)
from fngw.notebook.locate import CellLocator
from fngw.routing import PoolSpec, RoutePlan

log = logging.getLogger("fngw.server")

PRELUDE_CELL = -1  # the index a failing output prelude is reported with (no notebook cell has it)


@dataclass(frozen=True)
class PoolOptions:
    """What every pool kernel of a worker shares: its runtime folder, start timeout (seconds), the
    gateway's environment and the names of secret variables never passed on."""

    runtime_dir: Path
    start_timeout: float = 60.0
    environ: Mapping[str, str] | None = None  # the gateway's environment; os.environ when None
    secrets: tuple[str, ...] = ()  # names of variables that hold secrets, never passed to kernels


# IPython names the cell it runs "Cell In[N], line K" in a traceback; the first such frame is the
# executed cell's (later ones: functions it called that other cells defined).
CELL_FRAME = re.compile(r"^Cell In\[\d+\], line (\d+)", re.MULTILINE)


def raising_line(traceback: Sequence[str]) -> int:
    """The line of the executed cell an IPython traceback says raised (1 when it does not say)."""
    found = CELL_FRAME.search(strip_ansi("\n".join(traceback)))
    return int(found.group(1)) if found else 1


class GatewayPools:
    """Builds a ``KernelPool`` for every pool of the plan; starts and stops them all in parallel."""

    def __init__(self, plan: RoutePlan, options: PoolOptions):
        self.options = options
        self.plan = plan
        self._places: dict[str, tuple[int, str]] = {}  # pool id: (failed seed cell, its place)
        self.pools: dict[str, KernelPool] = {
            pid: self._build(spec, self._folder_of(plan, spec.notebook)) for pid, spec in plan.pools.items()
        }

    @staticmethod
    def _folder_of(plan: RoutePlan, notebook: str) -> Path | None:
        """Kernels start in their notebook's folder, as in Jupyter, so that relative paths in cells
        (data files shipped beside the notebook) work the same in both."""
        parsed = plan.notebooks.get(notebook)
        return parsed.path.parent if parsed is not None and parsed.path is not None else None

    def _build(self, spec: PoolSpec, cwd: Path | None) -> KernelPool:
        base = self.options.environ if self.options.environ is not None else os.environ
        env = kernel_environment(base, spec.env, self.options.secrets)
        kernelspec = resolve_kernelspec(spec.kernel)
        seed = [SeedCell(i, src) for i, src in zip(spec.seed_cell_indices, spec.seed_cells, strict=True)]
        prelude = output_prelude(kernelspec.language, isolate=True)
        if prelude is not None:  # before the notebook's own cells, whose threads it must already see
            seed.insert(0, SeedCell(PRELUDE_CELL, prelude, silent=True))
        cells = cells_prelude(kernelspec.language, spare=len(spec.seed_cells))
        if cells is not None:  # requests are cells: their sources must not pile up in the kernel
            seed.insert(0, SeedCell(PRELUDE_CELL, cells, silent=True))
        label = f"notebook {spec.notebook!r}"
        runtime_dir = self.options.runtime_dir
        start_timeout = self.options.start_timeout

        def make_kernel() -> Kernel:
            return Kernel(
                kernelspec,
                env=env,
                seed=seed,
                label=label,
                runtime_dir=runtime_dir,
                start_timeout=start_timeout,
                cwd=cwd,
            )

        return KernelPool(spec.id, make_kernel, size=spec.settings.size, max_queue=spec.settings.max_queue)

    def __getitem__(self, pool_id: str) -> KernelPool:
        return self.pools[pool_id]

    def start(self) -> None:
        """Start every kernel of every pool in the background; returns at once."""
        for pool in self.pools.values():
            pool.start(wait=False)

    def readiness_gaps(self) -> list[str]:
        """Why the gateway is not ready yet: pools whose kernels are not all started."""
        reasons = []
        for pid, pool in self.pools.items():
            stats = pool.stats()
            up = stats.idle + stats.busy
            if up < stats.size:
                reason = f"pool {pool.name}: {up} of {stats.size} kernels ready"
                if pool.last_error is not None:
                    reason = f"{self._seed_cell_place(pid, pool.last_error)}{reason} ({pool.last_error})"
                reasons.append(reason)
        return reasons

    def start_failures(self) -> list[str]:
        """Pools with no kernel up whose starts have failed (a seed cell that raises, a kernel that
        will not start): each as ``pool NAME: error``, after the seed cell's place in its notebook
        (``nb.ipynb:12:5: ``) when a seed cell failed."""
        failures = []
        for pid, pool in self.pools.items():
            stats = pool.stats()
            if pool.last_error is not None and stats.idle + stats.busy == 0:
                failures.append(f"{self._seed_cell_place(pid, pool.last_error)}pool {pool.name}: {pool.last_error}")
        return failures

    def _seed_cell_place(self, pid: str, error: BaseException) -> str:
        """``nb.ipynb:12:5: `` for a seed cell that failed (read once per failure: readiness probes
        ask often)."""
        if not isinstance(error, KernelSeedError) or error.cell_index == PRELUDE_CELL:
            return ""
        known = self._places.get(pid)
        if known is None or known[0] != error.cell_index:
            known = self._places[pid] = (error.cell_index, self._locate_seed_cell(pid, error))
        return known[1]

    def _locate_seed_cell(self, pid: str, error: KernelSeedError) -> str:
        spec = self.plan.pools.get(pid)
        parsed = self.plan.notebooks.get(spec.notebook) if spec is not None else None
        if parsed is None or parsed.path is None:
            return ""
        at = CellLocator(parsed.path).locate(error.cell_index, raising_line(error.traceback))
        return f"{parsed.path}:{at[0]}:{at[1]}: " if at is not None else f"{parsed.path}: "

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every kernel of every pool in parallel, waiting at most timeout seconds."""
        count = sum(len(pool.kernels) for pool in self.pools.values())
        log.info("stopping %d pool kernel(s)", count)
        group = gevent.pool.Group()
        for pool in self.pools.values():
            group.spawn(pool.shutdown)
        group.join(timeout=timeout)

# mypy: ignore-errors
# (kernel-side code: it wraps IPython's compiler, whose attributes no stub describes)
"""Run in the Python pool kernels fngw starts, before their seed cells: ``_fngw_cells(keep=...)``.

IPython keeps the source of every cell it has run (``linecache``, and the compiler's map of cell
names), so that a traceback can show the lines of a function defined in an earlier cell. A
gateway's requests are cells too, each one different (its ``REQUEST`` differs), and none is ever
forgotten: about 0.7 KB a request, 28 MB over 40,000 requests of a small endpoint
(``bench/kernel_memory.py``). Here the source of a cell run with ``store_history=False`` (every
request) is forgotten once ``keep`` newer such cells have run: a function a request defines keeps
its source lines for that long. The first ``spare`` cells after this one, the notebook's seed
cells, are always kept: tracebacks through the functions they define show their lines.
"""


def _fngw_cells(keep: int = 32, spare: int = 0) -> None:
    """``keep``: how many of the latest cells run without history keep their source; ``spare``:
    how many cells, from the next one on, keep theirs whatever happens (the seed cells)."""
    import linecache
    from collections import OrderedDict

    from IPython import get_ipython

    shell = get_ipython()
    compiler = getattr(shell, "compile", None)
    if shell is None or not hasattr(shell, "events") or not callable(getattr(compiler, "cache", None)):
        return  # not IPython: nothing to bound
    cache = compiler.cache
    last = [None]  # the name of the cell being run
    spared = [spare]  # seed cells still to come
    recent = OrderedDict()  # names of cells run without history, oldest first

    def caching(transformed_code, number=0, raw_code=None):
        name = cache(transformed_code, number, raw_code)
        last[0] = name
        return name

    def ran(result) -> None:
        name, last[0] = last[0], None
        info = getattr(result, "info", None)
        if name is None or info is None:
            return
        if info.store_history or spared[0] > 0:  # in the history, or a seed cell: kept
            spared[0] -= 1
            recent.pop(name, None)
            return
        recent[name] = None
        recent.move_to_end(name)
        while len(recent) > keep:
            old, _ = recent.popitem(last=False)
            linecache.cache.pop(old, None)
            getattr(compiler, "_filename_map", {}).pop(old, None)

    compiler.cache = caching
    shell.events.register("post_run_cell", ran)

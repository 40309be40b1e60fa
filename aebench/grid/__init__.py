"""Grids of runs: the SQLite store (`store`), one cell from config to recorded outcome (`cells`),
the executors that train cells here or on Ray (`executors`, `local`, `ray`), and `runner.run_grid`.

Importing this package registers every executor, as `aebench.models` registers every model.
"""

from aebench.grid import local, ray  # noqa: F401  (importing them registers their executors)

"""The papers' tables and figures, one experiment each (``costnet-reproduce``).

conf/reproduce.yaml lists the experiments; conf/experiment/<name>.yaml configures each and
names its runner, a function of this package that returns a :class:`Result`; the CLI writes
it to ``<out>/<name>/`` with its provenance, and :func:`report.write_report` gathers all of
them into ``<out>/REPORT.md``.
"""

from costnet.reproduce.result import Result

__all__ = ["Result"]

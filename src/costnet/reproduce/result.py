"""One experiment's result: its table, figures and description, written with its provenance."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from costnet.data.store import atomic_write_bytes
from costnet.errors import CostnetError
from costnet.reproduce.provenance import provenance


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` in Markdown, missing values blank."""
    return table.astype(object).where(table.notna(), None).to_markdown(index=False, floatfmt=".4g")


@dataclass
class Result:
    """What an experiment hands back: ``figures`` are PNG files it wrote into its directory;
    ``inputs`` the data files it read (hashed into the provenance); ``runs`` the resolved
    configs of the jobs behind it (costnet-train, collection...)."""

    name: str
    title: str
    what: str
    on_what: str
    how: str
    table: pd.DataFrame
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    runs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def described(cls, cfg: Mapping[str, Any], table: pd.DataFrame, **fields: Any) -> Result:
        """A result with the name, title, what, on_what and how of its experiment config."""
        text = {key: str(cfg[key]) for key in ("name", "title", "what", "on_what", "how")}
        return cls(**text, table=table, **fields)

    def markdown(self, record: Mapping[str, Any]) -> str:
        """The experiment's page: description, table, notes, figures and provenance line."""
        mode = "QUICK run on a small subset, not the full result" if record["quick"] else "Full run"
        dirty = " (with uncommitted changes)" if record["dirty"] else ""
        quick = [f"Quick: the config's `quick` block merged over it: `{record['config']['quick']}`."
                 ] if record["quick"] else []
        notes = "".join(f"- {note}\n" for note in [*self.notes, *quick])
        figures = "".join(f"![{self.name}: {f}]({f})\n\n" for f in self.figures)
        return (f"# {self.title}\n\n**What was measured.** {self.what}\n\n**On what.** {self.on_what}\n\n"
                f"**How.** {self.how}\n\n{markdown_table(self.table)}\n\n"
                + (notes + "\n" if notes else "") + figures
                + f"*{mode}; commit `{record['commit']}`{dirty}; input data sha256 `{record['data']['sha256']}`; "
                + (f"seed {record['seed']}; " if record["seed"] is not None else "")
                + f"{record['seconds']:.0f} s.*\n")

    def write(self, out: Path, config: Mapping[str, Any], seconds: float,
              code: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """table.csv, table.md and provenance.json in ``out`` (the figures are already there);
        ``config`` is the resolved experiment config, where a ``quick`` key (the applied block)
        marks a quick run; ``code`` is the ``git_state()`` from the experiment's start.
        Returns the provenance record."""
        if missing := [f for f in self.figures if not (out / f).is_file()]:
            raise CostnetError(f"{self.name}: figure(s) {missing} were not written to {str(out)!r}")
        record = {"name": self.name, "title": self.title, "quick": "quick" in config, "seconds": round(seconds, 1),
                  "seed": config.get("seed"), "figures": list(self.figures),
                  **provenance(config, self.inputs, code), "runs": dict(self.runs)}
        out.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(out / "table.csv", index=False)
        atomic_write_bytes(out / "table.md", self.markdown(record).encode())
        atomic_write_bytes(out / "provenance.json", json.dumps(record, indent=2, default=str).encode())
        return record

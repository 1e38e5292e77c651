"""Reading the text files users hand to costnet (logs, specs, catalogs)."""

from __future__ import annotations

from pathlib import Path

from costnet.errors import CostnetError


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path`` (a leading BOM dropped), or a CostnetError naming ``what``
    and the file when it is missing, unreadable or not text (undecodable or holding NUL bytes)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise CostnetError(f"{what} {str(path)!r} not found") from exc
    except OSError as exc:
        raise CostnetError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CostnetError(f"{what} {str(path)!r} is not UTF-8 text (a binary file?): byte {exc.start} "
                           f"is {data[exc.start:exc.start + 1]!r}") from exc
    if "\0" in text:
        raise CostnetError(f"{what} {str(path)!r} is not text: it holds NUL bytes (a binary file?)")
    return text

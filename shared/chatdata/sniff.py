"""Say in one sentence what a file is when it is not JSONL at all (CSV, Parquet, a JSON array, binary...).

Why: a Parquet file or a CSV dropped by mistake would otherwise be reported as a million ``invalid_json`` lines,
which hides the one thing the user needs to hear. Called only when no line of the file was a JSON object.
"""

from __future__ import annotations

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", "a Parquet file"),
    (b"PK\x03\x04", "a ZIP archive (or an Excel/Word document)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow/Feather file"),
    (b"%PDF", "a PDF document"),
    (b"\x89HDF", "an HDF5 file"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"\x1f\x8b", "gzip inside gzip"),
)
_FIX = "; convert it to JSON Lines: one JSON object per line, UTF-8"


def describe_non_jsonl(head: bytes) -> str:
    """One sentence naming what ``head`` (the first bytes of the content) looks like, and what to do."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return f"The file is not JSON Lines: it is {name}{_FIX}."
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "The file is not JSON Lines in UTF-8: it is UTF-16 text; save it as UTF-8 with one JSON object per line."
    if b"\x00" in head[:8192]:
        return f"The file is not JSON Lines: it is binary data (it contains NUL bytes){_FIX}."
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "The file holds no data (only blank lines)."
    first = lines[0]
    if first.startswith("["):
        return (
            "The file is not JSON Lines: it is one JSON array; write each element on its own line instead, "
            "for example with jq -c '.[]' file.json > file.jsonl."
        )
    if first.startswith("{"):
        return (
            "The file is not JSON Lines: it looks like one JSON document spread over several lines "
            "(pretty-printed); write each conversation as one JSON object on a single line."
        )
    for sep, name in ((",", "CSV"), ("\t", "TSV"), (";", "CSV (semicolon-separated)")):
        if sep in first and all(line.count(sep) >= first.count(sep) * 0.5 for line in lines[1:6]):
            header = first if len(first) <= 60 else first[:57] + "..."
            return f"The file is not JSON Lines: it looks like {name} with header {header!r}{_FIX}."
    if text.lstrip().startswith("<"):
        return f"The file is not JSON Lines: it looks like XML or HTML{_FIX}."
    return f"The file is not JSON Lines: it is plain text with no JSON object on any line{_FIX}."

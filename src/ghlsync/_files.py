"""Files that hold personal data or credentials: created private (0600), checked when reused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["create_private", "loose_permissions", "permission_warning", "write_private_text"]

PRIVATE_MODE = 0o600


def create_private(path: Path) -> bool:
    """Create `path` empty with mode 0600 unless it exists; True when this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_private_text(path: Path, text: str) -> None:
    """Write `text` to `path`, which is (or becomes) readable by its owner only.

    The mode is set on creation (no moment where the content is readable by others) and again
    on an existing file that was looser.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), PRIVATE_MODE)
        handle.write(text)


def loose_permissions(path: Path) -> int | None:
    """The file's mode when group or others may read or write it; None when private or absent."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None


def permission_warning(path: Path, what: str) -> str | None:
    """One line telling the owner to `chmod 600` `path`, or None when it is private."""
    mode = loose_permissions(path)
    if mode is None:
        return None
    return (
        f"warning: {what} {path} is readable by other users (mode {mode:o}) and holds personal "
        f"data or secrets; run `chmod 600 {path}`"
    )

"""Who may reach the dashboard, and what a visitor may make the server read or accept.

The mode follows from the address the server listens on (one fact, no second setting):
loopback is local (the person at this machine), anything else is shared. In shared mode
the checkpoint loader reads only inside the models folder named by GPT2VIZ_MODELS at
start-up, and messages never show server paths.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

MODELS_ENV = "GPT2VIZ_MODELS"
MAX_PATH_CHARS = 1024  # Linux's PATH_MAX is 4096; nobody types more than this
MAX_NAME_CHARS = 255   # one path component (NAME_MAX)
# Upload caps (bytes). A corpus is plain text: the embedded one is 465 KB. A checkpoint of
# the largest custom variant the sidebar allows (12 layers, d=512) is 155 MiB.
MAX_CORPUS_UPLOAD = 20 * 1024**2
MAX_CHECKPOINT_UPLOAD = 160 * 1024**2
UPLOAD_CAPS = {"corpus": MAX_CORPUS_UPLOAD, "checkpoint": MAX_CHECKPOINT_UPLOAD}


class Refused(ValueError):
    """A request the server will not carry out; the message is one line, safe to show anyone."""


def is_local(address: str | None) -> bool:
    """True when the server listens on loopback only. No address means every interface."""
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or a unix socket: treat as reachable by others


def models_folder() -> Path | None:
    """The one folder shared mode may read checkpoints from, or None when none is named."""
    named = os.environ.get(MODELS_ENV, "").strip()
    return Path(named).expanduser().resolve() if named else None


def checkpoint_path(text: str, root: Path | None) -> Path:
    """The folder a visitor typed, checked. root=None (local mode): any folder on this
    machine, `~` expanded. With a root (shared mode): only inside it, by name relative to it;
    `..`, `~`, absolute paths elsewhere and symlinks that lead out are refused."""
    text = text.strip()
    if not text:
        raise Refused("Type the name of a checkpoint folder.")
    if "\x00" in text:
        raise Refused("That folder name contains a NUL byte.")
    if len(text) > MAX_PATH_CHARS or any(len(part) > MAX_NAME_CHARS for part in text.split("/")):
        raise Refused(f"That folder name is too long (at most {MAX_PATH_CHARS} characters, "
                      f"{MAX_NAME_CHARS} per part).")
    if root is None:
        folder = Path(text).expanduser()
    else:
        if text.startswith("~"):
            raise Refused("`~` is not allowed here: give a folder inside the models folder.")
        if ".." in Path(text).parts:
            raise Refused("`..` is not allowed here: give a folder inside the models folder.")
        folder = (root / text).resolve()  # an absolute `text` replaces root, then is checked
        if not folder.is_relative_to(root):
            raise Refused(f"{text!r} is outside the models folder (or a link that leads out "
                          f"of it); only folders inside it can be loaded.")
    try:
        if not folder.exists():
            raise Refused(f"There is no folder {text!r}.")
        if not folder.is_dir():
            raise Refused(f"{text!r} is a file; give the folder that holds the checkpoint.")
        readable = os.access(folder, os.R_OK | os.X_OK)
    except OSError:  # a folder on the way that we may not look into
        readable = False
    if not readable:
        raise Refused(f"The folder {text!r} cannot be read (no permission).")
    return folder


def public_message(message: str, root: Path | None) -> str:
    """One line for a visitor: the models folder's location on the server is not theirs to see."""
    line = message.strip().splitlines()[0] if message.strip() else "Something went wrong."
    if root is not None:
        line = line.replace(f"{root}/", "").replace(str(root), "the models folder")
    return line


def check_upload(kind: str, size_bytes: int) -> None:
    """Refuse an upload over its cap before anything is read into memory or onto disk."""
    cap = UPLOAD_CAPS[kind]
    if size_bytes > cap:
        raise Refused(f"That {kind} is {size_bytes / 1024**2:.1f} MiB; the limit is "
                      f"{cap / 1024**2:.0f} MiB.")


def max_upload_megabytes() -> int:
    """Streamlit's server.maxUploadSize (megabytes): our largest cap, not its 200 MB default."""
    return max(UPLOAD_CAPS.values()) // 1024**2

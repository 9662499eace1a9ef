"""Where supervised servers live: ``settings.home``, its short hash, private folders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from clipforge import homes
from clipforge.config import Settings
from clipforge.errors import ServiceError

SOCKET_PATH_MAX = homes.SOCKET_PATH_MAX
short_dir = homes.short_dir  # the /tmp fallback for socket paths too long for sun_path


def home(settings: Settings) -> Path:
    """The resolved ``settings.home``."""
    return Path(settings.home).expanduser().resolve()


def state_file(settings: Settings) -> Path:
    """``<home>/services.json``: where the private servers live."""
    return home(settings) / "services.json"


def home_hash(settings: Settings) -> str:
    """A short hash of :func:`home`: names per-home folders and picks port numbers."""
    return homes.digest(home(settings))


def private_dir(path: Path, owner: tuple[int, int] | None = None) -> None:
    """Create ``path`` (0700, owned by ``owner`` or the caller) or check an existing one.

    Never changes permissions of a parent directory.
    """
    uid, gid = owner if owner else (os.geteuid(), os.getegid())
    try:
        path.mkdir(mode=0o700)
        if owner:
            os.chown(path, uid, gid)
        os.chmod(path, 0o700)
        return
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise ServiceError(
            f"private directory {path} exists but is not a 0700 directory owned by uid {uid} "
            f"(mode {oct(st.st_mode & 0o7777)}, uid {st.st_uid}); it may belong to someone "
            f"else; remedy: remove {path} or set CLIPFORGE_HOME to another directory"
        )


# A checkout: ``deployments/`` and ``flows/`` sit beside the clipforge package.
REPO_ROOT = Path(__file__).resolve().parents[2]

"""The artifact store of the act tests: ``upload STORE`` and ``download STORE``, inputs from the environment.

Upload copies each path of ``$PATHS`` (one a line) into ``STORE/$NAME/``, relative to the paths' common folder,
as actions/upload-artifact does; download copies every artifact matching ``$PATTERN`` into ``$DEST``, merged.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from pathlib import Path


def main() -> int:
    action, store = sys.argv[1], Path(sys.argv[2])
    if action == "upload":
        paths = [Path(p.strip()) for p in os.environ["PATHS"].splitlines() if p.strip()]
        present = [p for p in paths if p.exists()]
        if not present:
            return 0
        root = Path(os.path.commonpath([p.resolve() for p in paths]))
        for path in present:
            source = path.resolve()
            target = store / os.environ["NAME"] / source.relative_to(root)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        return 0
    dest = Path(os.environ.get("DEST") or ".")
    for artifact in sorted(store.iterdir()) if store.is_dir() else []:
        if fnmatch.fnmatch(artifact.name, os.environ["PATTERN"]):
            shutil.copytree(artifact, dest, dirs_exist_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

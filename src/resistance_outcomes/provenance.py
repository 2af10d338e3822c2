"""Provenance of a run: what went in (input hashes, config, seed) and what ran it.

A reviewer reproducing a result needs the exact inputs, the full configuration, the code
version and the software it ran on. :func:`provenance_record` gathers them into one
JSON-serialisable mapping, written by the workflow as ``results/provenance.json``.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

#: Distributions whose versions are recorded (the project's pinned runtime dependencies).
RECORDED_PACKAGES = (
    "resistance-outcomes",
    "snakemake",
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "pingouin",
    "matplotlib",
    "pyyaml",
    "jsonschema",
    "openpyxl",
    "pyarrow",
    "python-docx",
    "pyreadstat",
    "threadpoolctl",
)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions(names=RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when it is not installed).

    Examples
    --------
    >>> "pandas" in package_versions()
    True
    """
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: str | Path = ".") -> dict[str, str | bool | None]:
    """The commit checked out in ``repo`` and whether its tracked files have changes.

    Returns ``{"commit": None, "dirty": None}`` outside a git checkout or without git.

    Examples
    --------
    >>> sorted(git_state("."))
    ['commit', 'dirty']
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance_record(
    inputs: dict[str, str | Path], config: dict, code_dir: str | Path = "."
) -> dict:
    """Everything needed to reproduce a run, as a JSON-serialisable dict.

    Parameters
    ----------
    inputs : dict
        Name -> path of every input file (raw data, codebook, framework map...).
    config : dict
        The full resolved configuration of the run.
    code_dir : path
        A folder inside the project's git checkout (for the commit and dirty flag).

    Returns
    -------
    dict
        ``inputs`` (path, bytes, sha256 per file), ``config``, ``seed``, ``packages``,
        ``python``, ``platform``, ``code`` (git commit and dirty flag).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "clients.csv"
    >>> _ = p.write_text("client\\nC1\\n")
    >>> rec = provenance_record({"clients": p}, {"seed": 1})
    >>> rec["inputs"]["clients"]["bytes"], rec["seed"]
    (10, 1)
    """
    files = {
        name: {
            "path": str(path),
            "bytes": Path(path).stat().st_size,
            "sha256": sha256_file(path),
        }
        for name, path in sorted(inputs.items())
    }
    return {
        "inputs": files,
        "config": config,
        "seed": config.get("seed"),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "code": git_state(code_dir),
    }

"""What the benchmarks say about the machine they ran on."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(dist: str) -> str:
    """An installed distribution's version, or "?"."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def pg_version(admin_url: str) -> str:
    """The PostgreSQL server's version, or why it could not be asked (a SQLite-only run needs no server)."""
    from sqlalchemy import create_engine, text

    eng = create_engine(admin_url)
    try:
        with eng.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    finally:
        eng.dispose()

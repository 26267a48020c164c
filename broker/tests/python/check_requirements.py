#!/usr/bin/env python3
"""Exits 1 naming what is missing unless requirements.txt's exact pins are installed.

Run by broker/tests/python_clients.rs before any client script, so a machine
without the packages fails with the command that installs them instead of an
ImportError deep in a script.
"""

import sys
from importlib import metadata
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("requirements.txt")


def pins():
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            yield name.strip(), version.strip()


def main():
    problems = []
    found = []
    for name, pinned in pins():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed (requirements.txt pins {pinned})")
            continue
        found.append(f"{name}=={installed}")
        if pinned and installed != pinned:
            problems.append(f"{name} {installed} is installed, requirements.txt pins {pinned}")
    if problems:
        print(
            f"Python client packages for {sys.executable} do not match {REQUIREMENTS}:\n  "
            + "\n  ".join(problems)
            + f"\nInstall them with:\n  python3 -m pip install -r {REQUIREMENTS}\n"
            "(scripts/test.sh does this before it runs the tests)",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"python {sys.version.split()[0]}, client packages: {', '.join(found)}")


if __name__ == "__main__":
    main()

"""Write a .pth file into the venv so that every Python in it finds the project's toolchain.

ape-solidity and py-solc-x look for the compiler only in $SOLCX_BINARY_PATH (or ~/.solcx),
and ape-foundry finds anvil only through PATH. With this file, `.venv/bin/ape ...` works
from any shell without sourcing anything.
"""

import sys
import sysconfig
from pathlib import Path

root = Path(sys.argv[1]).resolve()
line = (
    "import os; "
    f"os.environ.setdefault('SOLCX_BINARY_PATH', {str(root / '.solcx')!r}); "
    f"_b = {str(root / 'node_modules' / '.bin')!r}; "
    "os.environ['PATH'] = os.environ.get('PATH', '') if _b in os.environ.get('PATH', '').split(os.pathsep) "
    "else _b + os.pathsep + os.environ.get('PATH', '')\n"
)
target = Path(sysconfig.get_paths()["purelib"]) / "voicemarket-toolchain.pth"
if not target.exists() or target.read_text() != line:
    target.write_text(line)

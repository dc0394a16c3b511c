"""``python -m infomux``: the same as the ``infomux`` command."""

import sys

from infomux.cli import main

if __name__ == "__main__":
    sys.exit(main())

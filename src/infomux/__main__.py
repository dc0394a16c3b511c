"""``python -m infomux``: the same as the ``infomux`` command."""

from infomux.cli import run

if __name__ == "__main__":
    run()

"""``python -m cs_core``: the containers-storage command line."""

from cs_core.cli.main import main

if __name__ == "__main__":
    main()

"""Entry point for `python -m ml ...`; the commands live in ml/cli/."""
from ml.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

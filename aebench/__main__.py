"""`python -m aebench`: the same command line as the `aebench` script."""

from aebench.cli.app import main

main()

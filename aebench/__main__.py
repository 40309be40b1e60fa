from aebench.cli.app import main

main()

"""The `aebench` command line: parsing (`options`), the commands (`app`), and what they print (`render`, `progress`)."""

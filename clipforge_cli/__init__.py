"""The `clipforge` command line: parses arguments, prints progress, starts flows.

It sits above ``flows`` and ``clipforge`` (the library); nothing imports it.
"""

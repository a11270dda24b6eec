"""The application layer: each command or event applied in one unit of work.

Front doors (bot/, intake/, the CLI) call these functions; they load through store/, decide
through allocation/, and write state, audit rows and domain events before one commit.
"""

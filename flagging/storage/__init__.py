"""Storage: engines and sessions, the group commit, the SQLite writer process, the raw cursor.

Only the domain (flagging) and the composition root (cli) use it; the edges (api, hl7, mesh)
reach the database through the domain's use cases, and type what opens their transactions as
flagging.transactions.Transactions (an import-linter contract in pyproject.toml says so).
"""

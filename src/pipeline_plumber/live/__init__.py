"""`plumber eval run --live`: send the eval cases to the Messages API as Claude Code would,
fast, cheap and crash-safe. One job per module: `request` (pure request building and keys),
`prices` (the price table), `store` (run folder and answer stores), `runner` (sending),
`batch` (Message Batches), `report` and `compare`."""

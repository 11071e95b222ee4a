"""Shapes of other task libraries' APIs over Firefly's, for projects that migrate
(docs/migrating.md)."""
